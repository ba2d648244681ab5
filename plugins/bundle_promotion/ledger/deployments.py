"""Deployments: which release went into which environment, from which run, and how it ended.

A deployment's outcome is a state machine (``TRANSITIONS``); every transition is an audit event.

=============  ==========================================================================
state          may become
=============  ==========================================================================
deploying      deployed (the engine applied it), succeeded, failed, superseded
deployed       succeeded (verified, tested, recorded), failed, superseded, deploying
succeeded      failed (a check of it failed later), superseded, deploying
failed         succeeded (only if applied and checked again), superseded, deploying
superseded     nothing: final
=============  ==========================================================================

``deploying`` again is the deploy task retried or cleared in the same run: the same attempt.
A deployment is ``deployed`` once the engine applied it (``applied_at``): from then on the
workspace runs it, also when a check of it fails. A rollback's redeploy makes every deployment
it undoes ``superseded`` (``superseded_by``), so a cleared ``record`` can never mark a
rolled-back release succeeded, nor a cleared deploy bring it back in that run.

The environment's *current* deployment is the newest applied one that is not superseded: what
the workspace runs. Only the current deployment may become ``succeeded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bundle_promotion.errors import BundlePromotionError, StaleDeployment
from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import DeploymentRow, now
from bundle_promotion.ledger.records import Release
from bundle_promotion.ledger.releases import to_release

DeploymentState = Literal["deploying", "deployed", "succeeded", "failed", "superseded"]
FinishedState = Literal["succeeded", "failed"]

TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    "deploying": frozenset({"deployed", "succeeded", "failed", "superseded"}),
    "deployed": frozenset({"deploying", "succeeded", "failed", "superseded"}),
    "succeeded": frozenset({"deploying", "failed", "superseded"}),
    "failed": frozenset({"deploying", "succeeded", "superseded"}),
    "superseded": frozenset(),
}


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
    applied_at: datetime | None = None
    superseded_by: int | None = None


class DeploymentsMixin(LedgerDatabase):
    """``Ledger`` methods for deployments and the checks of each."""

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
        """The deployment's id, in state ``deploying``; a retried task gets its first row back.

        Raises ``StaleDeployment`` when a rollback superseded this run's deployment of the release.
        """
        return retry_once_on_conflict(
            lambda: self._start_deployment(bundle, environment, target, release_id, run_id, actor)
        )

    def mark_applied(self, deployment_id: int, *, actor: str = SYSTEM_ACTOR) -> None:
        """The engine applied the deployment: the workspace runs it from now on."""
        with self._writes.begin() as session:
            row = self._deployment_row(session, deployment_id)
            row.applied_at = now()  # before the event, which binds the row as it ends up
            _move(session, row, "deployed", actor=actor)

    def finish_deployment(
        self,
        deployment_id: int,
        state: FinishedState,
        detail: str | None = None,
        *,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        """End the deployment ``succeeded`` or ``failed``; the same outcome again changes nothing.

        ``succeeded`` is refused with ``StaleDeployment`` unless the deployment is the
        environment's current one; a deployment that never reached the workspace before counts
        as applied now, since it passed its checks there.
        """
        if state not in get_args(FinishedState):
            raise ValueError(f"a deployment finishes as one of {get_args(FinishedState)}, not {state!r}")
        with self._writes.begin() as session:
            self._finish(session, self._deployment_row(session, deployment_id), state, detail, actor)

    def finish_rollback(self, redeploy_id: int, *, detail: str, actor: str = SYSTEM_ACTOR) -> list[int]:
        """A rollback's redeploy succeeded: it supersedes what it undid, in the same transaction.

        Undone are the deployments newer than the last one of the restored release, up to and
        including the newest one that had succeeded (when the release never ran here). Returns
        their ids; a second call finds them superseded already and returns none.
        """
        with self._writes.begin() as session:
            redeploy = self._deployment_row(session, redeploy_id)
            self._finish(session, redeploy, "succeeded", detail, actor)
            undone = _undone_by(session, redeploy)
            for row in undone:
                row.superseded_by = redeploy.id
                _move(session, row, "superseded", actor=actor, reason=detail, superseded_by=redeploy.id)
            return [row.id for row in undone]

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
            row = self._deployment_row(session, deployment_id)
            append_event(
                session,
                actor=actor,
                action=f"{check}.{'passed' if passed else 'failed'}",
                subject=f"{row.bundle}/{row.environment}",
                reason=detail,
                details={**_deployment_details(row), "check": name},
            )

    def deployment(self, deployment_id: int) -> DeploymentRecord:
        with self._reads() as session:
            return _to_record(self._deployment_row(session, deployment_id))

    def require_current(self, deployment_id: int) -> DeploymentRecord:
        """The deployment, if its environment runs it now; else ``StaleDeployment`` saying what runs there."""
        with self._reads() as session:
            row = self._deployment_row(session, deployment_id)
            _refuse_stale(session, row)
            return _to_record(row)

    def current_deployment(self, bundle: str, environment: str) -> DeploymentRecord | None:
        """What the workspace runs: the newest applied deployment no rollback superseded."""
        with self._reads() as session:
            row = _current_row(session, bundle, environment)
            return _to_record(row) if row is not None else None

    def current_release(self, bundle: str, environment: str) -> tuple[Release, DeploymentRecord] | None:
        """The release the environment runs now, and the deployment that put it there."""
        with self._reads() as session:
            row = _current_row(session, bundle, environment)
            return (to_release(row.release), _to_record(row)) if row is not None else None

    def last_good_release(self, bundle: str, environment: str) -> tuple[Release, DeploymentRecord] | None:
        """The release of the newest deployment that succeeded here and was not rolled back since."""
        query = (
            _deployments_query(bundle, environment)
            .where(DeploymentRow.state == "succeeded")
            .order_by(DeploymentRow.applied_at.desc(), DeploymentRow.id.desc())
            .limit(1)
        )
        with self._reads() as session:
            row = session.scalar(query)
            return (to_release(row.release), _to_record(row)) if row is not None else None

    def deployments(
        self, bundle: str, environment: str | None = None, *, limit: int | None = None
    ) -> list[DeploymentRecord]:
        """Newest first; the newest ``limit`` only, when given."""
        query = (
            _deployments_query(bundle, environment)
            .order_by(DeploymentRow.started_at.desc(), DeploymentRow.id.desc())
            .limit(limit)
        )
        with self._reads() as session:
            return [_to_record(row) for row in session.scalars(query)]

    def _deployment_row(self, session: Session, deployment_id: int) -> DeploymentRow:
        row = session.get(DeploymentRow, deployment_id)
        if row is None:
            raise BundlePromotionError(self._missing("deployment", deployment_id))
        return row

    def _finish(
        self, session: Session, row: DeploymentRow, state: FinishedState, detail: str | None, actor: str
    ) -> None:
        if (row.state, row.detail) == (state, detail):
            return
        if state == "succeeded":
            if row.state == "failed" and row.applied_at is None:
                raise StaleDeployment(
                    f"deployment {row.id} ({row.release.version} to {row.bundle}/{row.environment}) failed "
                    "before it reached the workspace; it cannot succeed. Trigger a new run to deploy it again"
                )
            _refuse_stale(session, row)
            row.applied_at = row.applied_at or now()
        row.finished_at = now()
        row.detail = detail
        _move(session, row, state, actor=actor, reason=detail)

    def _start_deployment(
        self, bundle: str, environment: str, target: str, release_id: int, run_id: str, actor: str
    ) -> int:
        with self._writes.begin() as session:
            release = self._release_row(session, release_id)
            row = session.scalar(
                select(DeploymentRow).filter_by(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
            )
            if row is not None and row.state == "superseded":
                _refuse_stale(session, row)
            if row is None:
                row = DeploymentRow(
                    bundle=bundle,
                    environment=environment,
                    release=release,
                    run_id=run_id,
                    target=target,
                    state="deploying",
                    started_at=now(),
                )
                session.add(row)
                session.flush()
                _event(session, row, "started", actor=actor)
            else:
                row.target = target
                row.started_at = now()
                row.finished_at = None
                row.detail = None
                if row.state == "deploying":  # a retry of an attempt still deploying is the same attempt
                    _event(session, row, "started", actor=actor)
                else:
                    _move(session, row, "deploying", actor=actor, action="started")
            return row.id


def _move(
    session: Session,
    row: DeploymentRow,
    state: DeploymentState,
    *,
    actor: str,
    reason: str | None = None,
    action: str | None = None,
    **details: Any,
) -> None:
    """Take one transition of the state machine, with its audit event; refuse any other."""
    current = cast(DeploymentState, row.state)
    if state not in TRANSITIONS[current]:
        if current == "superseded":
            _refuse_stale(session, row)
        raise BundlePromotionError(
            f"deployment {row.id} of {row.release.version} to {row.bundle}/{row.environment} is {current}; "
            f"it cannot become {state} (allowed: {', '.join(sorted(TRANSITIONS[current])) or 'none'})"
        )
    row.state = state
    _event(session, row, action or state, actor=actor, reason=reason, previous_state=current, **details)


def _event(
    session: Session, row: DeploymentRow, action: str, *, actor: str, reason: str | None = None, **extra: Any
) -> None:
    append_event(
        session,
        actor=actor,
        action=f"deployment.{action}",
        subject=f"{row.bundle}/{row.environment}",
        reason=reason,
        details={**_deployment_details(row), **extra},
        record=row,
    )


def _current_row(session: Session, bundle: str, environment: str) -> DeploymentRow | None:
    query = (
        _deployments_query(bundle, environment)
        .where(DeploymentRow.applied_at.is_not(None), DeploymentRow.state != "superseded")
        .order_by(DeploymentRow.applied_at.desc(), DeploymentRow.id.desc())
        .limit(1)
    )
    return session.scalar(query)


def _refuse_stale(session: Session, row: DeploymentRow) -> None:
    """``StaleDeployment`` unless the workspace runs ``row`` (or ran nothing applied after it)."""
    where = f"{row.bundle}/{row.environment}"
    current = _current_row(session, row.bundle, row.environment)
    runs_now = (
        f"{where} runs {current.release.version} now (deployment {current.id}, run {current.run_id})"
        if current is not None
        else f"{where} runs no recorded deployment now"
    )
    if row.state == "superseded":
        by = session.get(DeploymentRow, row.superseded_by) if row.superseded_by else None
        rollback = f" by deployment {by.id}, the rollback of run {by.run_id}" if by is not None else ""
        raise StaleDeployment(
            f"deployment {row.id} of {row.release.version} to {where} was superseded{rollback}: {runs_now}. "
            f"It can never succeed; fix the release, then trigger a new run to promote it again"
        )
    if current is None or current.id == row.id:
        return
    since = row.applied_at or row.started_at
    if current.applied_at is not None and current.applied_at > since:
        raise StaleDeployment(
            f"deployment {row.id} of {row.release.version} is no longer what {where} runs: {runs_now}. "
            "Trigger a new run to promote it again"
        )


def _undone_by(session: Session, redeploy: DeploymentRow) -> list[DeploymentRow]:
    undone: list[DeploymentRow] = []
    newest_first = _deployments_query(redeploy.bundle, redeploy.environment).order_by(DeploymentRow.id.desc())
    for row in session.scalars(newest_first.where(DeploymentRow.id < redeploy.id)):
        if row.release_id == redeploy.release_id:
            break
        if row.state == "superseded":
            continue
        undone.append(row)
        if row.state == "succeeded":
            break
    return undone


def _deployments_query(bundle: str, environment: str | None) -> Select[DeploymentRow]:
    query = select(DeploymentRow).where(DeploymentRow.bundle == bundle)
    return query if environment is None else query.where(DeploymentRow.environment == environment)


def _deployment_details(row: DeploymentRow) -> dict[str, Any]:
    return {
        "bundle": row.bundle,
        "environment": row.environment,
        "target": row.target,
        "version": row.release.version,
        "release_digest": row.release.digest,
        "deployment_id": row.id,
        "run_id": row.run_id,
    }


def _to_record(row: DeploymentRow) -> DeploymentRecord:
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
        applied_at=row.applied_at,
        superseded_by=row.superseded_by,
    )
