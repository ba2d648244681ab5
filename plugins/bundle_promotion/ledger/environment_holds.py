"""Environment holds: no promotion enters a held environment until a person clears the hold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select

from bundle_promotion.errors import BundlePromotionError
from bundle_promotion.identity import canonical_identity
from bundle_promotion.ledger.audit import append_event
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import AuditEventRow, EnvironmentHoldRow, now


@dataclass(frozen=True)
class EnvironmentHold:
    """No promotion enters the environment until a person clears the hold, with a reason."""

    bundle: str
    environment: str
    reason: str
    held_by: str
    held_at: datetime
    run_id: str | None


class EnvironmentHoldsMixin(LedgerDatabase):
    """``Ledger`` methods for environment holds."""

    def hold_environment(
        self, bundle: str, environment: str, *, reason: str, actor: str, run_id: str | None = None
    ) -> EnvironmentHold:
        """Stop promotions into the environment; a held environment keeps its first hold."""
        return retry_once_on_conflict(
            lambda: self._hold_environment(bundle, environment, reason, actor, run_id)
        )

    def environment_hold(self, bundle: str, environment: str) -> EnvironmentHold | None:
        with self._reads() as session:
            row = session.scalar(_hold_query(bundle, environment))
            return _to_environment_hold(row) if row is not None else None

    def held_in_run(self, bundle: str, environment: str, run_id: str) -> bool:
        """Whether the run ever held the environment, from the audit trail: a cleared hold leaves no row."""
        query = select(AuditEventRow.details).where(
            AuditEventRow.action == "hold.set", AuditEventRow.subject == f"{bundle}/{environment}"
        )
        with self._reads() as session:
            return any(json.loads(details).get("run_id") == run_id for details in session.scalars(query))

    def clear_hold(
        self, bundle: str, environment: str, *, reason: str, actor: str, break_glass: bool = False
    ) -> EnvironmentHold | None:
        """The hold that was cleared, or None when the environment was not held.

        ``actor`` is recorded as their one identity; raises ``IdentityRefused`` for a name
        that could pass for someone else's. ``break_glass``: an administrator cleared it
        straight in the ledger, past the API's check of who may; the event says so."""
        actor = canonical_identity(actor)
        if not reason.strip():
            raise BundlePromotionError(
                f"clearing the hold on {bundle}/{environment} needs a reason: say why promotions may resume"
            )
        with self._writes.begin() as session:
            row = session.scalar(_hold_query(bundle, environment))
            if row is None:
                return None
            session.delete(row)
            append_event(
                session,
                actor=actor,
                action="hold.broken_glass" if break_glass else "hold.cleared",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"bundle": bundle, "environment": environment, "held_by": row.held_by},
                record=row,
                deleted=True,
            )
            return _to_environment_hold(row)

    def _hold_environment(
        self, bundle: str, environment: str, reason: str, actor: str, run_id: str | None
    ) -> EnvironmentHold:
        with self._writes.begin() as session:
            if (held := session.scalar(_hold_query(bundle, environment))) is not None:
                return _to_environment_hold(held)
            row = EnvironmentHoldRow(
                bundle=bundle,
                environment=environment,
                reason=reason,
                held_by=actor,
                held_at=now(),
                run_id=run_id,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                actor=actor,
                action="hold.set",
                subject=f"{bundle}/{environment}",
                reason=reason,
                details={"bundle": bundle, "environment": environment, "run_id": run_id},
                record=row,
            )
            return _to_environment_hold(row)


def _hold_query(bundle: str, environment: str) -> Select[EnvironmentHoldRow]:
    return select(EnvironmentHoldRow).filter_by(bundle=bundle, environment=environment)


def _to_environment_hold(row: EnvironmentHoldRow) -> EnvironmentHold:
    return EnvironmentHold(
        bundle=row.bundle,
        environment=row.environment,
        reason=row.reason,
        held_by=row.held_by,
        held_at=row.held_at,
        run_id=row.run_id,
    )
