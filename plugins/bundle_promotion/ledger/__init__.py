"""The ledger: the system of record for releases and where they are deployed.

A database of its own, never Airflow's: a SQLite file by default, Postgres when workers
share no disk. Several task processes write at once, so every write is idempotent and
SQLite runs in WAL mode with writers queueing on a busy timeout.

The schema grows through ``MIGRATIONS``; see there how to add a step. ``Ledger`` is made of
one part per concept (releases, deployments, schedules, ...), each in its own module.
"""

from __future__ import annotations

from bundle_promotion.ledger.approvals import ApprovalsMixin
from bundle_promotion.ledger.audit import GENESIS_HASH, SYSTEM_ACTOR, AuditEvent, AuditTrailMixin, audit_hash
from bundle_promotion.ledger.board import BoardMixin, EnvironmentState
from bundle_promotion.ledger.data_snapshots import DataSnapshot, DataSnapshotsMixin
from bundle_promotion.ledger.deployments import (
    DeploymentRecord,
    DeploymentsMixin,
    DeploymentState,
    FinishedState,
)
from bundle_promotion.ledger.drift import DriftMixin
from bundle_promotion.ledger.environment_holds import EnvironmentHold, EnvironmentHoldsMixin
from bundle_promotion.ledger.gates import GateEvaluationsMixin
from bundle_promotion.ledger.lock_waits import LockWait, LockWaitsMixin
from bundle_promotion.ledger.migrations import MIGRATIONS, MigrationsMixin
from bundle_promotion.ledger.notifications import NotificationDeliveriesMixin, NotificationDelivery
from bundle_promotion.ledger.releases import ReleasesMixin
from bundle_promotion.ledger.schedules import ScheduleHold, SchedulesMixin

__all__ = [
    "GENESIS_HASH",
    "MIGRATIONS",
    "SYSTEM_ACTOR",
    "AuditEvent",
    "DataSnapshot",
    "DeploymentRecord",
    "DeploymentState",
    "EnvironmentHold",
    "EnvironmentState",
    "FinishedState",
    "Ledger",
    "LockWait",
    "NotificationDelivery",
    "ScheduleHold",
    "audit_hash",
]


class Ledger(
    MigrationsMixin,
    ReleasesMixin,
    DeploymentsMixin,
    SchedulesMixin,
    ApprovalsMixin,
    GateEvaluationsMixin,
    DataSnapshotsMixin,
    EnvironmentHoldsMixin,
    LockWaitsMixin,
    NotificationDeliveriesMixin,
    BoardMixin,
    DriftMixin,
    AuditTrailMixin,
):
    """Releases and deployments in the database at ``url`` (any SQLAlchemy URL)."""
