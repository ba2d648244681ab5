"""End to end: the generated promotion DAG runs under dag.test() against the workspace emulator.

Every check reads the workspaces back over the emulator's REST API, the way an operator
would look at a real workspace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import PROJECT

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]


def write_spec(folder: Path, repo: Path, bundle: str = "example") -> Path:
    """Write the only spec of ``folder``: dag.test() parses the whole DAG folder, so it must agree."""
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {
                "name": name,
                "target": name,
                "databricks_conn_id": f"databricks_{name}",
                "schedules": "unpaused" if name == "prod" else "paused",
                "tests": ["integration_tests"],
            }
            for name in ("dev", "staging", "prod")
        ],
    }
    specs = folder / "promotions"
    specs.mkdir(exist_ok=True)
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


def promote(monkeypatch: pytest.MonkeyPatch, specs: Path, dag_id: str, version: str) -> Any:
    """Parse the real DAG file over ``specs``, then run the DAG in-process."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag.get_dag(dag_id).test(run_conf={"version": version})


def rest(workspaces: Any, environment: str, path: str, **params: Any) -> dict[str, Any]:
    response = requests.get(
        f"{workspaces.base_url(environment)}/api/{path}",
        params=params,
        headers={"Authorization": f"Bearer {workspaces.token(environment)}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def jobs_by_name(workspaces: Any, environment: str) -> dict[str, dict[str, Any]]:
    listing = rest(workspaces, environment, "2.2/jobs/list", limit=100)
    return {job["settings"]["name"]: job for job in listing.get("jobs", [])}


def schedule_state(workspaces: Any, environment: str, job_id: int) -> str:
    settings = rest(workspaces, environment, "2.2/jobs/get", job_id=job_id)["settings"]
    return str(settings["schedule"]["pause_status"])


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        return {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}


def test_promotes_the_example_bundle_through_every_environment(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo())

    dag_run = promote(monkeypatch, specs, "promote__example", "v1.0.0")

    assert dag_run.state == "success", task_states(dag_run)
    for environment in ("dev", "staging", "prod"):
        jobs = jobs_by_name(workspaces, environment)
        assert sorted(jobs) == [
            f"[{environment}] example_etl integration tests",
            f"[{environment}] example_etl nightly",
        ]
        nightly = jobs[f"[{environment}] example_etl nightly"]
        expected = "UNPAUSED" if environment == "prod" else "PAUSED"
        assert schedule_state(workspaces, environment, nightly["job_id"]) == expected
        tests = jobs[f"[{environment}] example_etl integration tests"]
        [run] = rest(workspaces, environment, "2.2/jobs/runs/list", job_id=tests["job_id"])["runs"]
        assert run["state"]["result_state"] == "SUCCESS"


def test_a_second_promotion_of_the_same_version_creates_no_jobs(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(), bundle="example_again")
    assert promote(monkeypatch, specs, "promote__example_again", "v1.0.0").state == "success"
    first = {env: jobs_by_name(workspaces, env) for env in ("dev", "staging", "prod")}
    creates_before = sum(
        request.path.endswith("jobs/create") for env in first for request in workspaces.requests(env)
    )

    assert promote(monkeypatch, specs, "promote__example_again", "v1.0.0").state == "success"

    second = {env: jobs_by_name(workspaces, env) for env in ("dev", "staging", "prod")}
    creates_after = sum(
        request.path.endswith("jobs/create") for env in second for request in workspaces.requests(env)
    )
    assert {env: {name: job["job_id"] for name, job in jobs.items()} for env, jobs in second.items()} == {
        env: {name: job["job_id"] for name, job in jobs.items()} for env, jobs in first.items()
    }
    assert creates_after == creates_before == 6


def fail_staging_tests(repo: Path) -> None:
    """Make the emulator fail the integration tests in staging only."""
    config_file = repo / "databricks.yml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"]["staging"]["resources"] = {
        "jobs": {"integration_tests": {"parameters": [{"name": "emulator_result", "default": "FAILED"}]}}
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_failing_test_job_stops_the_promotion_at_that_environment(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_spec(tmp_path, bundle_repo(edit=fail_staging_tests), bundle="example_failing")

    dag_run = promote(monkeypatch, specs, "promote__example_failing", "v1.0.0")

    states = task_states(dag_run)
    assert dag_run.state == "failed"
    assert states["dev.record"] == "success"
    assert states["staging.test_integration_tests"] == "failed"
    assert states["staging.record"] == "upstream_failed"
    assert states["prod.deploy"] == "upstream_failed"
    assert jobs_by_name(workspaces, "prod") == {}
    assert [(record.environment, record.state) for record in ledger_deployments("example_failing")] == [
        ("staging", "failed"),
        ("dev", "succeeded"),
    ]


def ledger_deployments(bundle: str) -> list[Any]:
    from bundle_promotion.hooks.ledger import LedgerHook

    return LedgerHook().get_conn().deployments(bundle)


def test_a_workspace_outage_during_a_deploy_is_retried_and_starts_no_rollback(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from bundle_promotion.operators import base

    monkeypatch.setitem(base.RETRIES, "retry_delay", timedelta(0))  # dag.test() would wait out the delay
    specs = write_spec(tmp_path, bundle_repo(), bundle="example_outage")
    workspaces.fail_next("dev", 503, count=3)  # every attempt the hook makes of the first call to dev

    dag_run = promote(monkeypatch, specs, "promote__example_outage", "v1.0.0")

    with create_session() as session:
        tries = {
            ti.task_id: (str(ti.state), ti.try_number)
            for ti in session.get(DagRun, dag_run.id).get_task_instances(session=session)
        }
    assert dag_run.state == "success", tries
    assert tries["dev.deploy"] == ("success", 2)
    rollback_states = {state for task_id, (state, _) in tries.items() if "_rollback." in task_id}
    assert rollback_states == {"skipped"}
