"""The drift API, for the board: the latest drift report of each environment, and the Heal action.

Reading needs read access to the bundle's promotion DAG runs, as the gates do. Healing
triggers a run of ``drift__<bundle>`` naming the environment (its ``heal_environment``
param), as the user of the token: the heal runs on a worker, never in the API server, and
acts for that user. Asking needs the right to trigger runs of the promotion DAG, as a
rollback does; the request, with its reason, goes to the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from bundle_promotion import settings
from bundle_promotion.errors import SpecError
from bundle_promotion.ledger.records import DriftHeal, DriftReport
from bundle_promotion.spec import PromotionSpec, load_specs
from bundle_promotion.spec.dag_ids import PROMOTION_PATTERN, drift_dag_id, promoted_bundle

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger

router = APIRouter(tags=["drift"])


class FindingView(BaseModel):
    resource: str
    field: str
    expected: Any
    actual: Any


class HealView(BaseModel):
    mode: str
    outcome: str
    reason: str
    actor: str
    healed_at: datetime
    version: str | None


class DriftView(BaseModel):
    """One environment's newest drift report: the board's badge and its field-level diff."""

    bundle: str
    environment: str
    status: Literal["in_sync", "drifted", "not_deployed"]
    checked_at: datetime
    version: str | None
    release_digest: str | None
    findings: list[FindingView]
    heal_policy: str | None = Field(description="The spec's drift.heal: redeploy, schedules_only or null.")
    last_heal: HealView | None


class HealBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why heal now; kept in the audit trail.")
    mode: Literal["redeploy", "schedules_only"] | None = Field(
        default=None, description="Default: the environment's drift.heal, else redeploy."
    )


class HealRequested(BaseModel):
    dag_id: str
    run_id: str
    environment: str
    mode: Literal["redeploy", "schedules_only"]


@router.get(
    "/drift",
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
    response_model=list[DriftView],
)
def all_drift(user: GetUserDep) -> list[DriftView]:
    """The newest report of every environment of every bundle whose promotion DAG the user may read."""
    from airflow.api_fastapi.app import get_auth_manager

    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    specs = {spec.bundle: spec for spec in _specs() if spec.dag_id in readable}
    ledger = settings.ledger()
    return [
        _view(ledger, report, specs[report.bundle])
        for report in ledger.latest_drift_reports()
        if report.bundle in specs
    ]


@router.get(
    "/dags/{dag_id}/drift",
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
    response_model=list[DriftView],
)
def drift(dag_id: str) -> list[DriftView]:
    """The newest report of each environment of the bundle promoted by ``dag_id``."""
    spec = _spec(dag_id)
    ledger = settings.ledger()
    return [_view(ledger, report, spec) for report in ledger.latest_drift_reports(spec.bundle)]


@router.post(
    "/dags/{dag_id}/environments/{environment}/drift/heal",
    dependencies=[Depends(requires_access_dag("POST", DagAccessEntity.RUN))],
    response_model=HealRequested,
    status_code=status.HTTP_202_ACCEPTED,
)
def heal(dag_id: str, environment: str, body: HealBody, user: GetUserDep) -> HealRequested:
    """Ask for the environment to be healed: a ``drift__<bundle>`` run, as the token's user."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    spec = _spec(dag_id)
    if environment not in {env.name for env in spec.environments}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{spec.bundle} has no environment {environment}")
    mode = body.mode or _heal_policy(spec, environment) or "redeploy"
    account = str(user.get_id())
    try:
        run = trigger_dag(
            drift_dag_id(spec.bundle),
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=account,
            conf={"heal_environment": environment, "heal_mode": mode},
            note=body.reason,
        )
    except DagNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{drift_dag_id(spec.bundle)} is not loaded yet; wait for the DAG processor to parse the specs",
        ) from None
    assert run is not None  # a manual trigger makes one run
    settings.ledger().record_event(
        actor=account,
        action="drift.heal_requested",
        subject=f"{spec.bundle}/{environment}",
        reason=body.reason,
        details={"mode": mode, "dag_id": run.dag_id, "run_id": run.run_id},
    )
    return HealRequested(dag_id=run.dag_id, run_id=run.run_id, environment=environment, mode=mode)


def _view(ledger: Ledger, report: DriftReport, spec: PromotionSpec) -> DriftView:
    heals = ledger.drift_heals(report.bundle, report.environment)
    return DriftView(
        **{key: value for key, value in report.to_json().items() if key != "checked_at"},
        checked_at=report.checked_at,
        heal_policy=_heal_policy(spec, report.environment),
        last_heal=_heal_view(heals[0]) if heals else None,
    )


def _heal_view(heal: DriftHeal) -> HealView:
    return HealView(
        mode=heal.mode,
        outcome=heal.outcome,
        reason=heal.reason,
        actor=heal.actor,
        healed_at=heal.healed_at,
        version=heal.version,
    )


def _heal_policy(spec: PromotionSpec, environment: str) -> Literal["redeploy", "schedules_only"] | None:
    env = next((env for env in spec.environments if env.name == environment), None)
    return env.drift.heal or None if env is not None else None


def _specs() -> list[PromotionSpec]:
    return [spec for spec in load_specs(settings.specs_folder()) if not isinstance(spec, SpecError)]


def _spec(dag_id: str) -> PromotionSpec:
    bundle = promoted_bundle(dag_id)
    if bundle is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{dag_id} is not a promotion DAG ({PROMOTION_PATTERN})"
        )
    for spec in _specs():
        if spec.bundle == bundle:
            return spec
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, f"no promotion spec for bundle {bundle} in {settings.specs_folder()}"
    )
