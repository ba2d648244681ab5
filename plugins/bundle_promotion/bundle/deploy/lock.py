"""The target's deploy lock, compatible with the Databricks CLI's `<state_path>/deploy.lock`.

The lock is a JSON file `{"ID", "AcquisitionTime", "IsForced", "User"}`. Whoever
creates it (create-if-absent) and reads its own ID back holds it, so the CLI and
this engine never deploy one target at the same time. `force` (the CLI's
`--force-lock`) overwrites a lock left by a deploy that died, marking it `IsForced`.

A deploy run by a promotion has an owner: its run, task and environment. The lock's ID
derives from the owner, so a retry of the same task, on any worker, finds the lock it
left when it was killed and resumes as its holder. Another task of the same run and
environment takes the lock over: the DAG orders a run's tasks, so one that left the lock
(a deploy killed before its rollback runs) has ended. The owner is also written into the
lock (`Owner`, a field the CLI ignores) so that whoever meets the lock can say who holds
it, from which host, since when. A deploy without an owner (the command line) gets a
random ID, as the CLI does.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bundle_promotion.errors import LockHeld, LockNotBroken, WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

LOCK_FILE = "deploy.lock"
_OWNER_NAMESPACE = uuid.UUID("5b0e6f3c-7d1a-4c55-9c1e-2f8a4d6b9e01")


@dataclass(frozen=True)
class LockOwner:
    """The task that deploys: every try of it, on any worker, is the same owner."""

    run_id: str
    task_id: str
    environment: str

    def lock_id(self, state_path: str) -> str:
        name = json.dumps([state_path, self.run_id, self.task_id, self.environment])
        return str(uuid.uuid5(_OWNER_NAMESPACE, name))


class DeployLock:
    """The deploy lock of the target whose state lives in `state_path`."""

    def __init__(
        self, api: WorkspaceApi, state_path: str, *, force: bool = False, owner: LockOwner | None = None
    ) -> None:
        self._api = api
        self._state_path = state_path
        self.path = f"{state_path}/{LOCK_FILE}"
        self.force = force
        self._owner = owner
        self._id = owner.lock_id(state_path) if owner else str(uuid.uuid4())
        self._overwrite = force

    def holder(self) -> dict[str, Any] | None:
        """The lock file as it is now; None when nobody holds the lock (a read, no write)."""
        lock = workspace_files.read_json(self._api, self.path)
        return lock if isinstance(lock, dict) else None

    def is_own(self, holder: dict[str, Any]) -> bool:
        """Whether `holder` is this deploy's lock: taken by this owner on an earlier try."""
        return holder.get("ID") == self._id

    def refuse_if_held(self, holder: dict[str, Any] | None) -> None:
        """Raise `LockHeld` when someone else holds the lock and it is neither forced nor this run's."""
        if holder is None or self.is_own(holder):
            return
        if not (self.force or self._same_run(holder)):
            raise LockHeld(held_message(holder, self.path), holder, self.path)
        self._overwrite = True

    def _same_run(self, holder: dict[str, Any]) -> bool:
        owner = holder.get("Owner")
        if self._owner is None or not isinstance(owner, dict):
            return False
        return (owner.get("run_id"), owner.get("environment")) == (
            self._owner.run_id,
            self._owner.environment,
        )

    @contextmanager
    def held(self, user: str) -> Iterator[None]:
        """Hold the lock for the block; it is released on the way out, also after a failure."""
        self._acquire(user)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, user: str) -> None:
        lock: dict[str, Any] = {
            "ID": self._id,
            "AcquisitionTime": datetime.now(UTC).isoformat(),
            "IsForced": self.force,
            "User": user,
        }
        if self._owner is not None:
            lock["Owner"] = {**asdict(self._owner), "host": socket.gethostname()}
        workspace_files.make_dirs(self._api, self._state_path)
        try:
            workspace_files.write_bytes(
                self._api, self.path, json.dumps(lock).encode(), overwrite=self._overwrite
            )
        except WorkspaceApiError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = self.holder()  # whoever won the race to create the file holds the lock
        if holder is None:
            raise LockHeld(
                f"the deploy lock {self.path} vanished right after it was written; retry the deploy"
            )
        if not self.is_own(holder):
            raise LockHeld(held_message(holder, self.path), holder, self.path)

    def _release(self) -> None:
        holder = self.holder()
        if holder is not None and self.is_own(holder):
            workspace_files.delete(self._api, self.path)


def break_lock(api: WorkspaceApi, lock_path: str, lock_id: str) -> dict[str, Any]:
    """Delete the lock at ``lock_path`` only while it is still the one whose ID is ``lock_id``; returns it.

    Raises `LockNotBroken` when the lock is gone or has another ID: a newer deployment's lock is
    never broken for an older one. The workspace has no delete-if-unchanged, so a holder that
    releases the lock in the one round trip between the read and the delete, to a deploy that
    takes it at once, would lose the new lock; the deploy then finds its lock gone and fails.
    """
    holder = workspace_files.read_json(api, lock_path)
    if not isinstance(holder, dict):
        raise LockNotBroken(f"the deploy lock {lock_path} is free already: nothing to break")
    if holder.get("ID") != lock_id:
        raise LockNotBroken(
            f"the deploy lock {lock_path} is now held by {holder_name(holder)} since "
            f"{holder.get('AcquisitionTime')}, not the lock asked for ({lock_id}); "
            "look at the board again before breaking it"
        )
    workspace_files.delete(api, lock_path)
    return holder


def holder_name(holder: dict[str, Any]) -> str:
    """Who holds a lock: its user and, when a promotion took it, the run, task, environment and host."""
    return f"{holder.get('User')}{_owned_by(holder)}"


def held_message(holder: dict[str, Any], path: str) -> str:
    """The CLI's message for a lock held by someone else, who holds it, and where the lock file is."""
    verb = "force-acquired" if holder.get("IsForced") else "acquired"
    return (
        f"deploy lock {verb} by {holder.get('User')} at {holder.get('AcquisitionTime')}{_owned_by(holder)}. "
        "Another deployment may be in progress. Use --force-lock to override, "
        "but this may conflict with the other deployment if it is still active "
        f"(lock file: {path})"
    )


def _owned_by(holder: dict[str, Any]) -> str:
    owner = holder.get("Owner")
    if not isinstance(owner, dict):
        return ""
    return (
        f" for run {owner.get('run_id')}, task {owner.get('task_id')} "
        f"({owner.get('environment')}) on host {owner.get('host')}"
    )
