"""The ledger's schema versions: ``MIGRATIONS``, and ``migrate`` recording each step in ``schema_version``."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bundle_promotion.errors import BundlePromotionError
from bundle_promotion.ledger.audit import RECORDS_BOUND, SYSTEM_ACTOR, append_event
from bundle_promotion.ledger.database import MIGRATION_LOCK_KEY, LedgerDatabase
from bundle_promotion.ledger.models import (
    ApprovalRow,
    ArtifactRow,
    AuditEventRow,
    Base,
    DataSnapshotRow,
    DeployLockWaitRow,
    DeploymentRow,
    DriftHealRow,
    DriftReportRow,
    EnvironmentHoldRow,
    GateEvaluationRow,
    NotificationDeliveryRow,
    ReleaseRow,
    ScheduleHoldRow,
    ScheduleSnapshotRow,
    SchemaVersionRow,
    SignatureAttemptRow,
    now,
)


def _create_tables(connection: Connection, *models: type[Base]) -> None:
    tables = [Base.metadata.tables[model.__tablename__] for model in models]
    Base.metadata.create_all(connection, tables=tables)


# Schema version N means the first N steps have run. Append a step to change the schema;
# never edit or reorder one. A step that adds a table creates it from its model. Since
# tables are created from the models as they stand, a step that changes an existing table
# must tolerate a fresh database that already has the change (add a column only if missing).
def _create_releases_and_deployments(connection: Connection) -> None:
    _create_tables(connection, ReleaseRow, ArtifactRow, DeploymentRow)


def _create_audit_events(connection: Connection) -> None:
    _create_tables(connection, AuditEventRow)


def _create_schedule_tables(connection: Connection) -> None:
    _create_tables(connection, ScheduleSnapshotRow, ScheduleHoldRow)


def _create_approval_and_gate_tables(connection: Connection) -> None:
    _create_tables(connection, ApprovalRow, SignatureAttemptRow, GateEvaluationRow)


def _create_rollback_tables(connection: Connection) -> None:
    _create_tables(connection, DataSnapshotRow, EnvironmentHoldRow)


def _add_deployment_outcome_columns(connection: Connection) -> None:
    """``applied_at`` and ``superseded_by``: the deployment state machine's facts (see ledger.deployments).

    A deployment that succeeded before had reached the workspace when it finished: so what
    each environment runs stays what it was.
    """
    table = Base.metadata.tables[DeploymentRow.__tablename__]
    present = {column["name"] for column in inspect(connection).get_columns(table.name)}
    for name in ("applied_at", "superseded_by"):
        if name not in present:
            column_type = table.c[name].type.compile(dialect=connection.dialect)
            connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}"))
    connection.execute(
        update(table)
        .where(table.c.state == "succeeded", table.c.applied_at.is_(None))
        .values(applied_at=table.c.finished_at)
    )


def _add_audit_event_mac(connection: Connection) -> None:
    """``mac``: the keyed MAC of each event (``ledger.audit``); events written before carry none.

    From here on each event binds the row it wrote. The rows already there are older than
    binding: one event records how far each bound table reached, so ``evidence.verify``
    tells them from rows slipped in later.
    """
    table = Base.metadata.tables[AuditEventRow.__tablename__]
    if "mac" not in {column["name"] for column in inspect(connection).get_columns(table.name)}:
        column_type = table.c["mac"].type.compile(dialect=connection.dialect)
        connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN mac {column_type}"))
    _mark_rows_older_than_binding(
        connection, ApprovalRow, SignatureAttemptRow, EnvironmentHoldRow, DeploymentRow
    )


def _bind_releases_gate_evaluations_and_schedule_snapshots(connection: Connection) -> None:
    """From here on the events writing releases, gate evaluations and schedule snapshots bind them too."""
    _mark_rows_older_than_binding(connection, ReleaseRow, GateEvaluationRow, ScheduleSnapshotRow)


def _mark_rows_older_than_binding(connection: Connection, *models: type[Base]) -> None:
    """One event recording how far each table reached before its rows were bound, if it has any rows."""
    reached = {}
    for model in models:
        [key] = inspect(model).primary_key
        reached[model.__tablename__] = connection.scalar(select(func.max(key))) or 0
    if any(reached.values()):
        with Session(bind=connection) as session:
            append_event(
                session,
                actor=SYSTEM_ACTOR,
                action=RECORDS_BOUND,
                subject="ledger",
                reason="rows up to these ids predate record binding",
                details={"unbound_up_to": reached},
            )


def _create_notification_deliveries(connection: Connection) -> None:
    _create_tables(connection, NotificationDeliveryRow)


def _add_board_indexes(connection: Connection) -> None:
    """The indexes behind the board: an environment's current deployment, its latest gate
    evaluation and the approvals of one release, each found by a seek (see ``ledger.board``)."""
    for model, name in (
        (DeploymentRow, "ix_deployments_current"),
        (GateEvaluationRow, "ix_gate_evaluations_latest"),
        (ApprovalRow, "ix_approvals_release"),
    ):
        index = next(i for i in Base.metadata.tables[model.__tablename__].indexes if i.name == name)
        index.create(connection, checkfirst=True)


def _create_drift_tables(connection: Connection) -> None:
    _create_tables(connection, DriftReportRow, DriftHealRow)


def _create_deploy_lock_waits(connection: Connection) -> None:
    _create_tables(connection, DeployLockWaitRow)


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (
    _create_releases_and_deployments,
    _create_audit_events,
    _create_schedule_tables,
    _create_approval_and_gate_tables,
    _create_rollback_tables,
    _add_deployment_outcome_columns,
    _add_audit_event_mac,
    _bind_releases_gate_evaluations_and_schedule_snapshots,
    _create_notification_deliveries,
    _add_board_indexes,
    _create_drift_tables,
    _create_deploy_lock_waits,
)


class MigrationsMixin(LedgerDatabase):
    """``Ledger.migrate``."""

    def migrate(self) -> None:
        """Bring the schema up to date; a no-op when it is, and safe when processes race.

        Every task process migrates, so the version is read first without a lock: only a due
        migration serializes them, and an up-to-date ledger lets every task through at once.
        """
        with self._reads() as session:
            if self._checked_version(session.connection()) == len(MIGRATIONS):
                return
        with self._engine.begin() as connection:
            _serialize_migrations(connection)
            _create_tables(connection, SchemaVersionRow)
            current = self._checked_version(connection)
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(connection)
                connection.execute(insert(SchemaVersionRow).values(version=version, applied_at=now()))

    def _checked_version(self, connection: Connection) -> int:
        """The schema version (0 for a new database); refuses one newer than this code."""
        if not inspect(connection).has_table(SchemaVersionRow.__tablename__):
            return 0
        current = connection.scalar(select(func.max(SchemaVersionRow.version))) or 0
        if current > len(MIGRATIONS):
            raise BundlePromotionError(
                f"the ledger at {self._url} has schema version {current}, but this bundle-promotion "
                f"knows versions up to {len(MIGRATIONS)}; upgrade bundle-promotion on this worker"
            )
        return current


def _serialize_migrations(connection: Connection) -> None:
    """Make a second migrating process wait, then find the work done. On SQLite, BEGIN IMMEDIATE does it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
