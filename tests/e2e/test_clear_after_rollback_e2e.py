"""End to end: clearing tasks of a run whose automatic rollback held dev never reports a wrong release.

The sequence of issue 10: v1.1.0 runs in dev and staging; v1.2.0's dev test fails, the
automatic rollback redeploys v1.1.0 and holds dev. Then an operator clears tasks of that run
the way the UI does (Airflow's own ``clear`` of the task instances, downstream included) and
the run resumes through Airflow's own task runner. Whatever is cleared, the ledger, the audit
trail and the dev workspace (read back over REST) keep saying dev runs v1.1.0, and staging
never gets v1.2.0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import PROJECT, git

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

V110_CRON, V120_CRON, V130_CRON = "0 0 2 * * ?", "0 30 5 * * ?", "0 15 3 * * ?"
NIGHTLY = "example_etl nightly"
# Turns of the run loop in a row that may schedule nothing while the run settles its states.
MAX_IDLE_TURNS = 100


def write_spec(folder: Path, repo: Path, bundle: str) -> Path:
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {
                "name": name,
                "target": name,
                "databricks_conn_id": f"databricks_{name}",
                "schedules": "unpaused" if name == "dev" else "paused",
                "tests": ["integration_tests"],
            }
            for name in ("dev", "staging")
        ],
    }
    specs = folder / "promotions"
    specs.mkdir()
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


def tag_v120_failing_in_dev(repo: Path) -> None:
    """v1.2.0: a new cron for the nightly job (what shows which release runs), and tests failing in dev."""
    etl = repo / "resources" / "etl.job.yml"
    etl.write_text(etl.read_text().replace(V110_CRON, V120_CRON))
    config_file = repo / "databricks.yml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"]["dev"]["resources"] = {
        "jobs": {"integration_tests": {"parameters": [{"name": "emulator_result", "default": "FAILED"}]}}
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "commit", "-q", "-am", "v1.2.0: breaks dev")
    git(repo, "tag", "-a", "v1.2.0", "-m", "release v1.2.0")


def tag_v130_fixed(repo: Path) -> None:
    """v1.3.0: the fix; another cron, and tests that pass everywhere."""
    etl = repo / "resources" / "etl.job.yml"
    etl.write_text(etl.read_text().replace(V120_CRON, V130_CRON))
    config_file = repo / "databricks.yml"
    config = yaml.safe_load(config_file.read_text())
    del config["targets"]["dev"]["resources"]
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "commit", "-q", "-am", "v1.3.0: the fix")
    git(repo, "tag", "-a", "v1.3.0", "-m", "release v1.3.0")


def load_dag(monkeypatch: pytest.MonkeyPatch, specs: Path, bundle: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag.get_dag(f"promote__{bundle}")


def clear_and_resume(dag: Any, run_id: str, task_ids: list[str]) -> str:
    """Clear ``task_ids`` and everything downstream in the run, as the UI's Clear does, then let the
    run go on through the loop ``dag.test()`` runs; returns the run's final state."""
    from airflow.models import DagRun
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    cleared = scheduler_dag.partial_subset(task_ids=task_ids, include_downstream=True, include_upstream=False)
    with create_session() as session:
        cleared.clear(
            task_ids=list(cleared.task_dict),
            run_id=run_id,
            dag_run_state=DagRunState.RUNNING,
            session=session,
        )
    with create_session() as session:
        dag_run = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
        dag_run.dag = scheduler_dag
        idle_turns = 0
        while dag_run.state == DagRunState.RUNNING:
            idle_turns = 0 if run_schedulable(dag, dag_run, session) else idle_turns + 1
            assert idle_turns < MAX_IDLE_TURNS, f"the run is stuck: {task_states(dag.dag_id, run_id)}"
        return str(dag_run.state)


def mark_success(dag_id: str, run_id: str, task_ids: list[str]) -> None:
    """The UI's "Mark success" on task instances of the run."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id.in_(task_ids)
        ):
            ti.set_state(TaskInstanceState.SUCCESS, session=session)


def run_schedulable(dag: Any, dag_run: Any, session: Any) -> int:
    """One turn of ``dag.test()``'s loop: schedule what may run, then run it in this process.
    Returns how many tasks ran."""
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import TaskInstanceState

    session.expire_all()
    schedulable, _ = dag_run.update_state(session=session)
    for ti in schedulable:
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
    session.commit()
    scheduled = dag_run.get_task_instances(state=[TaskInstanceState.SCHEDULED], session=session)
    for ti in scheduled:
        with contextlib.suppress(Exception):  # a failing task fails its task instance, as it should
            _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    return len(scheduled)


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        return {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}


def ledger() -> Any:
    from bundle_promotion.hooks.ledger import LedgerHook

    return LedgerHook().get_conn()


def workspace_jobs(workspaces: Any, environment: str) -> dict[str, dict[str, Any]]:
    response = requests.get(
        f"{workspaces.base_url(environment)}/api/2.2/jobs/list",
        params={"limit": 100, "expand_tasks": "true"},
        headers={"Authorization": f"Bearer {workspaces.token(environment)}"},
        timeout=10,
    )
    response.raise_for_status()
    return {job["settings"]["name"]: job for job in response.json().get("jobs", [])}


def nightly_cron(workspaces: Any, environment: str) -> str:
    job = workspace_jobs(workspaces, environment)[f"[{environment}] {NIGHTLY}"]
    return str(job["settings"]["schedule"]["quartz_cron_expression"])


def started_runs(workspaces: Any, path: str) -> list[Any]:
    return [r for r in workspaces.requests("dev") if r.method == "POST" and r.path.endswith(path)]


@dataclass(frozen=True)
class RolledBackRun:
    dag: Any
    run_id: str
    repo: Path


@pytest.fixture
def rolled_back_run(
    bundle: str,
    workspaces: Any,
    bundle_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> RolledBackRun:
    """v1.1.0 promoted to dev and staging; then v1.2.0's run, failed in dev, rolled back and held."""
    repo = bundle_repo("v1.1.0")
    specs = write_spec(tmp_path, repo, bundle)
    assert load_dag(monkeypatch, specs, bundle).test(run_conf={"version": "v1.1.0"}).state == "success"
    tag_v120_failing_in_dev(repo)
    dag = load_dag(monkeypatch, specs, bundle)
    dag_run = dag.test(run_conf={"version": "v1.2.0"})
    ran = task_states(dag.dag_id, dag_run.run_id)
    assert (dag_run.state, ran["dev.test_integration_tests"], ran["dev_rollback.hold"]) == (
        "failed",
        "failed",
        "success",
    )
    assert ledger().environment_hold(bundle, "dev") is not None
    return RolledBackRun(dag, dag_run.run_id, repo)


GROUP = [
    "dev.prepare_rollback",
    "dev.deploy",
    "dev.verify",
    "dev.test_integration_tests",
    "dev.schedules",
    "dev.record",
]


@pytest.mark.parametrize(
    ("bundle", "marked_success", "cleared"),
    [
        ("example_clear_test", [], ["dev.test_integration_tests"]),
        ("example_clear_verify", [], ["dev.verify"]),
        # record runs only once its upstream succeeded: the operator marks the failed test passed.
        ("example_clear_record", ["dev.test_integration_tests", "dev.schedules"], ["dev.record"]),
        ("example_clear_group", [], GROUP),
    ],
    ids=["the failed test", "verify", "record", "the whole dev group"],
)
def test_clearing_a_task_of_a_rolled_back_run_never_reports_a_wrong_release(
    rolled_back_run: RolledBackRun,
    workspaces: Any,
    bundle: str,
    marked_success: list[str],
    cleared: list[str],
) -> None:
    dag, run_id = rolled_back_run.dag, rolled_back_run.run_id
    mark_success(dag.dag_id, run_id, marked_success)
    before = ledger().deployments(bundle, "dev")
    events_before = len(ledger().audit_events())
    runs_started = len(started_runs(workspaces, "jobs/run-now"))

    final_state = clear_and_resume(dag, run_id, cleared)

    ran = task_states(dag.dag_id, run_id)
    assert final_state == "failed"
    assert all(ran[task] != "success" for task in cleared), ran
    assert {task: ran[f"dev_rollback.{task}"] for task in ("redeploy", "schedules", "hold")} == dict.fromkeys(
        ("redeploy", "schedules", "hold"), "success"
    )
    assert ran["staging.deploy"] == "upstream_failed"
    # No test ran against the rolled-back jobs, and the ledger did not move.
    assert len(started_runs(workspaces, "jobs/run-now")) == runs_started
    assert ledger().deployments(bundle, "dev") == before
    assert [(d.version, d.state) for d in before[:2]] == [("v1.1.0", "succeeded"), ("v1.2.0", "superseded")]
    assert ledger().current_release(bundle, "dev")[0].version == "v1.1.0"
    assert ledger().current_release(bundle, "staging")[0].version == "v1.1.0"
    assert all(d.version == "v1.1.0" for d in ledger().deployments(bundle, "staging"))
    assert not [
        e
        for e in ledger().audit_events()[events_before:]
        if e.action in {"deployment.succeeded", "tests.passed", "verification.passed"}
    ]
    # The workspaces run what the ledger says.
    assert (nightly_cron(workspaces, "dev"), nightly_cron(workspaces, "staging")) == (V110_CRON, V110_CRON)
    assert ledger().environment_hold(bundle, "dev") is not None


def nightly(workspaces: Any, environment: str) -> tuple[str, str]:
    schedule = workspace_jobs(workspaces, environment)[f"[{environment}] {NIGHTLY}"]["settings"]["schedule"]
    return str(schedule["quartz_cron_expression"]), str(schedule["pause_status"])


@pytest.mark.parametrize("bundle", ["example_clear_after_hold"])
def test_once_the_hold_is_cleared_a_cleared_task_of_the_rolled_back_run_still_refuses(
    rolled_back_run: RolledBackRun, workspaces: Any, bundle: str
) -> None:
    dag, run_id = rolled_back_run.dag, rolled_back_run.run_id
    ledger().clear_hold(bundle, "dev", reason="v1.2.0 understood; a fix is coming", actor="alice")
    before = ledger().deployments(bundle, "dev")
    runs_started = len(started_runs(workspaces, "jobs/run-now"))

    final_state = clear_and_resume(dag, run_id, ["dev.test_integration_tests"])

    ran = task_states(dag.dag_id, run_id)
    assert (final_state, ran["dev.test_integration_tests"], ran["staging.deploy"]) == (
        "failed",
        "failed",
        "upstream_failed",
    )
    assert len(started_runs(workspaces, "jobs/run-now")) == runs_started
    assert ledger().deployments(bundle, "dev") == before
    assert ledger().current_release(bundle, "dev")[0].version == "v1.1.0"
    # The rollback converged again, and did not hold dev a second time behind the person's back.
    assert ran["dev_rollback.hold"] == "success"
    assert ledger().environment_hold(bundle, "dev") is None
    assert nightly(workspaces, "dev") == (V110_CRON, "UNPAUSED")


@pytest.mark.parametrize("bundle", ["example_clear_after_fix"])
def test_a_cleared_task_of_an_old_run_leaves_the_release_promoted_since_alone(
    rolled_back_run: RolledBackRun,
    workspaces: Any,
    bundle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dag, run_id = rolled_back_run.dag, rolled_back_run.run_id
    ledger().clear_hold(bundle, "dev", reason="fixed in v1.3.0", actor="alice")
    tag_v130_fixed(rolled_back_run.repo)
    fix = load_dag(monkeypatch, tmp_path / "promotions", bundle).test(run_conf={"version": "v1.3.0"})
    assert fix.state == "success"
    before = ledger().deployments(bundle, "dev")
    requests_before = len(workspaces.requests("dev"))

    final_state = clear_and_resume(dag, run_id, ["dev.test_integration_tests"])

    ran = task_states(dag.dag_id, run_id)
    assert (final_state, ran["dev.test_integration_tests"], ran["dev_rollback.redeploy"]) == (
        "failed",
        "failed",
        "failed",
    )
    assert [r for r in workspaces.requests("dev")[requests_before:] if r.method != "GET"] == []
    assert ledger().deployments(bundle, "dev") == before
    assert ledger().current_release(bundle, "dev")[0].version == "v1.3.0"
    assert ledger().environment_hold(bundle, "dev") is None
    assert nightly(workspaces, "dev") == (V130_CRON, "UNPAUSED")
