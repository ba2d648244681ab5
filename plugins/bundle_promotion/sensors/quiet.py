"""Wait until none of a bundle's jobs or pipelines is running in an environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context

from bundle_promotion import settings
from bundle_promotion.errors import SchedulesNotQuiet
from bundle_promotion.operators.schedules import MAX_WORKERS, BundleResourcesOperator, ids_of


class WaitForQuietSensor(BundleResourcesOperator, BaseSensorOperator):
    """Wait until no run of the bundle's jobs is queued or running in the environment, and no
    update of its pipelines is unfinished.

    Fails after ``timeout`` with the runs and updates still going, each with its page. Use it
    after pausing schedules, before work that must not overlap a run (a deploy, maintenance).
    Deferrable, it waits in the triggerer and holds no worker slot; otherwise it pokes in
    ``mode`` ``poke`` or ``reschedule``, as any Airflow sensor.

    :param timeout: how long to wait before failing with what still runs
    :param polling_period_seconds: seconds between looks, deferred or poking
    :param deferrable: wait in the triggerer; by default ``[operators] default_deferrable``
    """

    ui_color = "#e8f6f4"

    def __init__(
        self,
        *,
        timeout: timedelta = timedelta(hours=1),
        polling_period_seconds: float = 30,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=polling_period_seconds, **kwargs)
        self.polling_period_seconds = polling_period_seconds
        self.deferrable = settings.default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Context) -> None:
        if not self.deferrable:
            super().execute(context)
            return
        from bundle_promotion.triggers.quiet import QuietTrigger

        job_ids, pipeline_ids, running = self._look()
        if not running:
            return
        self.defer(
            trigger=QuietTrigger(
                databricks_conn_id=self.databricks_conn_id,
                job_ids=job_ids,
                pipeline_ids=pipeline_ids,
                deadline=datetime.now(UTC) + timedelta(seconds=self.timeout),
                polling_period_seconds=self.polling_period_seconds,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        return not self._look()[2]

    def _look(self) -> tuple[list[str], list[str], list[Any]]:
        """The selected jobs' and pipelines' ids, and what of them is still running."""
        from bundle_promotion.lifecycle.schedules import still_running

        api = self.workspace(max_connections=MAX_WORKERS)
        selected = self.selected_resources(api)
        job_ids, pipeline_ids = ids_of(selected, "job"), ids_of(selected, "pipeline")
        running = still_running(api, job_ids, pipeline_ids, host=api.workspace_host_url())
        if running:
            self.log.info(
                "Waiting for %d run(s) and update(s): %s", len(running), "; ".join(map(str, running))
            )
        else:
            self.log.info("Quiet: nothing of %s is running in %s", self.bundle, self.environment)
        return job_ids, pipeline_ids, running

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        if event["status"] == "quiet":
            self.log.info("Quiet: every run and update of %s in %s has ended", self.bundle, self.environment)
            return
        raise SchedulesNotQuiet(
            f"{self.bundle} in {self.environment}: still running after {timedelta(seconds=self.timeout)}: "
            + "; ".join(event["running"])
            + ". Wait longer (timeout=), or cancel these runs and stop these pipelines"
        )
