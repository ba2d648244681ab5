"""The append-only audit trail: ``AuditEvent``, its hash chain, and ``append_event`` for every write."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session

from bundle_promotion.ledger.database import AUDIT_CHAIN_LOCK_KEY, AUDIT_KEY, LedgerDatabase
from bundle_promotion.ledger.models import (
    ApprovalRow,
    AuditEventRow,
    Base,
    DeployLockWaitRow,
    DeploymentRow,
    EnvironmentHoldRow,
    GateEvaluationRow,
    ReleaseRow,
    ScheduleSnapshotRow,
    SignatureAttemptRow,
    now,
)

GENESIS_HASH = "0" * 64  # what the first audit event names as its predecessor
RECORD_KEY = "record"  # the details key binding the row an event wrote
RECORDS_BOUND = "ledger.records_bound"  # the event marking the rows older than record binding
# The tables whose every row an event binds (``append_event(record=...)``).
BoundRow = (
    ApprovalRow
    | SignatureAttemptRow
    | EnvironmentHoldRow
    | DeploymentRow
    | GateEvaluationRow
    | ReleaseRow
    | ScheduleSnapshotRow
    | DeployLockWaitRow
)
BOUND_TABLES: tuple[type[BoundRow], ...] = (
    ApprovalRow,
    SignatureAttemptRow,
    EnvironmentHoldRow,
    DeploymentRow,
    GateEvaluationRow,
    ReleaseRow,
    ScheduleSnapshotRow,
    DeployLockWaitRow,
)
SYSTEM_ACTOR = "bundle-promotion"  # the actor of writes no person asked for


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the append-only audit trail, chained to its predecessor by ``prev_hash``."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    reason: str | None
    details_json: str  # canonical JSON, hashed exactly as stored
    prev_hash: str
    hash: str
    mac: str | None = None

    @property
    def details(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.details_json))

    def expected_hash(self) -> str:
        """The hash this event's content and predecessor give; differs from ``hash`` once tampered with."""
        return audit_hash(
            seq=self.seq,
            occurred_at=self.occurred_at,
            actor=self.actor,
            action=self.action,
            subject=self.subject,
            reason=self.reason,
            details_json=self.details_json,
            prev_hash=self.prev_hash,
        )


def audit_hash(
    *,
    seq: int,
    occurred_at: datetime,
    actor: str,
    action: str,
    subject: str,
    reason: str | None,
    details_json: str,
    prev_hash: str,
) -> str:
    timestamp = occurred_at.astimezone(UTC).isoformat()
    content = [seq, timestamp, actor, action, subject, reason, details_json, prev_hash]
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def event_mac(key: bytes, event_hash: str) -> str:
    """The keyed MAC of an event: only a holder of the key, kept outside the ledger, can make one."""
    return hmac.new(key, event_hash.encode(), hashlib.sha256).hexdigest()


def record_hash(row: Base) -> str:
    """The hash of a ledger row's canonical content: what the event that wrote it binds.

    A release's content includes its artifacts, so an artifact's row is bound through its release.
    """
    content = _columns(row)
    if isinstance(row, ReleaseRow):
        content["artifacts"] = [_columns(artifact) for artifact in row.artifacts]
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def record_id(row: Base) -> int:
    """A bound row's id: its one primary-key column (a schedule snapshot's is its deployment's id)."""
    [key] = inspect(type(row)).primary_key_from_instance(row)
    return cast(int, key)


def _columns(row: Base) -> dict[str, Any]:
    return {
        attribute.columns[0].name: _plain(getattr(row, attribute.key))
        for attribute in inspect(type(row)).column_attrs
    }


def _plain(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class AuditTrailMixin(LedgerDatabase):
    """``Ledger`` methods that write and read the audit trail itself."""

    def record_event(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an event that goes with no other ledger write (a test result, a hold cleared by hand)."""
        with self._writes.begin() as session:
            append_event(session, actor=actor, action=action, subject=subject, reason=reason, details=details)

    def record_hashes(self) -> dict[tuple[str, int], str]:
        """The content hash of every row of the tables the audit trail binds, by (table, id)."""
        with self._reads() as session:
            return {
                (model.__tablename__, record_id(row)): record_hash(row)
                for model in BOUND_TABLES
                for row in session.scalars(select(model))
            }

    def audit_head(self) -> AuditEvent | None:
        """The newest event, or None for an empty trail."""
        with self._reads() as session:
            row = session.scalar(select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(1))
            return _to_event(row) if row is not None else None

    def audit_events(self, *, after_seq: int = 0) -> list[AuditEvent]:
        """The audit trail in the order it was written."""
        query = select(AuditEventRow).where(AuditEventRow.seq > after_seq).order_by(AuditEventRow.seq)
        with self._reads() as session:
            return [_to_event(row) for row in session.scalars(query)]


def append_event(
    session: Session,
    *,
    actor: str,
    action: str,
    subject: str,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    record: BoundRow | None = None,
    deleted: bool = False,
) -> None:
    """Append an audit event in the caller's transaction, so it commits or rolls back with the write.

    ``record`` is the row the write made, changed or (``deleted``) removed: the event binds
    its table, id and content hash, so ``evidence.verify`` finds a row changed, removed or
    slipped in behind the chain's back. With the session's ``audit_key`` each event also
    carries a keyed MAC.

    Writers queue on the chain's tail: SQLite's writers hold the database lock from BEGIN
    IMMEDIATE, Postgres' take a transaction-scoped advisory lock, and the unique
    ``prev_hash`` stops any writer that slipped past both.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_CHAIN_LOCK_KEY})
    last = session.scalar(select(AuditEventRow).order_by(AuditEventRow.seq.desc()).limit(1))
    details = dict(details or {})
    if record is not None:
        details[RECORD_KEY] = {
            "table": record.__tablename__,
            "id": record_id(record),
            "sha256": None if deleted else record_hash(record),
        }
    row = AuditEventRow(
        seq=last.seq + 1 if last is not None else 1,
        occurred_at=now(),
        actor=actor,
        action=action,
        subject=subject,
        reason=reason,
        details=canonical_json(details),
        prev_hash=last.hash if last is not None else GENESIS_HASH,
    )
    row.hash = _to_event(row).expected_hash()
    if (key := session.info.get(AUDIT_KEY)) is not None:
        row.mac = event_mac(key, row.hash)
    session.add(row)
    session.flush()


def _to_event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        details_json=row.details,
        prev_hash=row.prev_hash,
        hash=row.hash,
        mac=row.mac,
    )
