"""The approvals API, mounted in Airflow's API server by the plugin under ``/bundle-promotion``.

Airflow's auth manager identifies every caller (a Bearer JWT or the UI's cookie): the
approver is the token's user, never a field of the request. Approving needs the right to
answer human-in-the-loop tasks of the promotion DAG (``PUT`` on ``HITL_DETAIL``); reading
the gates needs read access to its runs.

Part 11 signatures re-check the signer's password through a ``PasswordCheck``: by default
the SimpleAuthManager's password file; for another auth manager, name a callable
``(username, password) -> bool`` in ``[bundle_promotion] signature_password_check``. A user
may try to sign once per ``[bundle_promotion] signature_attempt_interval`` seconds (default
5), counted in the ledger so every API server worker sees the same attempts; failed
attempts beyond the approval gate's ``signature_lockout`` lock the signer out.
"""

from __future__ import annotations

import hmac
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.sdk import conf
from fastapi import Depends, HTTPException, status
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bundle_promotion import settings
from bundle_promotion.errors import ApprovalRefused, IdentityRefused, RejectionStands, SpecError
from bundle_promotion.gates.approvals import (
    SIGNATURE_MEANINGS,
    ApprovalGroup,
    ApprovalPolicy,
    ApprovalRequest,
    PasswordCheck,
    eligible_groups,
    policy_from_spec,
    submit_approval,
)
from bundle_promotion.identity import canonical_identity, person_or_none
from bundle_promotion.ledger.records import Approval, GateEvaluation
from bundle_promotion.spec import Environment, PromotionSpec, load_specs
from bundle_promotion.spec.dag_ids import PROMOTION_PATTERN, promoted_bundle
from bundle_promotion.web import drift
from bundle_promotion.web.approval_notifications import announce_decision, announce_lockout

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger

URL_PREFIX = "/bundle-promotion"

# FastAPIOffline serves Swagger UI's and ReDoc's assets from the package, not a CDN: the docs
# work offline and behind a strict egress policy. Swagger UI's validator badge would call out too.
app = FastAPIOffline(
    title="bundle-promotion",
    description="Approve releases and see what each environment's gates wait for.",
    swagger_ui_parameters={"validatorUrl": None},
)
app.include_router(drift.router)


class ApprovalBody(BaseModel):
    # A field the API does not know, like "approver", is an error, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    release_digest: str = Field(min_length=64, max_length=64, description="The exact release you decide on.")
    decision: Literal["approve", "reject", "withdraw"] = Field(
        default="approve", description="withdraw takes back your own rejection, which otherwise stands."
    )
    reason: str = Field(description="Why; required.")
    overrides_freeze: bool = Field(
        default=False, description="Lift a freeze of the window gate for this release."
    )
    meaning: Literal["review", "approval", "responsibility", "authorship"] | None = Field(
        default=None,
        description=f"Part 11: the meaning of the signature, one of {', '.join(SIGNATURE_MEANINGS)}.",
    )
    password: SecretStr | None = Field(
        default=None, description="Part 11: the signer's password, checked again."
    )


class GateView(BaseModel):
    gate: str
    status: str
    reason: str


class EnvironmentGates(BaseModel):
    environment: str
    status: str
    version: str
    release_digest: str
    run_id: str
    triggered_by: str | None
    evaluated_at: datetime
    gates: list[GateView]


class ApprovalView(BaseModel):
    approver: str
    approver_name: str | None
    decision: str
    reason: str
    release_digest: str
    given_at: datetime
    groups: list[str]
    overrides_freeze: bool
    signature: str
    meaning: str | None


@app.get(
    "/dags/{dag_id}/gates",
    dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))],
    response_model=list[EnvironmentGates],
)
def gates(dag_id: str, pending_only: bool = True) -> list[EnvironmentGates]:
    """The latest evaluation of each environment's gates; by default only those still waiting."""
    evaluations = _ledger().latest_gate_evaluations(_bundle(dag_id))
    return [_gates_view(e) for e in evaluations if e.status == "waiting" or not pending_only]


@app.post(
    "/dags/{dag_id}/environments/{environment}/approvals",
    dependencies=[Depends(requires_access_dag("PUT", DagAccessEntity.HITL_DETAIL))],
    response_model=ApprovalView,
    status_code=status.HTTP_201_CREATED,
)
def approve(dag_id: str, environment: str, body: ApprovalBody, user: GetUserDep) -> ApprovalView:
    """Approve or reject a release for an environment, as the authenticated user."""
    bundle = _bundle(dag_id)
    spec = _spec(bundle)
    policy = _policy(spec, environment)
    ledger = _ledger()
    pending = _pending(ledger.latest_gate_evaluations(bundle), environment, body.release_digest)
    version = pending.version if pending else None
    if policy.signature == "part11":
        _limit_signature_rate(ledger, str(user.get_id()))
    request = ApprovalRequest(
        bundle=bundle,
        environment=environment,
        release_digest=body.release_digest,
        approver=str(user.get_id()),
        approver_name=user.get_name(),
        roles=_roles(user),
        decision=body.decision,
        reason=body.reason,
        overrides_freeze=body.overrides_freeze,
        meaning=body.meaning,
        password=body.password.get_secret_value() if body.password else None,
    )
    try:
        approval = submit_approval(
            ledger,
            request,
            policy,
            triggered_by=pending.triggered_by if pending else None,
            commit_authors=pending.commit_authors if pending else (),
            check_password=_password_check(),
            now=datetime.now(UTC),
        )
    except RejectionStands as standing:
        raise HTTPException(status.HTTP_409_CONFLICT, str(standing)) from None
    except (ApprovalRefused, IdentityRefused) as refused:
        if policy.signature == "part11":
            announce_lockout(spec, ledger, request, version)
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    announce_decision(spec, approval, version)
    return _approval_view(approval)


class HoldClearBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why promotions may enter the environment again.")


class HoldView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    environment: str
    reason: str
    held_by: str
    held_at: datetime
    run_id: str | None


@app.post(
    "/dags/{dag_id}/environments/{environment}/hold/clear",
    dependencies=[Depends(requires_access_dag("PUT", DagAccessEntity.RUN))],
    response_model=HoldView | None,
)
def clear_hold(dag_id: str, environment: str, body: HoldClearBody, user: GetUserDep) -> HoldView | None:
    """Let promotions into an environment a rollback held, as the authenticated user; null if not held.

    Only the environment's ``hold_clearers`` may, by default the people of its approval groups."""
    account = str(user.get_id())
    clearers = _hold_clearers(_environment(_spec(_bundle(dag_id)), environment))
    if not eligible_groups(clearers, account, _roles(user)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{account} may not clear the hold on {environment}: only its hold_clearers may "
            "(by default its approval groups); an administrator can `bundle-promotion hold break-glass`",
        )
    try:
        cleared = _ledger().clear_hold(_bundle(dag_id), environment, reason=body.reason, actor=account)
    except IdentityRefused as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    return HoldView.model_validate(cleared) if cleared is not None else None


class LockoutLiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why the signer may sign again (kept in the audit trail).")


class LockoutView(BaseModel):
    signer: str
    lifted: bool  # False when the signer was not locked out


@app.post("/signers/{signer}/lockout/lift", response_model=LockoutView)
def lift_signature_lockout(signer: str, body: LockoutLiftBody, user: GetUserDep) -> LockoutView:
    """Let a locked-out signer sign again (21 CFR 11.300(d)), as the authenticated administrator.

    Only members of ``[bundle_promotion] signature_admin_role`` (default Admin) may; the lift is
    an audit event naming them and the reason."""
    account = str(user.get_id())
    admin_role = settings.signature_admin_role()
    if admin_role.casefold() not in {role.casefold() for role in _roles(user)}:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{account} may not lift signature lockouts: only the {admin_role} role may "
            "([bundle_promotion] signature_admin_role)",
        )
    try:
        person, actor = canonical_identity(signer), canonical_identity(account)
    except IdentityRefused as refused:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(refused)) from None
    lifted = _ledger().lift_signature_lockout(person, actor=actor, reason=body.reason)
    return LockoutView(signer=person, lifted=lifted)


def _limit_signature_rate(ledger: Ledger, account: str) -> None:
    """429 when the user tried to sign less than the configured interval ago: guessing is slowed
    before the lockout's count is reached."""
    person = person_or_none(account)
    last = ledger.last_signature_attempt_at(person) if person else None
    interval = timedelta(seconds=settings.signature_attempt_interval())
    wait = (last + interval - datetime.now(UTC)).total_seconds() if last else 0
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"{person} tried to sign less than {interval.total_seconds():g} s ago; try again shortly",
            headers={"Retry-After": str(math.ceil(wait))},
        )


def _bundle(dag_id: str) -> str:
    bundle = promoted_bundle(dag_id)
    if bundle is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{dag_id} is not a promotion DAG ({PROMOTION_PATTERN})"
        )
    return bundle


def _policy(spec: PromotionSpec, environment: str) -> ApprovalPolicy:
    entries = [gate.approval for gate in _environment(spec, environment).gates if gate.approval is not None]
    if not entries:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{environment} of {spec.bundle} has no approval gate; nothing to approve",
        )
    return policy_from_spec(entries[0], settings.approval_identities(entries[0]))


def _hold_clearers(env: Environment) -> ApprovalPolicy:
    """The people who may clear a hold, as a policy of groups: ``hold_clearers``, else the approval groups."""
    if env.hold_clearers is not None:
        clearers = env.hold_clearers
        return ApprovalPolicy(groups=(ApprovalGroup("hold_clearers", 1, clearers.users, clearers.role),))
    approval_gates = [gate.approval for gate in env.gates if gate.approval is not None]
    return policy_from_spec(approval_gates[0]) if approval_gates else ApprovalPolicy(groups=())


def _environment(spec: PromotionSpec, environment: str) -> Environment:
    match = [env for env in spec.environments if env.name == environment]
    if not match:
        names = ", ".join(env.name for env in spec.environments)
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{spec.bundle} has no environment {environment}; it has {names}"
        )
    return match[0]


def _spec(bundle: str) -> PromotionSpec:
    for spec in load_specs(settings.specs_folder()):
        if not isinstance(spec, SpecError) and spec.bundle == bundle:
            return spec
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, f"no promotion spec for bundle {bundle} in {settings.specs_folder()}"
    )


def _pending(evaluations: list[GateEvaluation], environment: str, digest: str) -> GateEvaluation | None:
    """The run waiting at this environment for this release: who triggered it, who wrote it."""
    return next((e for e in evaluations if e.environment == environment and e.release_digest == digest), None)


def _roles(user: Any) -> frozenset[str]:
    """The user's roles as the auth manager knows them: SimpleAuthManager has one, FAB a list."""
    roles = [
        getattr(user, "role", None),
        *(getattr(role, "name", role) for role in getattr(user, "roles", []) or []),
    ]
    return frozenset(str(role) for role in roles if role)


def _password_check() -> PasswordCheck:
    configured = settings.signature_password_check()
    if configured:
        from airflow.sdk.module_loading import import_string

        check: PasswordCheck = import_string(configured)
        return check
    return simple_auth_manager_password_check


def simple_auth_manager_password_check(username: str, password: str) -> bool:
    """Check a password the way the SimpleAuthManager's login does, in constant time."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    if conf.getboolean("core", "simple_auth_manager_all_admins", fallback=False):
        return False  # no passwords at all: nobody can sign
    known = {user.username for user in SimpleAuthManager.get_users()}
    stored = SimpleAuthManager.get_passwords().get(username, "") if username in known else ""
    return hmac.compare_digest(stored.encode(), password.encode()) and bool(stored)


def _ledger() -> Ledger:
    return settings.ledger()


def _gates_view(evaluation: GateEvaluation) -> EnvironmentGates:
    return EnvironmentGates(
        environment=evaluation.environment,
        status=evaluation.status,
        version=evaluation.version,
        release_digest=evaluation.release_digest,
        run_id=evaluation.run_id,
        triggered_by=evaluation.triggered_by,
        evaluated_at=evaluation.evaluated_at,
        gates=[GateView(gate=r.gate, status=r.status, reason=r.reason) for r in evaluation.results],
    )


def _approval_view(approval: Approval) -> ApprovalView:
    return ApprovalView(
        approver=approval.approver,
        approver_name=approval.approver_name,
        decision=approval.decision,
        reason=approval.reason,
        release_digest=approval.release_digest,
        given_at=approval.given_at,
        groups=list(approval.groups),
        overrides_freeze=approval.overrides_freeze,
        signature=approval.signature,
        meaning=approval.meaning,
    )
