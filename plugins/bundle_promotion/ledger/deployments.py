"""Deployments: which release went into which environment, from which run, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast, get_args

from sqlalchemy import Select, select

from bundle_promotion.errors import BundlePromotionError
from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import DeploymentRow, now
from bundle_promotion.ledger.records import Release
from bundle_promotion.ledger.releases import to_release

DeploymentState = Literal["deploying", "succeeded", "failed"]
FinishedState = Literal["succeeded", "failed"]


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
        """The deployment's id, in state ``deploying``; a retried task gets its first row back."""
        return retry_once_on_conflict(
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
            row = session.get(DeploymentRow, deployment_id)
            if row is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            if (row.state, row.detail) == (state, detail):
                return
            row.state = state
            row.finished_at = now()
            row.detail = detail
            append_event(
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
            row = session.get(DeploymentRow, deployment_id)
            if row is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            append_event(
                session,
                actor=actor,
                action=f"{check}.{'passed' if passed else 'failed'}",
                subject=f"{row.bundle}/{row.environment}",
                reason=detail,
                details={**_deployment_details(row), "check": name},
            )

    def current_release(self, bundle: str, environment: str) -> tuple[Release, DeploymentRecord] | None:
        """The release of the last deployment that succeeded in the environment, if any."""
        query = (
            _deployments_query(bundle, environment)
            .where(DeploymentRow.state == "succeeded")
            .order_by(DeploymentRow.finished_at.desc(), DeploymentRow.id.desc())
            .limit(1)
        )
        with self._reads() as session:
            row = session.scalar(query)
            return (to_release(row.release), _to_record(row)) if row is not None else None

    def deployments(self, bundle: str, environment: str | None = None) -> list[DeploymentRecord]:
        """Newest first."""
        query = _deployments_query(bundle, environment).order_by(
            DeploymentRow.started_at.desc(), DeploymentRow.id.desc()
        )
        with self._reads() as session:
            return [_to_record(row) for row in session.scalars(query)]

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
            if row is None:
                row = DeploymentRow(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
                session.add(row)
            # A retry of an attempt still deploying is the same attempt: no second event.
            new_attempt = row.state != "deploying"
            row.release = release
            row.target = target
            row.state = "deploying"
            row.started_at = now()
            row.finished_at = None
            row.detail = None
            session.flush()
            if new_attempt:
                append_event(
                    session,
                    actor=actor,
                    action="deployment.started",
                    subject=f"{bundle}/{environment}",
                    details=_deployment_details(row),
                )
            return row.id


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
    )
