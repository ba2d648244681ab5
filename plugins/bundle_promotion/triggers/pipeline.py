"""Wait in the triggerer until a pipeline update ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from bundle_promotion.triggers.base import WorkspaceTrigger


class PipelineUpdateTrigger(WorkspaceTrigger):
    """Fire ``{"state": <terminal state>, "update_id", "error"}`` once the update is COMPLETED, FAILED
    or CANCELED; ``error`` is the update's first ERROR event when it did not complete.

    The workspace client is blocking, so each poll runs in a thread: the triggerer's event loop
    stays free for every other trigger.

    :param pipeline_id: the pipeline
    :param update_id: the update to wait for, and to stop on kill
    :param polling_period_seconds: seconds between looks at the update
    """

    def __init__(
        self,
        *,
        databricks_conn_id: str,
        pipeline_id: str,
        update_id: str,
        polling_period_seconds: float = 30.0,
    ) -> None:
        super().__init__(databricks_conn_id=databricks_conn_id)
        self.pipeline_id = pipeline_id
        self.update_id = update_id
        self.polling_period_seconds = polling_period_seconds

    async def on_kill(self) -> None:
        """The task was marked failed or cleared while deferred: stop the update, as the provider's
        triggers cancel their runs."""
        from bundle_promotion.lifecycle.data_restores import stop_pipeline_update

        if await asyncio.to_thread(stop_pipeline_update, self.workspace(), self.pipeline_id, self.update_id):
            self.log.info("Stopped pipeline %s update %s", self.pipeline_id, self.update_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from bundle_promotion.lifecycle.data_restores import pipeline_update, pipeline_update_error

        api = self.workspace()
        while True:
            update = await asyncio.to_thread(pipeline_update, api, self.pipeline_id, self.update_id)
            if update.finished:
                error = None
                if update.state != "COMPLETED":
                    error = await asyncio.to_thread(
                        pipeline_update_error, api, self.pipeline_id, self.update_id
                    )
                yield TriggerEvent({"state": update.state, "update_id": self.update_id, "error": error})
                return
            self.log.info("Pipeline %s update %s is %s", self.pipeline_id, self.update_id, update.state)
            await asyncio.sleep(self.polling_period_seconds)
