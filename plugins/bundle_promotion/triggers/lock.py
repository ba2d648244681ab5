"""Wait in the triggerer until another deployment releases a target's deploy lock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DeployLockTrigger(BaseTrigger):
    """Fire ``{"status": "free"}`` once the lock at ``lock_path`` is gone, or ``{"status": "timeout",
    "holder": {...}}`` at ``deadline`` with the lock as last read.

    Reading the lock is a blocking REST call, so each poll runs in a thread.
    """

    def __init__(
        self, *, databricks_conn_id: str, lock_path: str, deadline: datetime, poll_interval: float = 30.0
    ) -> None:
        super().__init__()
        self.databricks_conn_id = databricks_conn_id
        self.lock_path = lock_path
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "databricks_conn_id": self.databricks_conn_id,
                "lock_path": self.lock_path,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from bundle_promotion.hooks.workspace import WorkspaceHook
        from bundle_promotion.workspace.files import read_json

        api = WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__)
        while True:
            holder = await asyncio.to_thread(read_json, api, self.lock_path)
            if holder is None:
                yield TriggerEvent({"status": "free"})
                return
            if datetime.now(UTC) >= self.deadline:
                yield TriggerEvent({"status": "timeout", "holder": holder, "lock_path": self.lock_path})
                return
            await asyncio.sleep(self.poll_interval)
