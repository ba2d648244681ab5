"""Wait in the triggerer until another deployment releases a target's deploy lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from airflow.triggers.base import TriggerEvent

from bundle_promotion.triggers.base import WorkspaceTrigger


class DeployLockTrigger(WorkspaceTrigger):
    """Fire ``{"status": "free"}`` once the lock at ``lock_path`` is gone, or ``{"status": "timeout",
    "holder": {...}}`` at ``deadline`` with the lock as last read.

    Reading the lock is a blocking REST call, so each poll runs in a thread.

    :param lock_path: the workspace path of the target's ``deploy.lock``
    :param deadline: when to stop waiting and report the holder
    :param polling_period_seconds: seconds between reads of the lock
    """

    def __init__(
        self,
        *,
        databricks_conn_id: str,
        lock_path: str,
        deadline: datetime,
        polling_period_seconds: float = 30.0,
    ) -> None:
        super().__init__(databricks_conn_id=databricks_conn_id)
        self.lock_path = lock_path
        self.deadline = deadline
        self.polling_period_seconds = polling_period_seconds

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from bundle_promotion.workspace.files import read_json

        api = self.workspace()
        while True:
            holder = await asyncio.to_thread(read_json, api, self.lock_path)
            if holder is None:
                yield TriggerEvent({"status": "free"})
                return
            if datetime.now(UTC) >= self.deadline:
                yield TriggerEvent({"status": "timeout", "holder": holder, "lock_path": self.lock_path})
                return
            await asyncio.sleep(self.polling_period_seconds)
