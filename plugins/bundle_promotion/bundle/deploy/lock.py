"""The target's deploy lock, compatible with the Databricks CLI's `<state_path>/deploy.lock`.

The lock is a JSON file `{"ID", "AcquisitionTime", "IsForced", "User"}`. Whoever
creates it (create-if-absent) and reads its own ID back holds it, so the CLI and
this engine never deploy one target at the same time. `force` (the CLI's
`--force-lock`) overwrites a lock left by a deploy that died, marking it `IsForced`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from bundle_promotion.errors import LockHeld, WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

LOCK_FILE = "deploy.lock"


class DeployLock:
    """The deploy lock of the target whose state lives in `state_path`."""

    def __init__(self, api: WorkspaceApi, state_path: str, *, force: bool = False) -> None:
        self._api = api
        self._state_path = state_path
        self.path = f"{state_path}/{LOCK_FILE}"
        self.force = force
        self._id = str(uuid.uuid4())

    def raise_if_held(self) -> None:
        """Raise `LockHeld` when another deployment holds the lock (a read, no write)."""
        holder = self._holder()
        if holder is not None and holder.get("ID") != self._id:
            raise LockHeld(held_message(holder, self.path))

    @contextmanager
    def held(self, user: str) -> Iterator[None]:
        """Hold the lock for the block; it is released on the way out, also after a failure."""
        self._acquire(user)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, user: str) -> None:
        lock = {
            "ID": self._id,
            "AcquisitionTime": datetime.now(UTC).isoformat(),
            "IsForced": self.force,
            "User": user,
        }
        workspace_files.make_dirs(self._api, self._state_path)
        try:
            workspace_files.write_bytes(self._api, self.path, json.dumps(lock).encode(), overwrite=self.force)
        except WorkspaceApiError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = self._holder()  # whoever won the race to create the file holds the lock
        if holder is None:
            raise LockHeld(
                f"the deploy lock {self.path} vanished right after it was written; retry the deploy"
            )
        if holder.get("ID") != self._id:
            raise LockHeld(held_message(holder, self.path))

    def _release(self) -> None:
        holder = self._holder()
        if holder is not None and holder.get("ID") == self._id:
            workspace_files.delete(self._api, self.path)

    def _holder(self) -> dict[str, Any] | None:
        lock = workspace_files.read_json(self._api, self.path)
        return lock if isinstance(lock, dict) else None


def held_message(holder: dict[str, Any], path: str) -> str:
    """The CLI's message for a lock held by someone else, and where the lock file is."""
    verb = "force-acquired" if holder.get("IsForced") else "acquired"
    return (
        f"deploy lock {verb} by {holder.get('User')} at {holder.get('AcquisitionTime')}. "
        "Another deployment may be in progress. Use --force-lock to override, "
        "but this may conflict with the other deployment if it is still active "
        f"(lock file: {path})"
    )
