"""Data snapshots: what a rollback needs of the data, recorded once per run before it deploys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select

from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import DataSnapshotRow


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


class DataSnapshotsMixin(LedgerDatabase):
    """``Ledger`` methods for data snapshots."""

    def record_data_snapshot(self, snapshot: DataSnapshot, *, actor: str = SYSTEM_ACTOR) -> DataSnapshot:
        """The run's snapshot: the first one recorded wins, so a retry after the deploy keeps the truth."""
        return retry_once_on_conflict(lambda: self._record_data_snapshot(snapshot, actor))

    def data_snapshot(self, bundle: str, environment: str, run_id: str) -> DataSnapshot | None:
        with self._reads() as session:
            row = session.scalar(_data_snapshot_query(bundle, environment, run_id))
            return _to_data_snapshot(row) if row is not None else None

    def _record_data_snapshot(self, snapshot: DataSnapshot, actor: str) -> DataSnapshot:
        with self._writes.begin() as session:
            query = _data_snapshot_query(snapshot.bundle, snapshot.environment, snapshot.run_id)
            if (recorded := session.scalar(query)) is not None:
                return _to_data_snapshot(recorded)
            row = DataSnapshotRow(
                bundle=snapshot.bundle,
                environment=snapshot.environment,
                run_id=snapshot.run_id,
                previous_release_id=snapshot.previous_release_id,
                model_aliases=canonical_json(snapshot.model_aliases),
                table_versions=canonical_json(snapshot.table_versions),
                taken_at=snapshot.taken_at,
            )
            session.add(row)
            session.flush()
            details = _to_data_snapshot(row)
            append_event(
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


def _data_snapshot_query(bundle: str, environment: str, run_id: str) -> Select[DataSnapshotRow]:
    return select(DataSnapshotRow).filter_by(bundle=bundle, environment=environment, run_id=run_id)


def _to_data_snapshot(row: DataSnapshotRow) -> DataSnapshot:
    return DataSnapshot(
        bundle=row.bundle,
        environment=row.environment,
        run_id=row.run_id,
        previous_release_id=row.previous_release_id,
        model_aliases=json.loads(row.model_aliases),
        table_versions=json.loads(row.table_versions),
        taken_at=row.taken_at,
    )
