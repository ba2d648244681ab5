"""The ledger: the system of record for releases and where they are deployed.

A database of its own, never Airflow's: a SQLite file by default, Postgres when workers
share no disk. Several task processes write at once, so every write is idempotent and
SQLite runs in WAL mode with writers queueing on a busy timeout.

The schema grows through ``MIGRATIONS``; see there how to add a step.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar, cast, get_args

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Select,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from bundle_promotion.approvals import Approval, SignatureAttempt
from bundle_promotion.errors import BundlePromotionError, ReleaseError
from bundle_promotion.gates import GateEvaluation, GateResult
from bundle_promotion.release import Artifact, Release
from bundle_promotion.schedules import ScheduleSnapshot

DeploymentState = Literal["deploying", "succeeded", "failed"]
FinishedState = Literal["succeeded", "failed"]

_SQLITE_BUSY_TIMEOUT_MS = 30_000
_WAL_ATTEMPTS = 5
_WAL_RETRY_SECONDS = 0.05
_READ_ONLY = "bundle_promotion_read_only"
_MIGRATION_LOCK_KEY = 0x6275_6E64_6C65  # any constant shared by every process; "bundle" in hex
_AUDIT_CHAIN_LOCK_KEY = _MIGRATION_LOCK_KEY + 1
GENESIS_HASH = "0" * 64  # what the first audit event names as its predecessor
SYSTEM_ACTOR = "bundle-promotion"  # the actor of writes no person asked for
_T = TypeVar("_T")


@dataclass(frozen=True)
class DeploymentRecord:
    """One attempt to put a release into an environment, from one DAG run."""

    id: int
    bundle: str
    environment: str
    target: str
    release_id: int
    version: str
    commit: str
    state: DeploymentState
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    detail: str | None


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
    return hashlib.sha256(_canonical_json(content).encode()).hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC both ways, also on SQLite, which keeps no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"the ledger stores timezone-aware datetimes only, got {value}")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: _UtcDateTime}


class _SchemaVersionRow(_Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime]


class _ReleaseRow(_Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("bundle", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    commit: Mapped[str] = mapped_column("commit_sha", String(64))
    config_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    recorded_at: Mapped[datetime]
    artifacts: Mapped[list[_ArtifactRow]] = relationship(order_by="_ArtifactRow.position", lazy="selectin")


class _ArtifactRow(_Base):
    __tablename__ = "release_artifacts"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    relative_path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))


class _DeploymentRow(_Base):
    __tablename__ = "deployments"
    # Also the index behind every lookup by bundle and environment.
    __table_args__ = (UniqueConstraint("bundle", "environment", "release_id", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    run_id: Mapped[str] = mapped_column(String(250))
    target: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    release: Mapped[_ReleaseRow] = relationship(lazy="joined")


class _AuditEventRow(_Base):
    __tablename__ = "audit_events"

    # ``seq`` and ``prev_hash`` are unique, so two writers can never both extend the same event.
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(250))
    action: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


@dataclass(frozen=True)
class ScheduleHold:
    """A maintenance pause in force: the environment's schedules stay paused, deploys too, until it ends."""

    bundle: str
    environment: str
    snapshot: ScheduleSnapshot  # the states found when each job was first held: what ending restores
    since: datetime
    actor: str
    reason: str


class _ScheduleSnapshotRow(_Base):
    """The trigger states an environment had right before one deployment changed them."""

    __tablename__ = "schedule_snapshots"

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime]
    triggers: Mapped[str] = mapped_column(Text)


class _ScheduleHoldRow(_Base):
    """The desired schedule state of an environment, when it is not its policy: paused, on hold."""

    __tablename__ = "schedule_holds"

    bundle: Mapped[str] = mapped_column(String(200), primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(250))
    reason: Mapped[str] = mapped_column(Text)
    triggers: Mapped[str] = mapped_column(Text)


def _create_tables(connection: Connection, *models: type[_Base]) -> None:
    tables = [_Base.metadata.tables[model.__tablename__] for model in models]
    _Base.metadata.create_all(connection, tables=tables)


def _create_releases_and_deployments(connection: Connection) -> None:
    _create_tables(connection, _ReleaseRow, _ArtifactRow, _DeploymentRow)


# Schema version N means the first N steps have run. Append a step to change the schema;
# never edit or reorder one. A step that adds a table creates it from its model. Since
# tables are created from the models as they stand, a step that changes an existing table
# must tolerate a fresh database that already has the change (add a column only if missing).
def _create_audit_events(connection: Connection) -> None:
    _create_tables(connection, _AuditEventRow)


def _create_schedule_tables(connection: Connection) -> None:
    _create_tables(connection, _ScheduleSnapshotRow, _ScheduleHoldRow)


class _ApprovalRow(_Base):
    """A decision on one release digest for one environment; never updated, never deleted."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    release_digest: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(250))
    approver_name: Mapped[str | None] = mapped_column(String(250))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    given_at: Mapped[datetime]
    groups: Mapped[str] = mapped_column(Text)  # JSON list
    overrides_freeze: Mapped[bool]
    signature: Mapped[str] = mapped_column(String(16))
    meaning: Mapped[str | None] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(50))


class _SignatureAttemptRow(_Base):
    __tablename__ = "signature_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    release_digest: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(250))
    succeeded: Mapped[bool]
    detail: Mapped[str] = mapped_column(Text)
    attempted_at: Mapped[datetime]


class _GateEvaluationRow(_Base):
    """One evaluation of all of an environment's gates for one run: what the board shows as pending."""

    __tablename__ = "gate_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    run_id: Mapped[str] = mapped_column(String(250))
    triggered_by: Mapped[str | None] = mapped_column(String(250))
    commit_authors: Mapped[str] = mapped_column(Text)  # JSON list
    evaluated_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    results: Mapped[str] = mapped_column(Text)  # JSON list of {gate, status, reason}
    release: Mapped[_ReleaseRow] = relationship(lazy="joined")


def _create_approval_and_gate_tables(connection: Connection) -> None:
    _create_tables(connection, _ApprovalRow, _SignatureAttemptRow, _GateEvaluationRow)


@dataclass(frozen=True)
class DataSnapshot:
    """What a rollback needs of the data, recorded before a run deploys into an environment."""

    bundle: str
    environment: str
    run_id: str
    previous_release_id: int | None
    model_aliases: dict[str, int | None]  # "catalog.schema.model@alias" -> version, None when unset
    table_versions: dict[str, int]  # "catalog.schema.table" -> Delta version
    taken_at: datetime


@dataclass(frozen=True)
class EnvironmentHold:
    """No promotion enters the environment until a person clears the hold, with a reason."""

    bundle: str
    environment: str
    reason: str
    held_by: str
    held_at: datetime
    run_id: str | None


class _DataSnapshotRow(_Base):
    __tablename__ = "data_snapshots"
    __table_args__ = (UniqueConstraint("bundle", "environment", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(250))
    previous_release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    model_aliases: Mapped[str] = mapped_column(Text)  # JSON object
    table_versions: Mapped[str] = mapped_column(Text)  # JSON object
    taken_at: Mapped[datetime]


class _EnvironmentHoldRow(_Base):
    """An environment's hold; clearing deletes it, and the audit trail keeps the history."""

    __tablename__ = "environment_holds"
    __table_args__ = (UniqueConstraint("bundle", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    held_by: Mapped[str] = mapped_column(String(250))
    held_at: Mapped[datetime]
    run_id: Mapped[str | None] = mapped_column(String(250))


def _create_rollback_tables(connection: Connection) -> None:
    _create_tables(connection, _DataSnapshotRow, _EnvironmentHoldRow)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _create_releases_and_deployments,
    _create_audit_events,
    _create_schedule_tables,
    _create_approval_and_gate_tables,
    _create_rollback_tables,
)


class Ledger:
    """Releases and deployments in the database at ``url`` (any SQLAlchemy URL)."""

    def __init__(self, url: str) -> None:
        self._url = make_url(url).render_as_string(hide_password=True)
        self._engine = _create_engine(url)
        self._writes = sessionmaker(self._engine, expire_on_commit=False)
        self._reads = sessionmaker(self._engine.execution_options(**{_READ_ONLY: True}))

    def migrate(self) -> None:
        """Bring the schema up to date; a no-op when it is, and safe when processes race."""
        with self._engine.begin() as connection:
            _serialize_migrations(connection)
            _create_tables(connection, _SchemaVersionRow)
            current = connection.scalar(select(func.max(_SchemaVersionRow.version))) or 0
            if current > len(MIGRATIONS):
                raise BundlePromotionError(
                    f"the ledger at {self._url} has schema version {current}, but this bundle-promotion "
                    f"knows versions up to {len(MIGRATIONS)}; upgrade bundle-promotion on this worker"
                )
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(connection)
                connection.execute(insert(_SchemaVersionRow).values(version=version, applied_at=_now()))

    def record_release(self, release: Release, *, actor: str = SYSTEM_ACTOR) -> int:
        """The release's id; recording the same release again returns the first id."""
        return _retry_once_on_conflict(lambda: self._record_release(release, actor))

    def release(self, release_id: int) -> Release:
        with self._reads() as session:
            return _to_release(self._release_row(session, release_id))

    def release_by_version(self, bundle: str, version: str) -> tuple[int, Release] | None:
        """The id and content of the bundle's recorded version, if any: lets a retry skip the build."""
        with self._reads() as session:
            row = session.scalar(_release_query(bundle, version))
            return (row.id, _to_release(row)) if row is not None else None

    def start_deployment(
        self,
        *,
        bundle: str,
        environment: str,
        target: str,
        release_id: int,
        run_id: str,
        actor: str = SYSTEM_ACTOR,
    ) -> int:
        """The deployment's id, in state ``deploying``; a retried task gets its first row back."""
        return _retry_once_on_conflict(
            lambda: self._start_deployment(bundle, environment, target, release_id, run_id, actor)
        )

    def finish_deployment(
        self,
        deployment_id: int,
        state: FinishedState,
        detail: str | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        if state not in get_args(FinishedState):
            raise ValueError(f"a deployment finishes as one of {get_args(FinishedState)}, not {state!r}")
        with self._writes.begin() as session:
            row = session.get(_DeploymentRow, deployment_id)
            if row is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            if (row.state, row.detail) == (state, detail):
                return
            row.state = state
            row.finished_at = _now()
            row.detail = detail
            self._record_event(
                session,
                actor=actor,
                action=f"deployment.{state}",
                subject=f"{row.bundle}/{row.environment}",
                reason=detail,
                details=_deployment_details(row),
            )

    def record_check(
        self,
        deployment_id: int,
        *,
        check: Literal["verification", "tests"],
        name: str,
        passed: bool,
        detail: str | None = None,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """Keep the outcome of a verification or test of a deployment in the audit trail (IV/OV evidence)."""
        with self._writes.begin() as session:
            row = session.get(_DeploymentRow, deployment_id)
            if row is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            self._record_event(
                session,
                actor=actor,
                action=f"{check}.{'passed' if passed else 'failed'}",
                subject=f"{row.bundle}/{row.environment}",
                reason=detail,
                details={**_deployment_details(row), "check": name},
            )

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
            self._record_event(
                session, actor=actor, action=action, subject=subject, reason=reason, details=details
            )

    def audit_events(self, *, after_seq: int = 0) -> list[AuditEvent]:
        """The audit trail in the order it was written."""
        query = select(_AuditEventRow).where(_AuditEventRow.seq > after_seq).order_by(_AuditEventRow.seq)
        with self._reads() as session:
            return [_to_event(row) for row in session.scalars(query)]

    @staticmethod
    def _record_event(
        session: Session,
        *,
        actor: str,
        action: str,
        subject: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit event in the caller's transaction, so it commits or rolls back with the write.

        Writers queue on the chain's tail: SQLite's writers hold the database lock from BEGIN
        IMMEDIATE, Postgres' take a transaction-scoped advisory lock, and the unique
        ``prev_hash`` stops any writer that slipped past both.
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_CHAIN_LOCK_KEY})
        last = session.scalar(select(_AuditEventRow).order_by(_AuditEventRow.seq.desc()).limit(1))
        row = _AuditEventRow(
            seq=last.seq + 1 if last is not None else 1,
            occurred_at=_now(),
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=_canonical_json(dict(details or {})),
            prev_hash=last.hash if last is not None else GENESIS_HASH,
        )
        row.hash = _to_event(row).expected_hash()
        session.add(row)
        session.flush()

    def current_release(self, bundle: str, environment: str) -> tuple[Release, DeploymentRecord] | None:
        """The release of the last deployment that succeeded in the environment, if any."""
        query = (
            _deployments_query(bundle, environment)
            .where(_DeploymentRow.state == "succeeded")
            .order_by(_DeploymentRow.finished_at.desc(), _DeploymentRow.id.desc())
            .limit(1)
        )
        with self._reads() as session:
            row = session.scalar(query)
            return (_to_release(row.release), _to_record(row)) if row is not None else None

    def deployments(self, bundle: str, environment: str | None = None) -> list[DeploymentRecord]:
        """Newest first."""
        query = _deployments_query(bundle, environment).order_by(
            _DeploymentRow.started_at.desc(), _DeploymentRow.id.desc()
        )
        with self._reads() as session:
            return [_to_record(row) for row in session.scalars(query)]

    def record_schedule_snapshot(
        self, deployment_id: int, found: ScheduleSnapshot, *, actor: str = SYSTEM_ACTOR
    ) -> ScheduleSnapshot:
        """Keep the trigger states found before the deployment changed anything; returns the kept one.

        The first snapshot of a deployment wins: a retried deploy would find the states it set itself.
        """
        return _retry_once_on_conflict(lambda: self._record_schedule_snapshot(deployment_id, found, actor))

    def schedule_snapshot(self, deployment_id: int) -> ScheduleSnapshot | None:
        """The trigger states the environment had before the deployment, as recorded by its deploy step."""
        with self._reads() as session:
            row = session.get(_ScheduleSnapshotRow, deployment_id)
            return _to_snapshot(row.triggers) if row is not None else None

    def hold_schedules(
        self,
        bundle: str,
        environment: str,
        found: ScheduleSnapshot,
        *,
        reason: str,
        actor: str = SYSTEM_ACTOR,
    ) -> ScheduleHold:
        """Put the environment on hold, remembering the states ``found`` to restore; joins a hold in force.

        A job the hold already knows keeps its first state: by now it is paused by the hold.
        """
        return _retry_once_on_conflict(
            lambda: self._hold_schedules(bundle, environment, found, reason=reason, actor=actor)
        )

    def schedule_hold(self, bundle: str, environment: str) -> ScheduleHold | None:
        with self._reads() as session:
            row = session.get(_ScheduleHoldRow, (bundle, environment))
            return _to_hold(row) if row is not None else None

    def end_schedule_hold(
        self,
        bundle: str,
        environment: str,
        job_ids: Collection[str] | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """Forget the held states of these jobs or pipelines (all when None); the hold ends once empty."""
        with self._writes.begin() as session:
            row = session.get(_ScheduleHoldRow, (bundle, environment))
            if row is None:
                return
            held = _to_snapshot(row.triggers)
            left = held.without(held.resource_ids if job_ids is None else job_ids)
            if left.triggers:
                row.triggers = _canonical_json(left.to_json())
            else:
                session.delete(row)
            self._record_event(
                session,
                actor=actor,
                action="schedules.released" if left.triggers else "schedules.hold_ended",
                subject=f"{bundle}/{environment}",
                details={"released": sorted(set(held.resource_ids) - set(left.resource_ids))},
            )

    def _record_schedule_snapshot(
        self, deployment_id: int, found: ScheduleSnapshot, actor: str
    ) -> ScheduleSnapshot:
        with self._writes.begin() as session:
            kept = session.get(_ScheduleSnapshotRow, deployment_id)
            if kept is not None:
                return _to_snapshot(kept.triggers)
            deployment = session.get(_DeploymentRow, deployment_id)
            if deployment is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            session.add(
                _ScheduleSnapshotRow(
                    deployment_id=deployment_id,
                    bundle=deployment.bundle,
                    environment=deployment.environment,
                    taken_at=_now(),
                    triggers=_canonical_json(found.to_json()),
                )
            )
            self._record_event(
                session,
                actor=actor,
                action="schedules.snapshot",
                subject=f"{deployment.bundle}/{deployment.environment}",
                details={"deployment_id": deployment_id, "triggers": found.to_json()},
            )
            return found

    def _hold_schedules(
        self, bundle: str, environment: str, found: ScheduleSnapshot, *, reason: str, actor: str
    ) -> ScheduleHold:
        with self._writes.begin() as session:
            row = session.get(_ScheduleHoldRow, (bundle, environment))
            if row is None:
                row = _ScheduleHoldRow(
                    bundle=bundle, environment=environment, since=_now(), actor=actor, reason=reason
                )
                session.add(row)
                held = found
            else:
                held = _to_snapshot(row.triggers).merged_with(found)
            row.triggers = _canonical_json(held.to_json())
            session.flush()
            self._record_event(
                session,
                actor=actor,
                action="schedules.held",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"triggers": found.to_json()},
            )
            return _to_hold(row)

    def record_data_snapshot(self, snapshot: DataSnapshot, *, actor: str = SYSTEM_ACTOR) -> DataSnapshot:
        """The run's snapshot: the first one recorded wins, so a retry after the deploy keeps the truth."""
        return _retry_once_on_conflict(lambda: self._record_data_snapshot(snapshot, actor))

    def data_snapshot(self, bundle: str, environment: str, run_id: str) -> DataSnapshot | None:
        with self._reads() as session:
            row = session.scalar(_data_snapshot_query(bundle, environment, run_id))
            return _to_data_snapshot(row) if row is not None else None

    def hold_environment(
        self, bundle: str, environment: str, *, reason: str, actor: str, run_id: str | None = None
    ) -> EnvironmentHold:
        """Stop promotions into the environment; a held environment keeps its first hold."""
        return _retry_once_on_conflict(
            lambda: self._hold_environment(bundle, environment, reason, actor, run_id)
        )

    def environment_hold(self, bundle: str, environment: str) -> EnvironmentHold | None:
        with self._reads() as session:
            row = session.scalar(_hold_query(bundle, environment))
            return _to_environment_hold(row) if row is not None else None

    def clear_hold(self, bundle: str, environment: str, *, reason: str, actor: str) -> EnvironmentHold | None:
        """The hold that was cleared, or None when the environment was not held."""
        if not reason.strip():
            raise BundlePromotionError(
                f"clearing the hold on {bundle}/{environment} needs a reason: say why promotions may resume"
            )
        with self._writes.begin() as session:
            row = session.scalar(_hold_query(bundle, environment))
            if row is None:
                return None
            session.delete(row)
            self._record_event(
                session,
                actor=actor,
                action="hold.cleared",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"bundle": bundle, "environment": environment, "held_by": row.held_by},
            )
            return _to_environment_hold(row)

    def _record_data_snapshot(self, snapshot: DataSnapshot, actor: str) -> DataSnapshot:
        with self._writes.begin() as session:
            query = _data_snapshot_query(snapshot.bundle, snapshot.environment, snapshot.run_id)
            if (recorded := session.scalar(query)) is not None:
                return _to_data_snapshot(recorded)
            row = _DataSnapshotRow(
                bundle=snapshot.bundle,
                environment=snapshot.environment,
                run_id=snapshot.run_id,
                previous_release_id=snapshot.previous_release_id,
                model_aliases=_canonical_json(snapshot.model_aliases),
                table_versions=_canonical_json(snapshot.table_versions),
                taken_at=snapshot.taken_at,
            )
            session.add(row)
            session.flush()
            details = _to_data_snapshot(row)
            self._record_event(
                session,
                actor=actor,
                action="snapshot.recorded",
                subject=f"{snapshot.bundle}/{snapshot.environment}",
                details={
                    "run_id": snapshot.run_id,
                    "previous_release_id": snapshot.previous_release_id,
                    "model_aliases": details.model_aliases,
                    "table_versions": details.table_versions,
                },
            )
            return details

    def _hold_environment(
        self, bundle: str, environment: str, reason: str, actor: str, run_id: str | None
    ) -> EnvironmentHold:
        with self._writes.begin() as session:
            if (held := session.scalar(_hold_query(bundle, environment))) is not None:
                return _to_environment_hold(held)
            row = _EnvironmentHoldRow(
                bundle=bundle,
                environment=environment,
                reason=reason,
                held_by=actor,
                held_at=_now(),
                run_id=run_id,
            )
            session.add(row)
            session.flush()
            self._record_event(
                session,
                actor=actor,
                action="hold.set",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"bundle": bundle, "environment": environment, "run_id": run_id},
            )
            return _to_environment_hold(row)

    def _record_release(self, release: Release, actor: str) -> int:
        with self._writes.begin() as session:
            recorded = session.scalar(_release_query(release.bundle, release.version))
            if recorded is not None:
                _check_same_release(recorded, release)
                return recorded.id
            row = _to_row(release)
            session.add(row)
            session.flush()
            self._record_event(
                session,
                actor=actor,
                action="release.recorded",
                subject=f"{release.bundle}@{release.version}",
                details={
                    "bundle": release.bundle,
                    "version": release.version,
                    "commit": release.commit,
                    "release_digest": release.digest,
                    "release_id": row.id,
                },
            )
            return row.id

    def _start_deployment(
        self, bundle: str, environment: str, target: str, release_id: int, run_id: str, actor: str
    ) -> int:
        with self._writes.begin() as session:
            release = self._release_row(session, release_id)
            row = session.scalar(
                select(_DeploymentRow).filter_by(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
            )
            if row is None:
                row = _DeploymentRow(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
                session.add(row)
            # A retry of an attempt still deploying is the same attempt: no second event.
            new_attempt = row.state != "deploying"
            row.release = release
            row.target = target
            row.state = "deploying"
            row.started_at = _now()
            row.finished_at = None
            row.detail = None
            session.flush()
            if new_attempt:
                self._record_event(
                    session,
                    actor=actor,
                    action="deployment.started",
                    subject=f"{bundle}/{environment}",
                    details=_deployment_details(row),
                )
            return row.id

    def record_approval(self, approval: Approval) -> int:
        """Keep an approval or rejection, with its audit event; approvals are never changed."""
        with self._writes.begin() as session:
            row = _approval_row(approval)
            session.add(row)
            session.flush()
            self._record_event(
                session,
                actor=approval.approver,
                action=f"approval.{approval.decision}",
                subject=f"{approval.bundle}/{approval.environment}",
                reason=approval.reason,
                details=_approval_details(approval),
            )
            return row.id

    def approvals(self, bundle: str, environment: str) -> list[Approval]:
        """Every approval and rejection for the environment, oldest first."""
        query = (
            select(_ApprovalRow)
            .where(_ApprovalRow.bundle == bundle, _ApprovalRow.environment == environment)
            .order_by(_ApprovalRow.given_at, _ApprovalRow.id)
        )
        with self._reads() as session:
            return [_to_approval(row) for row in session.scalars(query)]

    def record_signature_attempt(self, attempt: SignatureAttempt) -> None:
        with self._writes.begin() as session:
            session.add(
                _SignatureAttemptRow(
                    bundle=attempt.bundle,
                    environment=attempt.environment,
                    release_digest=attempt.release_digest,
                    signer=attempt.signer,
                    succeeded=attempt.succeeded,
                    detail=attempt.detail,
                    attempted_at=attempt.attempted_at,
                )
            )
            self._record_event(
                session,
                actor=attempt.signer,
                action="signature.verified" if attempt.succeeded else "signature.refused",
                subject=f"{attempt.bundle}/{attempt.environment}",
                reason=attempt.detail,
                details={"release_digest": attempt.release_digest},
            )

    def signature_attempts(self, bundle: str) -> list[SignatureAttempt]:
        """Oldest first."""
        query = (
            select(_SignatureAttemptRow)
            .where(_SignatureAttemptRow.bundle == bundle)
            .order_by(_SignatureAttemptRow.attempted_at, _SignatureAttemptRow.id)
        )
        with self._reads() as session:
            return [
                SignatureAttempt(
                    bundle=row.bundle,
                    environment=row.environment,
                    release_digest=row.release_digest,
                    signer=row.signer,
                    succeeded=row.succeeded,
                    detail=row.detail,
                    attempted_at=row.attempted_at,
                )
                for row in session.scalars(query)
            ]

    def record_gate_evaluation(self, evaluation: GateEvaluation) -> None:
        """Keep every evaluation; the audit trail gets an event when a gate's status changes in the run.

        A waiting gate is evaluated every poke, and some reasons change each time (a soak's time
        to go); the trail records each change of status, with the reasons at that moment.
        """
        results = _canonical_json([_result_json(result) for result in evaluation.results])
        with self._writes.begin() as session:
            previous = session.scalar(
                _gate_evaluations_query(evaluation.bundle, evaluation.environment)
                .where(_GateEvaluationRow.run_id == evaluation.run_id)
                .limit(1)
            )
            session.add(
                _GateEvaluationRow(
                    bundle=evaluation.bundle,
                    environment=evaluation.environment,
                    release_id=evaluation.release_id,
                    run_id=evaluation.run_id,
                    triggered_by=evaluation.triggered_by,
                    commit_authors=_canonical_json(list(evaluation.commit_authors)),
                    evaluated_at=evaluation.evaluated_at,
                    status=evaluation.status,
                    results=results,
                )
            )
            if previous is None or _statuses(previous.results) != _statuses(results):
                self._record_event(
                    session,
                    actor=SYSTEM_ACTOR,
                    action=f"gates.{evaluation.status}",
                    subject=f"{evaluation.bundle}/{evaluation.environment}",
                    details={
                        "run_id": evaluation.run_id,
                        "version": evaluation.version,
                        "release_digest": evaluation.release_digest,
                        "results": json.loads(results),
                    },
                )

    def latest_gate_evaluations(self, bundle: str | None = None) -> list[GateEvaluation]:
        """The newest evaluation of each environment (per bundle), newest first."""
        newest = (
            select(func.max(_GateEvaluationRow.id))
            .group_by(_GateEvaluationRow.bundle, _GateEvaluationRow.environment)
            .scalar_subquery()
        )
        query = select(_GateEvaluationRow).where(_GateEvaluationRow.id.in_(newest))
        if bundle is not None:
            query = query.where(_GateEvaluationRow.bundle == bundle)
        with self._reads() as session:
            rows = session.scalars(query.order_by(_GateEvaluationRow.id.desc()))
            return [_to_gate_evaluation(row) for row in rows]

    def _release_row(self, session: Session, release_id: int) -> _ReleaseRow:
        row = session.get(_ReleaseRow, release_id)
        if row is None:
            raise ReleaseError(self._missing("release", release_id))
        return row

    def _missing(self, kind: str, row_id: int) -> str:
        return (
            f"no {kind} with id {row_id} in the ledger at {self._url}; tasks that run on different "
            "machines must share one ledger (a Postgres URL in the bundle_promotion_ledger connection)"
        )


def _create_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy sends BEGIN itself, see below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a transaction that read first and then writes
        # fails with "database is locked" at once instead of waiting out the busy timeout.
        # Readers need no lock in WAL mode.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL, which lets readers and one writer work at once.

    The switch needs a moment of exclusive access and ignores the busy timeout, so two
    processes opening a new database at once can refuse each other; the loser retries.
    """
    for attempt in range(1, _WAL_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == _WAL_ATTEMPTS:
                raise
            time.sleep(_WAL_RETRY_SECONDS * attempt)


def _serialize_migrations(connection: Connection) -> None:
    """Make a second migrating process wait, then find the work done. On SQLite, BEGIN IMMEDIATE does it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})


def _retry_once_on_conflict(write: Callable[[], _T]) -> _T:
    # Writes look their row up before inserting it. When a concurrent transaction inserts the
    # same row in between (Postgres' read committed allows it), ours hits the unique
    # constraint; the second try finds that row.
    try:
        return write()
    except IntegrityError:
        return write()


def _check_same_release(recorded: _ReleaseRow, release: Release) -> None:
    if recorded.digest == release.digest:
        return
    if recorded.commit != release.commit:
        raise ReleaseError(
            f"{release.version} of {release.bundle} was recorded from commit {recorded.commit}, "
            f"but the tag now points to {release.commit}; tags are immutable: cut a new version"
        )
    raise ReleaseError(
        f"{release.version} of {release.bundle} (commit {release.commit}) was recorded with release "
        f"digest {recorded.digest}, but building it again gave {release.digest}: the build or the "
        "config is not reproducible. Make the build reproducible, or cut a new version"
    )


def _release_query(bundle: str, version: str) -> Select[_ReleaseRow]:
    return select(_ReleaseRow).where(_ReleaseRow.bundle == bundle, _ReleaseRow.version == version)


def _deployments_query(bundle: str, environment: str | None) -> Select[_DeploymentRow]:
    query = select(_DeploymentRow).where(_DeploymentRow.bundle == bundle)
    return query if environment is None else query.where(_DeploymentRow.environment == environment)


def _to_row(release: Release) -> _ReleaseRow:
    return _ReleaseRow(
        bundle=release.bundle,
        version=release.version,
        commit=release.commit,
        config_digest=release.config_digest,
        digest=release.digest,
        recorded_at=_now(),
        artifacts=[
            _ArtifactRow(position=position, name=a.name, relative_path=a.relative_path, sha256=a.sha256)
            for position, a in enumerate(release.artifacts)
        ],
    )


def _to_release(row: _ReleaseRow) -> Release:
    return Release(
        bundle=row.bundle,
        version=row.version,
        commit=row.commit,
        artifacts=tuple(Artifact(a.name, a.relative_path, a.sha256) for a in row.artifacts),
        config_digest=row.config_digest,
    )


def _deployment_details(row: _DeploymentRow) -> dict[str, Any]:
    return {
        "bundle": row.bundle,
        "environment": row.environment,
        "target": row.target,
        "version": row.release.version,
        "release_digest": row.release.digest,
        "deployment_id": row.id,
        "run_id": row.run_id,
    }


def _approval_row(approval: Approval) -> _ApprovalRow:
    return _ApprovalRow(
        bundle=approval.bundle,
        environment=approval.environment,
        release_digest=approval.release_digest,
        approver=approval.approver,
        approver_name=approval.approver_name,
        decision=approval.decision,
        reason=approval.reason,
        given_at=approval.given_at,
        groups=_canonical_json(list(approval.groups)),
        overrides_freeze=approval.overrides_freeze,
        signature=approval.signature,
        meaning=approval.meaning,
        source=approval.source,
    )


def _approval_details(approval: Approval) -> dict[str, Any]:
    """What the audit event keeps: with the signer's printed name, time and meaning (21 CFR 11.50)."""
    return {
        "release_digest": approval.release_digest,
        "approver_name": approval.approver_name,
        "given_at": approval.given_at.isoformat(),
        "groups": list(approval.groups),
        "overrides_freeze": approval.overrides_freeze,
        "signature": approval.signature,
        "meaning": approval.meaning,
        "source": approval.source,
    }


def _to_approval(row: _ApprovalRow) -> Approval:
    return Approval(
        bundle=row.bundle,
        environment=row.environment,
        release_digest=row.release_digest,
        approver=row.approver,
        approver_name=row.approver_name,
        decision=cast(Any, row.decision),
        reason=row.reason,
        given_at=row.given_at,
        groups=tuple(json.loads(row.groups)),
        overrides_freeze=row.overrides_freeze,
        signature=cast(Any, row.signature),
        meaning=row.meaning,
        source=row.source,
    )


def _statuses(results_json: str) -> list[tuple[str, str]]:
    return [(result["gate"], result["status"]) for result in json.loads(results_json)]


def _result_json(result: GateResult) -> dict[str, Any]:
    recheck = result.recheck_after.total_seconds() if result.recheck_after is not None else None
    return {"gate": result.gate, "status": result.status, "reason": result.reason, "recheck_after": recheck}


def _gate_evaluations_query(bundle: str, environment: str) -> Select[_GateEvaluationRow]:
    return (
        select(_GateEvaluationRow)
        .where(_GateEvaluationRow.bundle == bundle, _GateEvaluationRow.environment == environment)
        .order_by(_GateEvaluationRow.id.desc())
    )


def _to_gate_evaluation(row: _GateEvaluationRow) -> GateEvaluation:
    return GateEvaluation(
        bundle=row.bundle,
        environment=row.environment,
        release_id=row.release_id,
        release_digest=row.release.digest,
        version=row.release.version,
        run_id=row.run_id,
        triggered_by=row.triggered_by,
        commit_authors=tuple(json.loads(row.commit_authors)),
        evaluated_at=row.evaluated_at,
        results=tuple(
            GateResult(
                gate=item["gate"],
                status=item["status"],
                reason=item["reason"],
                recheck_after=timedelta(seconds=item["recheck_after"])
                if item["recheck_after"] is not None
                else None,
            )
            for item in json.loads(row.results)
        ),
    )


def _to_snapshot(triggers_json: str) -> ScheduleSnapshot:
    return ScheduleSnapshot.from_json(json.loads(triggers_json))


def _to_hold(row: _ScheduleHoldRow) -> ScheduleHold:
    return ScheduleHold(
        bundle=row.bundle,
        environment=row.environment,
        snapshot=_to_snapshot(row.triggers),
        since=row.since,
        actor=row.actor,
        reason=row.reason,
    )


def _data_snapshot_query(bundle: str, environment: str, run_id: str) -> Select[_DataSnapshotRow]:
    return select(_DataSnapshotRow).filter_by(bundle=bundle, environment=environment, run_id=run_id)


def _hold_query(bundle: str, environment: str) -> Select[_EnvironmentHoldRow]:
    return select(_EnvironmentHoldRow).filter_by(bundle=bundle, environment=environment)


def _to_data_snapshot(row: _DataSnapshotRow) -> DataSnapshot:
    return DataSnapshot(
        bundle=row.bundle,
        environment=row.environment,
        run_id=row.run_id,
        previous_release_id=row.previous_release_id,
        model_aliases=json.loads(row.model_aliases),
        table_versions=json.loads(row.table_versions),
        taken_at=row.taken_at,
    )


def _to_environment_hold(row: _EnvironmentHoldRow) -> EnvironmentHold:
    return EnvironmentHold(
        bundle=row.bundle,
        environment=row.environment,
        reason=row.reason,
        held_by=row.held_by,
        held_at=row.held_at,
        run_id=row.run_id,
    )


def _to_event(row: _AuditEventRow) -> AuditEvent:
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
    )


def _to_record(row: _DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        id=row.id,
        bundle=row.bundle,
        environment=row.environment,
        target=row.target,
        release_id=row.release_id,
        version=row.release.version,
        commit=row.release.commit,
        state=cast(DeploymentState, row.state),
        run_id=row.run_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        detail=row.detail,
    )


def _now() -> datetime:
    return datetime.now(UTC)
