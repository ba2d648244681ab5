"""Schedules: the trigger states found before each deployment, and maintenance holds per environment."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from bundle_promotion.errors import BundlePromotionError
from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import DeploymentRow, ScheduleHoldRow, ScheduleSnapshotRow, now
from bundle_promotion.ledger.records import ScheduleSnapshot


@dataclass(frozen=True)
class ScheduleHold:
    """A maintenance pause in force: the environment's schedules stay paused, deploys too, until it ends."""

    bundle: str
    environment: str
    snapshot: ScheduleSnapshot  # the states found when each job was first held: what ending restores
    since: datetime
    actor: str
    reason: str


class SchedulesMixin(LedgerDatabase):
    """``Ledger`` methods for schedule snapshots and schedule holds."""

    def record_schedule_snapshot(
        self, deployment_id: int, found: ScheduleSnapshot, *, actor: str = SYSTEM_ACTOR
    ) -> ScheduleSnapshot:
        """Keep the trigger states found before the deployment changed anything; returns the kept one.

        The first snapshot of a deployment wins: a retried deploy would find the states it set itself.
        """
        return retry_once_on_conflict(lambda: self._record_schedule_snapshot(deployment_id, found, actor))

    def schedule_snapshot(self, deployment_id: int) -> ScheduleSnapshot | None:
        """The trigger states the environment had before the deployment, as recorded by its deploy step."""
        with self._reads() as session:
            row = session.get(ScheduleSnapshotRow, deployment_id)
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
        return retry_once_on_conflict(
            lambda: self._hold_schedules(bundle, environment, found, reason=reason, actor=actor)
        )

    def schedule_hold(self, bundle: str, environment: str) -> ScheduleHold | None:
        with self._reads() as session:
            row = session.get(ScheduleHoldRow, (bundle, environment))
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
            row = session.get(ScheduleHoldRow, (bundle, environment))
            if row is None:
                return
            held = _to_snapshot(row.triggers)
            left = held.without(held.resource_ids if job_ids is None else job_ids)
            if left.triggers:
                row.triggers = canonical_json(left.to_json())
            else:
                session.delete(row)
            append_event(
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
            kept = session.get(ScheduleSnapshotRow, deployment_id)
            if kept is not None:
                return _to_snapshot(kept.triggers)
            deployment = session.get(DeploymentRow, deployment_id)
            if deployment is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            snapshot = ScheduleSnapshotRow(
                deployment_id=deployment_id,
                bundle=deployment.bundle,
                environment=deployment.environment,
                taken_at=now(),
                triggers=canonical_json(found.to_json()),
            )
            session.add(snapshot)
            append_event(
                session,
                actor=actor,
                action="schedules.snapshot",
                subject=f"{deployment.bundle}/{deployment.environment}",
                details={"deployment_id": deployment_id, "triggers": found.to_json()},
                record=snapshot,
            )
            return found

    def _hold_schedules(
        self, bundle: str, environment: str, found: ScheduleSnapshot, *, reason: str, actor: str
    ) -> ScheduleHold:
        with self._writes.begin() as session:
            row = session.get(ScheduleHoldRow, (bundle, environment))
            if row is None:
                row = ScheduleHoldRow(
                    bundle=bundle, environment=environment, since=now(), actor=actor, reason=reason
                )
                session.add(row)
                held = found
            else:
                held = _to_snapshot(row.triggers).merged_with(found)
            row.triggers = canonical_json(held.to_json())
            session.flush()
            append_event(
                session,
                actor=actor,
                action="schedules.held",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"triggers": found.to_json()},
            )
            return _to_hold(row)


def _to_snapshot(triggers_json: str) -> ScheduleSnapshot:
    return ScheduleSnapshot.from_json(json.loads(triggers_json))


def _to_hold(row: ScheduleHoldRow) -> ScheduleHold:
    return ScheduleHold(
        bundle=row.bundle,
        environment=row.environment,
        snapshot=_to_snapshot(row.triggers),
        since=row.since,
        actor=row.actor,
        reason=row.reason,
    )
