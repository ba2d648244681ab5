"""The board's read: what every environment of many bundles runs, waits for and is held by.

A fixed number of queries whatever the history's length: an environment's current deployment
and its latest gate evaluation are each one index seek (``ix_deployments_current``,
``ix_gate_evaluations_latest``), asked for all environments in one statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    String,
    column,
    func,
    select,
    true,
    tuple_,
    values,
)
from sqlalchemy.orm import Session

from bundle_promotion.ledger.approvals import _to_approval
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.deployments import DeploymentRecord, _to_record
from bundle_promotion.ledger.environment_holds import EnvironmentHold, _to_environment_hold
from bundle_promotion.ledger.gates import _to_gate_evaluation
from bundle_promotion.ledger.lock_waits import LockWait, _to_lock_wait
from bundle_promotion.ledger.models import (
    ApprovalRow,
    DeployLockWaitRow,
    DeploymentRow,
    EnvironmentHoldRow,
    GateEvaluationRow,
    ScheduleHoldRow,
)
from bundle_promotion.ledger.records import Approval, GateEvaluation, Release
from bundle_promotion.ledger.releases import to_release
from bundle_promotion.ledger.schedules import ScheduleHold, _to_hold

_Row = TypeVar("_Row", DeploymentRow, GateEvaluationRow)


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
    # A deploy waiting there on a deploy lock another deployment holds.
    lock_wait: LockWait | None


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
            lock_waits = {
                (row.bundle, row.environment): _to_lock_wait(row)
                for row in session.scalars(
                    select(DeployLockWaitRow).where(DeployLockWaitRow.bundle.in_(bundles))
                )
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
                lock_wait=lock_waits.get((bundle, environment)),
            )
            for bundle, environment in environments
        ]


def _current_rows(session: Session, environments: Sequence[tuple[str, str]]) -> Iterable[DeploymentRow]:
    """The newest applied deployment no rollback superseded, of each environment."""
    return _newest_per_environment(
        session,
        environments,
        DeploymentRow,
        lambda query: (
            query.where(DeploymentRow.applied_at.is_not(None), DeploymentRow.state != "superseded")
            .order_by(DeploymentRow.applied_at.desc(), DeploymentRow.id.desc())
            .limit(1)
        ),
    )


def _latest_gate_rows(
    session: Session, environments: Sequence[tuple[str, str]]
) -> Iterable[GateEvaluationRow]:
    return _newest_per_environment(
        session,
        environments,
        GateEvaluationRow,
        lambda query: query.order_by(GateEvaluationRow.id.desc()).limit(1),
    )


def _newest_per_environment(
    session: Session,
    environments: Sequence[tuple[str, str]],
    model: type[_Row],
    newest: Callable[[Select[Any]], Select[Any]],
) -> Iterable[_Row]:
    """For each environment, the row ``newest`` picks among the model's rows of that environment.

    One index seek each: a correlated subquery on SQLite; a LATERAL join on PostgreSQL, whose
    planner would otherwise hash the whole table rather than seek once per environment.
    """
    pairs = _pairs(session, environments)
    picked = newest(
        select(model.id).where(model.bundle == pairs.c.bundle, model.environment == pairs.c.environment)
    )
    if session.get_bind().dialect.name == "sqlite":
        ids = select(picked.correlate(pairs).scalar_subquery().label("id")).select_from(pairs).subquery()
    else:
        lateral = picked.lateral()
        ids = select(lateral.c.id).select_from(pairs).join(lateral, true()).subquery()
    return session.scalars(select(model).join(ids, model.id == ids.c.id))


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


def _pairs(session: Session, environments: Sequence[tuple[str, str]]) -> FromClause:
    """The (bundle, environment) pairs as a derived table, built in one piece whatever their number:
    a VALUES list, or on SQLite, whose VALUES takes no column names, one JSON parameter."""
    if session.get_bind().dialect.name != "sqlite":
        columns = (column("bundle", String), column("environment", String))
        return values(*columns, name="pairs").data(list(environments))
    each = func.json_each(json.dumps(environments)).table_valued("value")
    return select(
        func.json_extract(each.c.value, "$[0]").label("bundle"),
        func.json_extract(each.c.value, "$[1]").label("environment"),
    ).subquery("pairs")
