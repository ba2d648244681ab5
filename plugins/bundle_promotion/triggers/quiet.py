"""Wait in the triggerer until none of some jobs is queued or running and none of some pipelines updates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from airflow.triggers.base import TriggerEvent

from bundle_promotion.triggers.base import WorkspaceTrigger


class QuietTrigger(WorkspaceTrigger):
    """Fire ``{"status": "quiet"}`` once no run of ``job_ids`` is active and no update of
    ``pipeline_ids`` is unfinished, or ``{"status": "timeout", "running": [...]}`` at ``deadline``,
    listing what still runs.

    The workspace client is blocking, so each poll runs in a thread: the triggerer's event
    loop stays free for every other trigger.

    :param job_ids: the jobs whose runs must end
    :param deadline: when to stop waiting and report what still runs
    :param polling_period_seconds: seconds between looks
    :param pipeline_ids: the pipelines whose updates must end
    """

    def __init__(
        self,
        *,
        databricks_conn_id: str,
        job_ids: Sequence[str],
        deadline: datetime,
        polling_period_seconds: float = 30.0,
        pipeline_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(databricks_conn_id=databricks_conn_id)
        self.job_ids = list(job_ids)
        self.pipeline_ids = list(pipeline_ids)
        self.deadline = deadline
        self.polling_period_seconds = polling_period_seconds

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from bundle_promotion.lifecycle.schedules import still_running

        api = self.workspace()
        host = await asyncio.to_thread(api.workspace_host_url)  # reads the connection: blocking
        while True:
            running = await asyncio.to_thread(still_running, api, self.job_ids, self.pipeline_ids, host=host)
            if not running:
                yield TriggerEvent({"status": "quiet"})
                return
            if datetime.now(self.deadline.tzinfo) >= self.deadline:
                yield TriggerEvent({"status": "timeout", "running": [str(run) for run in running]})
                return
            self.log.info(
                "Waiting for %d run(s) and update(s): %s", len(running), "; ".join(map(str, running))
            )
            await asyncio.sleep(self.polling_period_seconds)
