"""Deploys waiting on a deploy lock: which lock, held by whom, since when; and a lock broken on purpose.

A deploy that finds its target's lock held by another deployment records the lock it waits on,
so the board can say who holds it and for how long, and a person can break exactly that lock.
The record goes once the deploy gets the lock, ends, or the lock is broken. Every change is an
audit event bound to the record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bundle_promotion.identity import canonical_identity
from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import DeployLockWaitRow, now

_WAITING = "deploy_lock.waiting"


@dataclass(frozen=True)
class LockWait:
    """A deploy of ``run_id`` waiting on the lock at ``lock_path``, which ``holder`` holds."""

    bundle: str
    environment: str
    run_id: str
    lock_path: str
    holder: dict[str, Any]  # the lock file as the deploy read it: ID, User, AcquisitionTime, Owner
    held_since: datetime | None
    waiting_since: datetime

    @property
    def lock_id(self) -> str | None:
        return self.holder.get("ID")


class LockWaitsMixin(LedgerDatabase):
    """``Ledger`` methods for deploys waiting on a deploy lock."""

    def wait_for_lock(
        self, bundle: str, environment: str, *, run_id: str, lock_path: str, holder: dict[str, Any]
    ) -> LockWait:
        """Record that the run's deploy waits on the lock; the same wait found again changes nothing."""
        return retry_once_on_conflict(
            lambda: self._wait_for_lock(bundle, environment, run_id, lock_path, holder)
        )

    def lock_wait(self, bundle: str, environment: str) -> LockWait | None:
        with self._reads() as session:
            row = session.scalar(_wait_query(bundle, environment))
            return _to_lock_wait(row) if row is not None else None

    def end_lock_wait(self, bundle: str, environment: str, *, run_id: str) -> None:
        """The run's deploy waits no more: it got the lock, or it ended. A no-op when it was not waiting."""
        with self._writes.begin() as session:
            row = session.scalar(_wait_query(bundle, environment).filter_by(run_id=run_id))
            if row is not None:
                _delete(session, row, actor=SYSTEM_ACTOR, action="deploy_lock.wait_ended", reason=None)

    def record_lock_broken(self, wait: LockWait, *, actor: str, reason: str) -> None:
        """A person broke the lock ``wait`` waited on: the wait ends, and the audit trail says who and why.

        ``actor`` is the caller's identity as authenticated, never a name from a request's body; it
        is recorded as their one identity (``IdentityRefused`` for a name that could pass for another's)."""
        actor = canonical_identity(actor)
        with self._writes.begin() as session:
            row = session.scalar(_wait_query(wait.bundle, wait.environment).filter_by(run_id=wait.run_id))
            if row is not None:
                _delete(session, row, actor=actor, action="deploy_lock.broken", reason=reason)

    def _wait_for_lock(
        self, bundle: str, environment: str, run_id: str, lock_path: str, holder: dict[str, Any]
    ) -> LockWait:
        with self._writes.begin() as session:
            found = session.scalar(_wait_query(bundle, environment))
            if found is not None and (found.run_id, found.lock_path, found.holder) == (
                run_id,
                lock_path,
                json.dumps(holder, sort_keys=True),
            ):
                return _to_lock_wait(found)
            if found is not None:  # another run's wait, or the lock changed hands: the newest is what waits
                _delete(session, found, actor=SYSTEM_ACTOR, action="deploy_lock.wait_ended", reason=None)
                session.flush()
            row = DeployLockWaitRow(
                bundle=bundle,
                environment=environment,
                run_id=run_id,
                lock_path=lock_path,
                holder=json.dumps(holder, sort_keys=True),
                held_since=acquired_at(holder),
                waiting_since=now(),
            )
            session.add(row)
            session.flush()
            wait = _to_lock_wait(row)
            append_event(
                session,
                actor=SYSTEM_ACTOR,
                action=_WAITING,
                subject=f"{bundle}/{environment}",
                details=_details(wait),
                record=row,
            )
            return wait


def acquired_at(holder: dict[str, Any]) -> datetime | None:
    """When the lock was taken, as its ``AcquisitionTime`` says; None when it says nothing usable."""
    try:
        taken = datetime.fromisoformat(str(holder["AcquisitionTime"]))
    except (KeyError, ValueError):
        return None
    return taken if taken.tzinfo is not None else taken.replace(tzinfo=UTC)


def _delete(session: Session, row: DeployLockWaitRow, *, actor: str, action: str, reason: str | None) -> None:
    wait = _to_lock_wait(row)
    session.delete(row)
    details = _details(wait)
    if wait.held_since is not None:
        details["held_for_seconds"] = round((now() - wait.held_since).total_seconds())
    append_event(
        session,
        actor=actor,
        action=action,
        subject=f"{wait.bundle}/{wait.environment}",
        reason=reason,
        details=details,
        record=row,
        deleted=True,
    )


def _details(wait: LockWait) -> dict[str, Any]:
    return {"run_id": wait.run_id, "lock_path": wait.lock_path, "holder": wait.holder}


def _wait_query(bundle: str, environment: str) -> Select[DeployLockWaitRow]:
    return select(DeployLockWaitRow).filter_by(bundle=bundle, environment=environment)


def _to_lock_wait(row: DeployLockWaitRow) -> LockWait:
    return LockWait(
        bundle=row.bundle,
        environment=row.environment,
        run_id=row.run_id,
        lock_path=row.lock_path,
        holder=json.loads(row.holder),
        held_since=row.held_since,
        waiting_since=row.waiting_since,
    )
