"""The DAG factory renders specs into promotion DAGs, cheaply and without the network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE_BUNDLE, PROJECT


def spec_dict(bundle: str, repo: Path, environments: tuple[str, ...] = ("dev", "staging", "prod")) -> dict:
    return {
        "bundle": bundle,
        "description": f"Promote {bundle}",
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {
                "name": name,
                "target": name,
                "databricks_conn_id": f"databricks_{name}",
                "schedules": "unpaused" if name == "prod" else "paused",
                "tests": ["integration_tests"],
            }
            for name in environments
        ],
    }


@pytest.fixture
def specs_folder(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, bundle)
    folder = tmp_path / "promotions"
    folder.mkdir()
    (folder / "example.yaml").write_text(yaml.safe_dump(spec_dict("example", bundle)))
    return folder


def test_one_dag_per_spec_with_an_ordered_group_per_environment(specs_folder: Path) -> None:
    from bundle_promotion.dags.factory import promotion_dags

    dag = promotion_dags(specs_folder)["promote__example"]

    assert dag.max_active_runs == 1
    assert set(dag.params) == {"version"}
    environments = [group for group in dag.task_group.children if not group.endswith("_rollback")]
    assert environments == ["release", "dev", "staging", "prod"]
    assert dag.get_task("staging.prepare_rollback").upstream_task_ids == {"dev.record"}
    assert dag.get_task("staging.deploy").upstream_task_ids == {"staging.prepare_rollback"}
    assert dag.get_task("dev.prepare_rollback").upstream_task_ids == {"release"}
    assert dag.get_task("dev.schedules").upstream_task_ids == {"dev.test_integration_tests"}
    assert dag.get_task("dev.record").upstream_task_ids == {"dev.schedules"}


def test_the_dag_documents_its_environments(specs_folder: Path) -> None:
    from bundle_promotion.dags.factory import promotion_dags

    doc = promotion_dags(specs_folder)["promote__example"].doc_md

    assert "| prod | `prod` | `databricks_prod` | unpaused | integration_tests |" in doc


def test_the_version_param_rejects_a_malformed_tag(specs_folder: Path) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    from bundle_promotion.dags.factory import promotion_dags

    params = promotion_dags(specs_folder)["promote__example"].params

    with pytest.raises(ParamValidationError):
        params.validate()
    params["version"] = "v1.2.0"
    assert params.validate() == {"version": "v1.2.0"}
    with pytest.raises(ParamValidationError):
        params["version"] = "v1 2"


def parse_dag_file(specs: Path, parsing_dag_id: str | None = None) -> dict:
    """Parse dags/promotions.py in a fresh process, like the DAG processor (or, given
    ``parsing_dag_id``, like a worker about to run a task of that DAG), and report what it saw."""
    script = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
clients = ("databricks", "github", "airflow.providers.databricks.hooks", "airflow.providers.github.hooks")
heavy = sorted(m for m in sys.modules if m.startswith(clients))
print(json.dumps({"dags": sorted(bag.dags), "errors": bag.import_errors, "heavy": heavy}))
"""
    env = {**os.environ, "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(specs)}
    if parsing_dag_id:
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = parsing_dag_id  # what Airflow sets for a task's parse
    result = subprocess.run(
        [sys.executable, "-c", script, str(PROJECT / "dags" / "promotions.py")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_drift_dag_checks_every_environment_hourly_and_heals_as_the_spec_says(
    specs_folder: Path, tmp_path: Path
) -> None:
    from bundle_promotion.dags.factory import promotion_dags

    spec = spec_dict("example", tmp_path / "bundle")
    spec["environments"][2]["drift"] = {"heal": "schedules_only"}
    (specs_folder / "example.yaml").write_text(yaml.safe_dump(spec))

    dag = promotion_dags(specs_folder)["drift__example"]

    assert dag.timetable.expression == "0 * * * *"
    assert sorted(dag.task_ids) == [
        f"{env}.{task}" for env in ("dev", "prod", "staging") for task in ("check", "heal")
    ]
    assert dag.get_task("prod.heal").upstream_task_ids == {"prod.check"}
    assert [dag.get_task(f"{env}.heal").mode for env in ("dev", "staging", "prod")] == [
        None,
        None,
        "schedules_only",
    ]
    assert dag.params["heal_environment"] is None


def test_a_bad_spec_is_an_import_error_and_the_others_still_load(specs_folder: Path) -> None:
    (specs_folder / "broken.yaml").write_text("bundle: broken\nsource: {repo: x}\nenvironments: []\n")

    parsed = parse_dag_file(specs_folder)

    assert parsed["dags"] == ["drift__example", "promote__example", "rollback__example", "schedules__example"]
    [message] = parsed["errors"].values()
    assert "broken.yaml" in message
    assert "environments" in message


@pytest.mark.parametrize(
    "dag_id", ["promote__example", "schedules__example", "rollback__example", "drift__example"]
)
def test_a_task_parse_builds_only_its_dag_and_validates_only_its_spec(
    specs_folder: Path, dag_id: str
) -> None:
    other_bundle = specs_folder.parent / "bundle"
    (specs_folder / "other.yaml").write_text(yaml.safe_dump(spec_dict("other", other_bundle)))
    (specs_folder / "broken.yaml").write_text("bundle: broken\nsource: {repo: x}\nenvironments: []\n")

    parsed = parse_dag_file(specs_folder, parsing_dag_id=dag_id)

    assert parsed == {"dags": [dag_id], "errors": {}, "heavy": []}


def test_a_parse_for_a_dag_no_spec_renders_builds_every_spec(specs_folder: Path) -> None:
    parsed = parse_dag_file(specs_folder, parsing_dag_id="some_other_dag")

    assert parsed["dags"] == ["drift__example", "promote__example", "rollback__example", "schedules__example"]


def test_parsing_imports_no_databricks_or_github_client(specs_folder: Path) -> None:
    parsed = parse_dag_file(specs_folder)

    assert parsed["errors"] == {}
    assert parsed["heavy"] == []


def test_specs_that_fail_to_load_or_to_render_are_import_errors_and_the_others_still_load(
    specs_folder: Path,
) -> None:
    broken = {
        "nul_repo.yaml": yaml.safe_dump(spec_dict("nul_repo", Path("/srv/repo\0.git"))),
        "long_name.yaml": yaml.safe_dump(spec_dict("b" * 251, Path("/srv/repo"))),
        "deep.yaml": "bundle: " + "[" * 30_000 + "]" * 30_000 + "\n",
        # A job key Airflow refuses as a task id: the spec loads, its DAGs cannot be rendered.
        "bad_task_id.yaml": yaml.safe_dump(
            {**spec_dict("bad_task_id", Path("/srv/repo")), "source": {"repo": "https://example.com/r.git"}}
        ).replace("integration_tests", "integration tests"),
    }
    for name, text in broken.items():
        (specs_folder / name).write_text(text)

    parsed = parse_dag_file(specs_folder)

    assert parsed["dags"] == ["drift__example", "promote__example", "rollback__example", "schedules__example"]
    [message] = parsed["errors"].values()
    assert "4 promotion spec(s) are invalid" in message
    for name in broken:
        assert str(specs_folder / name) in message
    assert f"{specs_folder / 'bad_task_id.yaml'}: cannot be rendered into DAGs: " in message


def test_every_wait_the_factory_renders_is_a_sensor_that_defers() -> None:
    """A gate may wait for days and a maintenance window for hours: never in a worker slot."""
    from airflow.sdk import BaseSensorOperator

    from bundle_promotion.dags.factory import promotion_dags

    dags = promotion_dags(PROJECT / "include" / "promotions")
    sensors = {
        f"{dag_id}.{task.task_id}": task.deferrable
        for dag_id, dag in dags.items()
        for task in dag.tasks
        if isinstance(task, BaseSensorOperator)
    }

    assert {name.rsplit(".", 1)[-1] for name in sensors} >= {"gates", "quiet"}
    assert all(sensors.values()), sensors


def test_a_gates_task_is_named_in_the_grid_after_what_it_waits_for(tmp_path: Path) -> None:
    from bundle_promotion.dags.factory import promotion_dags

    spec = spec_dict("example", tmp_path)
    spec["environments"][2]["gates"] = [
        "previous_environment",
        {"approval": {"groups": [{"name": "QC", "users": ["alice"]}]}},
    ]
    (tmp_path / "example.yaml").write_text(yaml.safe_dump(spec))

    dag = promotion_dags(tmp_path)["promote__example"]

    assert dag.get_task("prod.gates").task_display_name == "gates: previous_environment, approval"
