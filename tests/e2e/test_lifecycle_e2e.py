"""End to end: an environment's operating state across promotions and maintenance windows.

The promotion and schedules DAGs run under dag.test() against the workspace emulator;
every check reads the workspace back over its REST API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import git
from tests.e2e.test_promotion_e2e import jobs_by_name, promote, task_states

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

NIGHTLY = "[prod] example_etl nightly"


def write_spec(folder: Path, repo: Path, bundle: str) -> Path:
    """A staging → prod promotion; prod is production, so its suite is marked non-destructive."""
    environments = [
        {"name": "staging", "schedules": "paused", "tests": ["integration_tests"]},
        {
            "name": "prod",
            "schedules": "unpaused",
            "production": True,
            "tests": [{"job": "integration_tests", "timeout": "10m", "non_destructive": True}],
        },
    ]
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {"target": env["name"], "databricks_conn_id": f"databricks_{env['name']}", **env}
            for env in environments
        ],
    }
    specs = folder / "promotions"
    specs.mkdir(exist_ok=True)
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


def run_schedules_dag(monkeypatch: pytest.MonkeyPatch, specs: Path, bundle: str, **conf: Any) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT

    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag.get_dag(f"schedules__{bundle}").test(run_conf=conf)


def nightly_state(workspaces: Any) -> str:
    return str(jobs_by_name(workspaces, "prod")[NIGHTLY]["settings"]["schedule"]["pause_status"])


def fail_prod_tests(repo: Path) -> None:
    config_file = repo / "databricks.yml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"]["prod"]["resources"] = {
        "jobs": {"integration_tests": {"parameters": [{"name": "emulator_result", "default": "FAILED"}]}}
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def test_prod_is_unpaused_only_after_verification_and_tests(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(), "lifecycle")

    dag_run = promote(monkeypatch, specs, "promote__lifecycle", "v1.0.0")

    assert dag_run.state == "success", task_states(dag_run)
    assert nightly_state(workspaces) == "UNPAUSED"
    log = workspaces.requests("prod")
    nightly_id = jobs_by_name(workspaces, "prod")[NIGHTLY]["job_id"]
    unpaused_at = next(
        index
        for index, request in enumerate(log)
        if request.path.endswith("/jobs/update")
        and request.body["job_id"] == nightly_id
        and request.body["new_settings"]["schedule"]["pause_status"] == "UNPAUSED"
    )
    wheel_read_at = max(
        i for i, r in enumerate(log) if r.path.endswith("/workspace/export") and "whl" in str(r.query)
    )
    test_run_at = max(i for i, r in enumerate(log) if r.path.endswith("/jobs/run-now"))
    assert wheel_read_at < test_run_at < unpaused_at


def test_prod_stays_paused_when_its_test_fails(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(edit=fail_prod_tests), "lifecycle_failing")

    dag_run = promote(monkeypatch, specs, "promote__lifecycle_failing", "v1.0.0")

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert (states["prod.verify"], states["prod.test_integration_tests"]) == ("success", "failed")
    assert states["prod.schedules"] == "upstream_failed"
    assert nightly_state(workspaces) == "PAUSED"


def test_a_failed_release_leaves_prod_schedules_as_they_were_before_its_deploy(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = bundle_repo()
    specs = write_spec(tmp_path, repo, "lifecycle_regress")
    assert promote(monkeypatch, specs, "promote__lifecycle_regress", "v1.0.0").state == "success"
    fail_prod_tests(repo)
    git(repo, "commit", "-q", "-am", "prod tests fail")
    git(repo, "tag", "-a", "v1.1.0", "-m", "release v1.1.0")

    dag_run = promote(monkeypatch, specs, "promote__lifecycle_regress", "v1.1.0")

    assert task_states(dag_run)["prod.test_integration_tests"] == "failed"
    assert nightly_state(workspaces) == "UNPAUSED"


def test_a_maintenance_pause_survives_a_deploy_and_resume_restores_it(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(), "lifecycle_window")
    assert promote(monkeypatch, specs, "promote__lifecycle_window", "v1.0.0").state == "success"

    paused = run_schedules_dag(monkeypatch, specs, "lifecycle_window", environment="prod", action="pause")
    assert paused.state == "success", task_states(paused)
    assert nightly_state(workspaces) == "PAUSED"

    assert promote(monkeypatch, specs, "promote__lifecycle_window", "v1.0.0").state == "success"
    assert nightly_state(workspaces) == "PAUSED"

    resumed = run_schedules_dag(monkeypatch, specs, "lifecycle_window", environment="prod", action="resume")
    assert resumed.state == "success", task_states(resumed)
    assert nightly_state(workspaces) == "UNPAUSED"


def test_a_window_pauses_waits_and_restores(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(), "lifecycle_hours")
    assert promote(monkeypatch, specs, "promote__lifecycle_hours", "v1.0.0").state == "success"

    window = run_schedules_dag(
        monkeypatch, specs, "lifecycle_hours", environment="prod", action="window", hours=0
    )

    states = task_states(window)
    assert window.state == "success", states
    assert [states[f"window.{task}"] for task in ("pause", "quiet", "wait", "restore")] == ["success"] * 4
    assert (states["pause"], states["resume"]) == ("skipped", "skipped")
    updates = [r.body for r in workspaces.requests("prod") if r.path.endswith("/jobs/update")]
    assert [
        u["new_settings"]["schedule"]["pause_status"] for u in updates if "schedule" in u["new_settings"]
    ][-2:] == [
        "PAUSED",
        "UNPAUSED",
    ]
    assert nightly_state(workspaces) == "UNPAUSED"
