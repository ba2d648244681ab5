"""The board's read: what every environment of many bundles runs, waits for and is held by.

A fixed number of queries whatever the history's length: an environment's current deployment
and its latest gate evaluation are each one index seek (``ix_deployments_current``,
``ix_gate_evaluations_latest``), asked for all environments in one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Subquery, func, literal, select, tuple_, union_all
from sqlalchemy.orm import Session

from bundle_promotion.ledger.approvals import _to_approval
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.deployments import DeploymentRecord, _to_record
from bundle_promotion.ledger.environment_holds import EnvironmentHold, _to_environment_hold
from bundle_promotion.ledger.gates import _to_gate_evaluation
from bundle_promotion.ledger.models import (
    ApprovalRow,
    DeploymentRow,
    EnvironmentHoldRow,
    GateEvaluationRow,
    ScheduleHoldRow,
)
from bundle_promotion.ledger.records import Approval, GateEvaluation, Release
from bundle_promotion.ledger.releases import to_release
from bundle_promotion.ledger.schedules import ScheduleHold, _to_hold

# SQLite allows 500 terms in a compound SELECT; the environments are asked for in chunks below it.
_PAIRS_PER_STATEMENT = 250


@dataclass(frozen=True)
class EnvironmentState:
    """One cell of the board: one bundle in one environment."""

    bundle: str
    environment: str
    current: tuple[Release, DeploymentRecord] | None
    latest_gates: GateEvaluation | None
    gates_release: Release | None  # the release those gates were evaluated for
    # Every decision on the release at the gates, oldest first (empty when none waits there).
    approvals: tuple[Approval, ...]
    hold: EnvironmentHold | None
    # A maintenance window's pause in force, which keeps the schedules paused whatever the policy.
    schedule_hold: ScheduleHold | None


class BoardMixin(LedgerDatabase):
    """``Ledger.board``."""

    def board(self, environments: Sequence[tuple[str, str]]) -> list[EnvironmentState]:
        """The state of each (bundle, environment), in the order asked."""
        with self._reads() as session:
            current = {(row.bundle, row.environment): row for row in _current_rows(session, environments)}
            gates = {
                (row.bundle, row.environment): (_to_gate_evaluation(row), to_release(row.release))
                for row in _latest_gate_rows(session, environments)
            }
            approvals = _approvals_of(session, [evaluation for evaluation, _ in gates.values()])
            bundles = {bundle for bundle, _ in environments}
            holds = {
                (row.bundle, row.environment): _to_environment_hold(row)
                for row in session.scalars(
                    select(EnvironmentHoldRow).where(EnvironmentHoldRow.bundle.in_(bundles))
                )
            }
            schedule_holds = {
                (row.bundle, row.environment): _to_hold(row)
                for row in session.scalars(select(ScheduleHoldRow).where(ScheduleHoldRow.bundle.in_(bundles)))
            }
        return [
            EnvironmentState(
                bundle=bundle,
                environment=environment,
                current=(to_release(row.release), _to_record(row))
                if (row := current.get((bundle, environment)))
                else None,
                latest_gates=gates[bundle, environment][0] if (bundle, environment) in gates else None,
                gates_release=gates[bundle, environment][1] if (bundle, environment) in gates else None,
                approvals=tuple(approvals.get((bundle, environment), ())),
                hold=holds.get((bundle, environment)),
                schedule_hold=schedule_holds.get((bundle, environment)),
            )
            for bundle, environment in environments
        ]


def _current_rows(session: Session, environments: Sequence[tuple[str, str]]) -> Iterator[DeploymentRow]:
    """The newest applied deployment no rollback superseded, of each environment."""
    for pairs in _chunks(environments):
        newest = (
            select(DeploymentRow.id)
            .where(
                DeploymentRow.bundle == pairs.c.bundle,
                DeploymentRow.environment == pairs.c.environment,
                DeploymentRow.applied_at.is_not(None),
                DeploymentRow.state != "superseded",
            )
            .order_by(DeploymentRow.applied_at.desc(), DeploymentRow.id.desc())
            .limit(1)
            .correlate(pairs)
            .scalar_subquery()
        )
        ids = select(newest).select_from(pairs)
        yield from session.scalars(select(DeploymentRow).where(DeploymentRow.id.in_(ids)))


def _latest_gate_rows(
    session: Session, environments: Sequence[tuple[str, str]]
) -> Iterator[GateEvaluationRow]:
    for pairs in _chunks(environments):
        latest = (
            select(func.max(GateEvaluationRow.id))
            .where(
                GateEvaluationRow.bundle == pairs.c.bundle,
                GateEvaluationRow.environment == pairs.c.environment,
            )
            .correlate(pairs)
            .scalar_subquery()
        )
        ids = select(latest).select_from(pairs)
        yield from session.scalars(select(GateEvaluationRow).where(GateEvaluationRow.id.in_(ids)))


def _approvals_of(
    session: Session, evaluations: Iterable[GateEvaluation]
) -> dict[tuple[str, str], list[Approval]]:
    """The decisions on each release that waits at an environment's gates."""
    waiting = [(e.bundle, e.environment, e.release_digest) for e in evaluations if e.status == "waiting"]
    found: dict[tuple[str, str], list[Approval]] = {}
    if not waiting:
        return found
    key: ColumnElement[tuple[str, str, str]] = tuple_(
        ApprovalRow.bundle, ApprovalRow.environment, ApprovalRow.release_digest
    )
    query = select(ApprovalRow).where(key.in_(waiting)).order_by(ApprovalRow.given_at, ApprovalRow.id)
    for row in session.scalars(query):
        found.setdefault((row.bundle, row.environment), []).append(_to_approval(row))
    return found


def _chunks(environments: Sequence[tuple[str, str]]) -> Iterator[Subquery]:
    """The (bundle, environment) pairs as a derived table, a few hundred per statement."""
    for start in range(0, len(environments), _PAIRS_PER_STATEMENT):
        rows = [
            select(literal(bundle).label("bundle"), literal(environment).label("environment"))
            for bundle, environment in environments[start : start + _PAIRS_PER_STATEMENT]
        ]
        yield union_all(*rows).subquery("pairs")
