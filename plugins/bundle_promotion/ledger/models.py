"""The ledger's tables as SQLAlchemy 2 models, and the clock their timestamps come from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Dialect, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


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


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: _UtcDateTime}


class SchemaVersionRow(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime]


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("bundle", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    commit: Mapped[str] = mapped_column("commit_sha", String(64))
    config_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    recorded_at: Mapped[datetime]
    artifacts: Mapped[list[ArtifactRow]] = relationship(order_by="ArtifactRow.position", lazy="selectin")


class ArtifactRow(Base):
    __tablename__ = "release_artifacts"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    relative_path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        # Also the index behind every lookup by bundle and environment.
        UniqueConstraint("bundle", "environment", "release_id", "run_id"),
        # The current deployment of an environment is one seek, however long its history.
        Index("ix_deployments_current", "bundle", "environment", "applied_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    run_id: Mapped[str] = mapped_column(String(250))
    target: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    # When the engine last finished applying it: from then on the workspace runs it.
    applied_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    # The rollback's redeploy that put another release back over this one.
    superseded_by: Mapped[int | None]
    release: Mapped[ReleaseRow] = relationship(lazy="joined")


class AuditEventRow(Base):
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
    mac: Mapped[str | None] = mapped_column(String(64))  # keyed with a secret outside the ledger


class ScheduleSnapshotRow(Base):
    """The trigger states an environment had right before one deployment changed them."""

    __tablename__ = "schedule_snapshots"

    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    taken_at: Mapped[datetime]
    triggers: Mapped[str] = mapped_column(Text)


class ScheduleHoldRow(Base):
    """The desired schedule state of an environment, when it is not its policy: paused, on hold."""

    __tablename__ = "schedule_holds"

    bundle: Mapped[str] = mapped_column(String(200), primary_key=True)
    environment: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(250))
    reason: Mapped[str] = mapped_column(Text)
    triggers: Mapped[str] = mapped_column(Text)


class ApprovalRow(Base):
    """A decision on one release digest for one environment; never updated, never deleted."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_release", "bundle", "environment", "release_digest"),)

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


class SignatureAttemptRow(Base):
    __tablename__ = "signature_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    release_digest: Mapped[str] = mapped_column(String(64))
    signer: Mapped[str] = mapped_column(String(250))
    succeeded: Mapped[bool]
    detail: Mapped[str] = mapped_column(Text)
    attempted_at: Mapped[datetime]


class GateEvaluationRow(Base):
    """One evaluation of all of an environment's gates for one run: what the board shows as pending."""

    __tablename__ = "gate_evaluations"
    # A waiting gate is evaluated every poke: its latest evaluation is one seek, not a scan.
    __table_args__ = (Index("ix_gate_evaluations_latest", "bundle", "environment", "id"),)

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
    release: Mapped[ReleaseRow] = relationship(lazy="joined")


class DataSnapshotRow(Base):
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


class EnvironmentHoldRow(Base):
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


class DeployLockWaitRow(Base):
    """A deploy waiting on a deploy lock another deployment holds; deleted once it ends waiting."""

    __tablename__ = "deploy_lock_waits"
    __table_args__ = (UniqueConstraint("bundle", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(250))  # the waiting run's
    lock_path: Mapped[str] = mapped_column(String(1000))
    holder: Mapped[str] = mapped_column(Text)  # the lock file as the deploy read it (JSON)
    held_since: Mapped[datetime | None]  # the lock's AcquisitionTime, when it says one
    waiting_since: Mapped[datetime]


class NotificationDeliveryRow(Base):
    """One event told to one receiver: claimed before sending, so a retry or a clear sends it once."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("event_key", "receiver"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_key: Mapped[str] = mapped_column(String(500))
    receiver: Mapped[str] = mapped_column(String(300))
    event: Mapped[str] = mapped_column(String(50))
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))  # sending, sent or failed
    detail: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime]


class DriftReportRow(Base):
    """One drift check of an environment: what the board's badge shows, newest per environment."""

    __tablename__ = "drift_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    checked_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(200))
    release_digest: Mapped[str | None] = mapped_column(String(64))
    findings: Mapped[str] = mapped_column(Text)  # JSON list of {resource, field, expected, actual}


class DriftHealRow(Base):
    """One heal of an environment, done or refused."""

    __tablename__ = "drift_heals"

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200), index=True)
    environment: Mapped[str] = mapped_column(String(200))
    healed_at: Mapped[datetime]
    mode: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    version: Mapped[str | None] = mapped_column(String(200))
    findings: Mapped[str] = mapped_column(Text)


def now() -> datetime:
    return datetime.now(UTC)
