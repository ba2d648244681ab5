"""Run one of the bundle's jobs in an environment and wait for it without holding a worker slot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink, Context

from bundle_promotion.errors import TestRunFailed
from bundle_promotion.operators.base import OnWorkspace
from bundle_promotion.operators.deployment_step import DeploymentStep

if TYPE_CHECKING:
    from airflow.providers.databricks.hooks.databricks import RunState
    from airflow.sdk.types import TaskInstanceKey

RUN_PAGE_URL_KEY = "run_page_url"
RUN_ID_KEY = "run_id"


class DatabricksRunPageLink(BaseOperatorLink):
    """The Databricks page of the run a task started, under the provider's XCom key.

    The provider's ``DatabricksJobRunLink`` is not reused: its module imports the provider's hooks,
    which would load at every DAG parse (0.9 s, measured with ``python -X importtime``).
    """

    name = "Databricks run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=RUN_PAGE_URL_KEY, ti_key=ti_key) or ""


class RunBundleJobOperator(OnWorkspace, DeploymentStep):
    """Start the job deployed under bundle key ``job_key`` and defer until it ends; fail unless SUCCESS.

    The job id comes from the environment's deploy task, so the task follows the deployment
    rather than a job name. Waiting happens in the triggerer, through the Databricks provider's
    ``DatabricksExecutionTrigger``, for at most ``run_timeout``: then the run is cancelled and the
    task fails with the run page in its log. A retry starts a fresh run: a run is evidence, not
    state. The latest attempt of each task is logged with its result and output; a failed task's
    error as the provider's trigger reports it.

    :param job_key: the job's key under ``resources.jobs`` in the bundle
    :param job_parameters: the run's job parameters (templated)
    :param run_timeout: how long the run may take before it is cancelled and the task fails; None waits
    :param polling_period_seconds: seconds between looks at the run while deferred
    """

    template_fields: Sequence[str] = ("databricks_conn_id", "job_parameters")
    operator_extra_links = (DatabricksRunPageLink(),)
    ui_color = "#fff4cc"

    def __init__(
        self,
        *,
        job_key: str,
        job_parameters: dict[str, str] | None = None,
        run_timeout: timedelta | None = None,
        polling_period_seconds: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_timeout = run_timeout
        self.job_key = job_key
        self.job_parameters = job_parameters or {}
        self.polling_period_seconds = polling_period_seconds
        self.run_id: int | None = None  # set once the run exists, so on_kill can cancel it

    def execute(self, context: Context) -> None:
        from airflow.providers.databricks.hooks.databricks import RunState
        from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
        from airflow.providers.databricks.utils.databricks import extract_failed_task_errors

        job = self.deployment(context).jobs[self.job_key]
        hook = self.workspace()
        run_id = self.run_id = hook.run_now({"job_id": int(job.id), "job_parameters": self.job_parameters})
        run_page_url = hook.get_run_page_url(run_id)
        context["ti"].xcom_push(key=RUN_PAGE_URL_KEY, value=run_page_url)
        context["ti"].xcom_push(key=RUN_ID_KEY, value=run_id)
        self.log.info("Started %r (job %s), run %s: %s", job.name, job.id, run_id, run_page_url)
        run = hook.get_run(run_id)
        state = RunState(**run["state"])
        if state.is_terminal:
            errors = extract_failed_task_errors(hook, run, state)
            self._finish(context, run_id, run_page_url, state, errors)
            return
        self.defer(
            trigger=DatabricksExecutionTrigger(
                run_id=run_id,
                databricks_conn_id=self.databricks_conn_id,
                polling_period_seconds=self.polling_period_seconds,
                run_page_url=run_page_url,
            ),
            method_name="execute_complete",
            timeout=self.run_timeout,
        )

    def on_kill(self) -> None:
        """Killed on the worker (marked failed, or past ``execution_timeout``): cancel the run. While
        deferred, the provider's trigger cancels it on kill instead."""
        if self.run_id is not None:
            self.workspace().cancel_run(self.run_id)
            self.log.warning("Cancelled run %s of %s", self.run_id, self.job_key)

    def on_deferral_timeout(self, context: Context) -> None:
        """Past ``run_timeout``: cancel the run, so the job does not go on running in the workspace."""
        from airflow.sdk.exceptions import AirflowFailException

        run_id = int(context["ti"].xcom_pull(task_ids=self.task_id, key=RUN_ID_KEY))
        self.workspace().cancel_run(run_id)
        run_page_url = context["ti"].xcom_pull(task_ids=self.task_id, key=RUN_PAGE_URL_KEY)
        raise AirflowFailException(
            f"job {self.job_key} run {run_id} did not end within {self.run_timeout}; "
            f"cancelled it. Run page: {run_page_url}"
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        from airflow.providers.databricks.hooks.databricks import RunState

        run_state = RunState.from_json(event["run_state"])
        self._finish(context, event["run_id"], event["run_page_url"], run_state, event.get("errors", []))

    def _finish(
        self, context: Context, run_id: int, run_page_url: str, state: RunState, errors: list[dict[str, Any]]
    ) -> None:
        """``errors``: each failed task's key and error, as the provider's trigger reports them."""
        self._log_task_results(run_id)
        self._record_outcome(context, state, run_page_url)
        if state.is_successful:
            self.log.info("Run %s of %s succeeded: %s", run_id, self.job_key, run_page_url)
            return
        for failed in errors:
            self.log.error("task %s: %s", failed["task_key"], failed["error"])
        raise TestRunFailed(
            f"job {self.job_key} run {run_id} ended {state.result_state or state.life_cycle_state}: "
            f"{state.state_message}. Run page: {run_page_url}"
        )

    def _record_outcome(self, context: Context, state: RunState, run_page_url: str) -> None:
        """The test result goes to the audit trail: evidence of operational verification."""
        from bundle_promotion import settings

        deployment_id = self.handed_over(context).deployment_id
        outcome = state.result_state or state.life_cycle_state
        settings.ledger().record_check(
            deployment_id,
            check="tests",
            name=self.job_key,
            passed=state.is_successful,
            detail=f"{outcome}: {run_page_url}",
        )

    def _log_task_results(self, run_id: int) -> None:
        """Each task's result, and its output where the task produced one (a notebook's exit value)."""
        hook = self.workspace()
        for task in latest_attempts(hook.get_run(run_id).get("tasks", [])):
            state = task.get("state", {})
            result = state.get("result_state") or state.get("life_cycle_state")
            output = hook.get_run_output(task["run_id"])
            notebook_result = (output.get("notebook_output") or {}).get("result")
            logs = output.get("logs")
            self.log.info(
                "task %s: %s%s",
                task["task_key"],
                result,
                f", output: {notebook_result or logs}" if notebook_result or logs else "",
            )


def latest_attempts(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per task: a run lists every attempt of a retried task, and only the last one counts."""
    latest: dict[str, dict[str, Any]] = {}
    for task in tasks:
        seen = latest.get(task["task_key"])
        if seen is None or task.get("attempt_number", 0) >= seen.get("attempt_number", 0):
            latest[task["task_key"]] = task
    return list(latest.values())
