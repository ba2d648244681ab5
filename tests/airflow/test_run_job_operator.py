"""The test task runs a bundle job and waits for it; past its timeout, the run is cancelled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.databricks.hooks.databricks import RunState
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bundle_promotion import settings
from bundle_promotion.errors import TestRunFailed
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger.records import Artifact, Release
from bundle_promotion.operators.run_job import RUN_PAGE_URL_KEY, RunBundleJobOperator, latest_attempts
from bundle_promotion.testing.workspace import WorkspaceEmulator

# What Airflow's scheduler sends back to a task whose deferral ran past its timeout.
DEFERRAL_TIMED_OUT = {"next_method": "__fail__", "next_kwargs": {"error": "Trigger timeout"}}


class TaskInstance:
    """XCom of one task instance, enough for the operator: the deploy's result and its own pushes."""

    def __init__(self, deployed: dict[str, Any]) -> None:
        self.values: dict[tuple[str, str], Any] = {("deploy", "return_value"): deployed}

    def xcom_push(self, key: str, value: Any) -> None:
        self.values["run_tests", key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.values[task_ids, key]


def applied_deployment() -> int:
    """A deployment the workspace runs, as the deploy task leaves it: the test acts on it."""
    ledger = settings.ledger()
    release = Release("timed_out", "v1.0.0", "a" * 40, (Artifact("w", "dist/w", "b" * 64),), "c" * 64)
    deployment_id = ledger.start_deployment(
        bundle="timed_out",
        environment="dev",
        target="dev",
        release_id=ledger.record_release(release),
        run_id="r",
    )
    ledger.mark_applied(deployment_id)
    return deployment_id


def started_test_run(hook: WorkspaceHook, **options: Any) -> tuple[RunBundleJobOperator, Any, Any, int]:
    """A test task deferred on a run that would go on for an hour: the operator, its context, its
    trigger and the job; ``options`` go to the operator."""
    job_id = hook.call("POST", "2.2/jobs/create", body={"name": "integration tests"})["job_id"]
    jobs = {"tests": {"id": str(job_id), "name": "integration tests"}}
    context: Any = {"ti": TaskInstance({"deployment_id": applied_deployment(), "jobs": jobs})}
    operator = RunBundleJobOperator(
        task_id="run_tests",
        databricks_conn_id="databricks_dev",
        job_key="tests",
        deploy_task_id="deploy",
        job_parameters={"emulator_run_seconds": "3600"},
        **options,
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    return operator, context, deferred.value.trigger, job_id


def run_state(hook: WorkspaceHook, job_id: int) -> tuple[str, str | None]:
    (run,) = hook.call("GET", "2.2/jobs/runs/list", query={"job_id": job_id})["runs"]
    return run["state"]["life_cycle_state"], run["state"].get("result_state")


def test_a_run_past_its_timeout_is_cancelled_and_the_task_fails_without_retrying(
    workspaces: WorkspaceEmulator,
) -> None:
    hook = WorkspaceHook("databricks_dev")
    operator, context, _, job_id = started_test_run(hook, run_timeout=timedelta(minutes=5))

    with pytest.raises(AirflowFailException, match=r"did not end within 0:05:00; cancelled it"):
        operator.resume_execution(**DEFERRAL_TIMED_OUT, context=context)

    assert run_state(hook, job_id) == ("TERMINATED", "CANCELED")


def test_killing_the_task_on_its_worker_cancels_its_run(workspaces: WorkspaceEmulator) -> None:
    hook = WorkspaceHook("databricks_dev")
    operator, _, _, job_id = started_test_run(hook)

    operator.on_kill()

    assert run_state(hook, job_id) == ("TERMINATED", "CANCELED")


def test_killing_the_deferred_task_cancels_its_run_from_the_triggerer(workspaces: WorkspaceEmulator) -> None:
    hook = WorkspaceHook("databricks_dev")
    _, _, trigger, job_id = started_test_run(hook)

    asyncio.run(trigger.on_kill())

    assert run_state(hook, job_id) == ("TERMINATED", "CANCELED")


def test_the_run_page_is_kept_under_the_providers_xcom_key() -> None:
    from airflow.providers.databricks.operators.databricks import XCOM_RUN_PAGE_URL_KEY

    assert RUN_PAGE_URL_KEY == XCOM_RUN_PAGE_URL_KEY


def test_a_failed_run_logs_each_tasks_error_from_the_trigger_event(
    workspaces: WorkspaceEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = WorkspaceHook("databricks_dev")
    job_id = hook.call("POST", "2.2/jobs/create", body={"name": "integration tests"})["job_id"]
    run_id = hook.run_now({"job_id": job_id, "job_parameters": {"emulator_result": "FAILED"}})
    jobs = {"tests": {"id": str(job_id), "name": "integration tests"}}
    context: Any = {"ti": TaskInstance({"deployment_id": applied_deployment(), "jobs": jobs})}
    operator = RunBundleJobOperator(
        task_id="run_tests", databricks_conn_id="databricks_dev", job_key="tests", deploy_task_id="deploy"
    )
    event = {
        "run_id": run_id,
        "run_page_url": hook.get_run_page_url(run_id),
        "run_state": RunState(**hook.get_run(run_id)["state"]).to_json(),
        "errors": [{"task_key": "check_orders", "run_id": run_id, "error": "AssertionError: 3 rows missing"}],
    }

    with pytest.raises(TestRunFailed):
        operator.execute_complete(context, event)

    assert "task check_orders: AssertionError: 3 rows missing" in "".join(capsys.readouterr())


def test_only_the_latest_attempt_of_a_retried_task_counts() -> None:
    tasks = [
        {"task_key": "load", "attempt_number": 0, "state": {"result_state": "FAILED"}},
        {"task_key": "load", "attempt_number": 1, "state": {"result_state": "SUCCESS"}},
        {"task_key": "check", "attempt_number": 0, "state": {"result_state": "SUCCESS"}},
    ]

    assert latest_attempts(tasks) == [tasks[1], tasks[2]]
