"""The release board's API: one row per bundle, one cell per environment, and what the user may do there.

Mounted by ``api.py`` under ``/bundle-promotion/board``, behind Airflow's auth like the rest of
the plugin's API. Every answer says, per cell, which actions the logged-in user may take and,
when not, why: the page disables buttons from it and never guesses. Approvals and hold clearing
go through ``api.py``'s routes, the same the CLI uses; promote and roll back trigger the bundle's
DAGs as the user, and are recorded in the ledger's audit trail.

The read is bounded: ``Ledger.board`` answers for every environment in a fixed number of
index seeks, and the Airflow runs linked from the cells are looked up in one query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_authenticated
from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from bundle_promotion.bundle.deploy import lock as deploy_lock
from bundle_promotion.errors import (
    BundlePromotionError,
    IdentityRefused,
    LockNotBroken,
    ReleaseError,
    SpecError,
    WorkspaceApiError,
)
from bundle_promotion.gates.approvals import ApprovalPolicy, eligible_groups, policy_from_spec
from bundle_promotion.identity import canonical_identity
from bundle_promotion.identity import person_or_none as _person_or_none
from bundle_promotion.ledger.records import Approval, DriftReport, GateEvaluation, Release
from bundle_promotion.release import git
from bundle_promotion.spec import Environment, PromotionSpec, load_specs
from bundle_promotion.spec.dag_ids import promotion_dag_id, rollback_dag_id
from bundle_promotion.web import api

if TYPE_CHECKING:
    from bundle_promotion.ledger import EnvironmentState, LockWait

router = APIRouter(prefix="/board", dependencies=[Depends(requires_authenticated())])
# The same few names are normalised for every cell; normalising one costs ~30 µs.
person_or_none = lru_cache(maxsize=4096)(_person_or_none)


class Permission(BaseModel):
    allowed: bool
    reason: str | None = Field(default=None, description="Why not, when not allowed.")


class ReleaseRef(BaseModel):
    version: str
    commit: str
    digest: str


class Running(BaseModel):
    """The release the environment runs now, and the deployment that put it there."""

    release: ReleaseRef
    state: str = Field(description="deployed, succeeded (verified and tested) or failed")
    since: datetime | None
    run_id: str
    run_url: str | None
    detail: str | None


class Decision(BaseModel):
    approver: str
    decision: str
    reason: str
    given_at: datetime
    signature: str
    meaning: str | None


class Waiting(BaseModel):
    """The release at the environment's gates, each gate's reason, and who decided or may."""

    release: ReleaseRef
    status: str
    run_id: str
    run_url: str | None
    triggered_by: str | None
    evaluated_at: datetime
    gates: list[api.GateView]
    decisions: list[Decision]
    may_approve: list[str] = Field(description="Who may still approve, by group; empty when none needed.")


class Held(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    reason: str
    held_by: str
    held_at: datetime
    run_id: str | None


class DriftBadge(BaseModel):
    status: str = Field(description="in_sync, drifted or not_deployed")
    checked_at: datetime
    findings: list[str] = Field(
        description="Each drifted field: the resource, the field, actual and expected"
    )


class LockWaitView(BaseModel):
    """A deploy waiting on a deploy lock another deployment holds, and that lock."""

    lock_id: str | None = Field(description="The lock's ID: what a break names, so only this lock is broken.")
    lock_path: str
    holder: str = Field(description="Who holds it: user; run, task and host when a promotion took it")
    held_since: datetime | None = Field(description="When the holder took the lock, as the lock says")
    run_id: str = Field(description="The waiting run")
    run_url: str | None
    waiting_since: datetime


class Cell(BaseModel):
    environment: str
    target: str
    schedules: str = Field(description="paused or unpaused, and why when not the policy")
    signature: str = Field(description="part11 when approvals here are electronic signatures")
    running: Running | None
    waiting: Waiting | None
    hold: Held | None
    lock_wait: LockWaitView | None
    actions: dict[str, Permission] = Field(description="approve, clear_hold, rollback, heal, break_lock")
    drift: DriftBadge | None = Field(description="The newest drift check; None before the first")


class BundleRow(BaseModel):
    bundle: str
    promote_dag: str
    rollback_dag: str
    cells: list[Cell]
    actions: dict[str, Permission] = Field(description="promote")


class Board(BaseModel):
    user: str
    bundles: list[BundleRow]


@router.get("", response_model=Board)
def board(user: GetUserDep) -> Board:
    """Every bundle the user may see, with what runs, waits and is held in each environment."""
    visible = [spec for spec in _specs() if _may(user, "GET", spec.dag_id, DagAccessEntity.RUN)]
    pairs = [(spec.bundle, env.name) for spec in visible for env in spec.environments]
    ledger = api._ledger()
    states = iter(ledger.board(pairs))
    rows = [(spec, [next(states) for _ in spec.environments]) for spec in visible]
    runs = _runs_named(rows)
    drifts = {(report.bundle, report.environment): report for report in ledger.latest_drift_reports()}
    return Board(
        user=str(user.get_id()),
        bundles=[_bundle_row(spec, cells, user, runs, drifts) for spec, cells in rows],
    )


class HistoryEntry(BaseModel):
    deployment_id: int
    release: ReleaseRef
    state: str
    run_id: str
    run_url: str | None
    started_at: datetime
    applied_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    superseded_by: int | None


class EnvironmentHistory(BaseModel):
    environment: str
    deployments: list[HistoryEntry]
    decisions: list[Decision]


class BundleHistory(BaseModel):
    bundle: str
    environments: list[EnvironmentHistory]


@router.get("/bundles/{bundle}", response_model=BundleHistory)
def history(bundle: str, user: GetUserDep, limit: int = Query(100, ge=1, le=1000)) -> BundleHistory:
    """The newest ``limit`` deployments of each environment with their outcome, and every decision there."""
    spec = _spec(bundle)
    _require(user, "GET", promotion_dag_id(spec.bundle), DagAccessEntity.RUN)
    ledger = api._ledger()
    per_environment = {
        env.name: ledger.deployments(bundle, env.name, limit=limit) for env in spec.environments
    }
    releases = {
        record.release_id: ledger.release(record.release_id)
        for records in per_environment.values()
        for record in records
    }
    run_ids = {record.run_id for records in per_environment.values() for record in records}
    runs = _find_runs([spec], run_ids)
    return BundleHistory(
        bundle=bundle,
        environments=[
            EnvironmentHistory(
                environment=name,
                deployments=[
                    HistoryEntry(
                        deployment_id=record.id,
                        release=_ref(releases[record.release_id]),
                        state=record.state,
                        run_id=record.run_id,
                        run_url=runs.url(record.run_id),
                        started_at=record.started_at,
                        applied_at=record.applied_at,
                        finished_at=record.finished_at,
                        detail=record.detail,
                        superseded_by=record.superseded_by,
                    )
                    for record in records
                ],
                decisions=[_decision(a) for a in ledger.approvals(bundle, name)],
            )
            for name, records in per_environment.items()
        ],
    )


@router.get("/bundles/{bundle}/releases/{version}/evidence.{kind}")
def evidence(bundle: str, version: str, kind: Literal["json", "md"], user: GetUserDep) -> Response:
    """The release's evidence pack, as ``bundle-promotion audit export`` writes it."""
    from bundle_promotion.ledger.evidence import evidence_pack, to_markdown

    spec = _spec(bundle)
    _require(user, "GET", promotion_dag_id(spec.bundle), DagAccessEntity.RUN)
    try:
        pack = evidence_pack(api._ledger(), bundle, version, environments=[e.name for e in spec.environments])
    except BundlePromotionError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
    if kind == "md":
        return Response(to_markdown(pack), media_type="text/markdown; charset=utf-8")
    return JSONResponse(pack)


class CommitView(BaseModel):
    sha: str
    author: str
    subject: str


class ReleaseDiff(BaseModel):
    base: ReleaseRef
    head: ReleaseRef
    commits: list[CommitView] = Field(description="In head and not in base, newest first.")
    artifacts_changed: list[str] = Field(description="Artifacts whose sha256 differs, or that only one has.")
    config_changed: bool = Field(description="Whether the resolved bundle config differs.")


@router.get("/bundles/{bundle}/diff", response_model=ReleaseDiff)
def diff(bundle: str, base: str, head: str, user: GetUserDep) -> ReleaseDiff:
    """What changed from release ``base`` to release ``head`` (versions the ledger recorded)."""
    from bundle_promotion import settings

    spec = _spec(bundle)
    _require(user, "GET", spec.dag_id, DagAccessEntity.RUN)
    old, new = _recorded(bundle, base), _recorded(bundle, head)
    try:
        commits = git.commits_between(spec.repo_location(), old.commit, new.commit, settings.checkouts())
    except ReleaseError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None
    old_artifacts = {a.relative_path: a.sha256 for a in old.artifacts}
    new_artifacts = {a.relative_path: a.sha256 for a in new.artifacts}
    return ReleaseDiff(
        base=_ref(old),
        head=_ref(new),
        commits=[CommitView(sha=c.sha, author=c.author, subject=c.subject) for c in commits],
        artifacts_changed=sorted(
            path
            for path in old_artifacts.keys() | new_artifacts.keys()
            if old_artifacts.get(path) != new_artifacts.get(path)
        ),
        config_changed=old.config_digest != new.config_digest,
    )


def _recorded(bundle: str, version: str) -> Release:
    found = api._ledger().release_by_version(bundle, version)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{version} of {bundle} was never released")
    return found[1]


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, description="One of the repository's tags.")


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_version: str | None = Field(default=None, description="The release to return to; null: last good.")
    reason: str = Field(min_length=1, description="Why; recorded in the audit trail.")


class Triggered(BaseModel):
    dag_id: str
    run_id: str
    run_url: str


@router.get("/bundles/{bundle}/versions", response_model=list[str])
def versions(bundle: str) -> list[str]:
    """The repository's tags, newest first: what a promotion may be given."""
    spec = _spec(bundle)
    try:
        return git.tags(spec.repo_location())
    except ReleaseError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None


@router.post("/bundles/{bundle}/promote", response_model=Triggered, status_code=status.HTTP_201_CREATED)
def promote(bundle: str, body: PromoteBody, user: GetUserDep) -> Triggered:
    """Trigger ``promote__<bundle>`` with one of the repository's tags, as the user."""
    dag_id = promotion_dag_id(_spec(bundle).bundle)
    _require(user, "POST", dag_id, DagAccessEntity.RUN)
    known = versions(bundle)
    if body.version not in known:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"{body.version} is not a tag of {bundle}'s repository; its newest are {', '.join(known[:5])}",
        )
    return _trigger(dag_id, user, {"version": body.version}, note=f"{body.version} from the board")


@router.post(
    "/bundles/{bundle}/environments/{environment}/rollback",
    response_model=Triggered,
    status_code=status.HTTP_201_CREATED,
)
def rollback(bundle: str, environment: str, body: RollbackBody, user: GetUserDep) -> Triggered:
    """Trigger ``rollback__<bundle>`` for one environment, as the user."""
    spec = _spec(bundle)
    api._environment(spec, environment)
    dag_id = rollback_dag_id(spec.bundle)
    _require(user, "POST", dag_id, DagAccessEntity.RUN)
    ledger = api._ledger()
    if body.target_version is not None and ledger.release_by_version(bundle, body.target_version) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            f"{body.target_version} of {bundle} was never released; pick a release from its history",
        )
    conf = {"environment": environment, "target_version": body.target_version}
    triggered = _trigger(dag_id, user, conf, note=f"roll back {environment}: {body.reason}")
    ledger.record_event(
        actor=str(user.get_id()),
        action="rollback.requested",
        subject=f"{bundle}/{environment}",
        reason=body.reason,
        details={**conf, "run_id": triggered.run_id},
    )
    return triggered


class LockBreakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lock_id: str = Field(min_length=1, description="The ID of the lock the board showed; no other is broken.")
    reason: str = Field(min_length=1, description="Why the holder is stale; recorded in the audit trail.")


class BrokenLock(BaseModel):
    lock_path: str
    holder: str
    held_since: datetime | None


@router.post("/bundles/{bundle}/environments/{environment}/lock/break", response_model=BrokenLock)
def break_lock(bundle: str, environment: str, body: LockBreakBody, user: GetUserDep) -> BrokenLock:
    """Break the deploy lock a deploy to the environment waits on, as the user, through its connection.

    Only the lock recorded as waited on, and only while the lock file still names its holder; the
    waiting deploy's trigger then finds the lock free. Audited as ``deploy_lock.broken``."""
    spec = _spec(bundle)
    env = api._environment(spec, environment)
    allowed = _may_unblock(user, spec.bundle, env, "break its deploy lock")
    if not allowed.allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, allowed.reason)
    ledger = api._ledger()
    wait = ledger.lock_wait(bundle, environment)
    if wait is None or wait.lock_id != body.lock_id:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"no deploy to {environment} waits on the lock {body.lock_id} any more; look at the board again",
        )
    try:  # refused before the lock is touched: no break may go unrecorded
        actor = canonical_identity(str(user.get_id()))
    except IdentityRefused as refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(refused)) from None
    try:
        holder = deploy_lock.break_lock(_workspace(env), wait.lock_path, body.lock_id)
    except LockNotBroken as refused:
        raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
    except WorkspaceApiError as error:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None
    ledger.record_lock_broken(wait, actor=actor, reason=body.reason)
    return BrokenLock(
        lock_path=wait.lock_path, holder=deploy_lock.holder_name(holder), held_since=wait.held_since
    )


def _workspace(env: Environment) -> Any:
    from bundle_promotion.hooks.workspace import WorkspaceHook

    return WorkspaceHook(env.databricks_conn_id)


def _trigger(dag_id: str, user: Any, conf: dict[str, Any], *, note: str) -> Triggered:
    """A manual run of ``dag_id`` triggered by the user, as Airflow's own API triggers one."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user.get_name(),
            conf=conf,
            note=note,
        )
    except DagNotFound:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"{dag_id} is not in Airflow yet: is the DAG processor running?"
        ) from None
    if run is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{dag_id} did not start a run")
    return Triggered(dag_id=dag_id, run_id=run.run_id, run_url=_run_url(dag_id, run.run_id))


def _bundle_row(
    spec: PromotionSpec,
    states: Sequence[EnvironmentState],
    user: Any,
    runs: _Runs,
    drifts: Mapping[tuple[str, str], DriftReport],
) -> BundleRow:
    promote_dag, rollback_dag = promotion_dag_id(spec.bundle), rollback_dag_id(spec.bundle)
    may_trigger = {
        dag: _permission(_may(user, "POST", dag, DagAccessEntity.RUN), f"your role may not trigger {dag}")
        for dag in (promote_dag, rollback_dag)
    }
    return BundleRow(
        bundle=spec.bundle,
        promote_dag=promote_dag,
        rollback_dag=rollback_dag,
        cells=[
            _cell(env, state, user, runs, may_trigger[rollback_dag], drifts.get((spec.bundle, env.name)))
            for env, state in zip(spec.environments, states, strict=True)
        ],
        actions={"promote": may_trigger[promote_dag]},
    )


def _cell(
    env: Environment,
    state: EnvironmentState,
    user: Any,
    runs: _Runs,
    rollback: Permission,
    drift: DriftReport | None,
) -> Cell:
    if state.lock_wait and state.lock_wait.run_id in runs.ended:
        # The deploy waits no more, whatever the ledger kept: a worker or triggerer killed while
        # it was deferred leaves its wait behind.
        state = replace(state, lock_wait=None)
    policy = _approval_policy(env)
    waiting = state.latest_gates if state.latest_gates and state.latest_gates.status == "waiting" else None
    current = state.current
    return Cell(
        environment=env.name,
        target=env.target,
        schedules=_schedules(env, state),
        signature=policy.signature if policy else "none",
        running=Running(
            release=_ref(current[0]),
            state=current[1].state,
            since=current[1].applied_at,
            run_id=current[1].run_id,
            run_url=runs.url(current[1].run_id),
            detail=current[1].detail,
        )
        if current
        else None,
        waiting=_waiting(waiting, state, policy, runs) if waiting else None,
        hold=Held.model_validate(state.hold) if state.hold else None,
        lock_wait=_lock_wait_view(state.lock_wait, runs) if state.lock_wait else None,
        actions={
            "approve": _may_approve(user, state, waiting, policy),
            "clear_hold": _may_clear_hold(user, state, env),
            "break_lock": _may_break_lock(user, state, env),
            "rollback": rollback
            if not rollback.allowed or current
            else _permission(False, f"nothing runs in {env.name} to roll back"),
            # Healing redeploys or re-pauses: the same right as rolling back.
            "heal": rollback
            if not rollback.allowed or (drift and drift.findings)
            else _permission(False, f"no drift found in {env.name}"),
        },
        drift=DriftBadge(
            status=drift.status, checked_at=drift.checked_at, findings=[str(f) for f in drift.findings]
        )
        if drift
        else None,
    )


def _waiting(
    evaluation: GateEvaluation,
    state: EnvironmentState,
    policy: ApprovalPolicy | None,
    runs: _Runs,
) -> Waiting:
    approvals = state.approvals
    assert state.gates_release is not None  # read with the evaluation
    return Waiting(
        release=_ref(state.gates_release),
        status=evaluation.status,
        run_id=evaluation.run_id,
        run_url=runs.url(evaluation.run_id),
        triggered_by=evaluation.triggered_by,
        evaluated_at=evaluation.evaluated_at,
        gates=[api.GateView(gate=r.gate, status=r.status, reason=r.reason) for r in evaluation.results],
        decisions=[_decision(a) for a in approvals],
        may_approve=_may_still_approve(policy, evaluation, approvals) if policy else [],
    )


def _decision(approval: Approval) -> Decision:
    return Decision(
        approver=approval.approver,
        decision=approval.decision,
        reason=approval.reason,
        given_at=approval.given_at,
        signature=approval.signature,
        meaning=approval.meaning,
    )


def _ref(release: Release) -> ReleaseRef:
    return ReleaseRef(version=release.version, commit=release.commit, digest=release.digest)


def _may_still_approve(
    policy: ApprovalPolicy, evaluation: GateEvaluation, approvals: Sequence[Approval]
) -> list[str]:
    """Per group, who may still approve: its people who have not decided and did not trigger the run."""
    decided = {person_or_none(a.approver) for a in approvals}
    excluded = decided | {person_or_none(evaluation.triggered_by or "")}
    described = []
    for group in policy.groups:
        people = [user for user in group.users if person_or_none(user) not in excluded]
        members = [*people, *([f"role {group.role}"] if group.role else [])]
        described.append(f"{group.name}: {', '.join(members) or 'nobody left'}")
    return described


def _may_approve(
    user: Any, state: EnvironmentState, waiting: GateEvaluation | None, policy: ApprovalPolicy | None
) -> Permission:
    account = str(user.get_id())
    dag_id = promotion_dag_id(state.bundle)
    if policy is None:
        return _permission(False, f"{state.environment} has no approval gate")
    if waiting is None:
        return _permission(False, "no release waits at the gates")
    if not _may(user, "PUT", dag_id, DagAccessEntity.HITL_DETAIL):
        return _permission(False, f"your role may not answer approvals of {dag_id}")
    if not eligible_groups(policy, account, api._roles(user)):
        return _permission(False, f"{account} is in none of {_group_names(policy)}")
    person = person_or_none(account)
    if person is not None and person == person_or_none(waiting.triggered_by or ""):
        return _permission(False, f"{account} triggered this run (segregation of duties)")
    if any(person_or_none(a.approver) == person and a.decision == "approve" for a in state.approvals):
        return _permission(False, f"{account} has approved this release already")
    return _permission(True)


def _may_clear_hold(user: Any, state: EnvironmentState, env: Environment) -> Permission:
    if state.hold is None:
        return _permission(False, f"{env.name} is not held")
    return _may_unblock(user, state.bundle, env, "clear its hold")


def _may_break_lock(user: Any, state: EnvironmentState, env: Environment) -> Permission:
    if state.lock_wait is None:
        return _permission(False, f"no deploy to {env.name} waits on a lock")
    return _may_unblock(user, state.bundle, env, "break its deploy lock")


def _may_unblock(user: Any, bundle: str, env: Environment, what: str) -> Permission:
    """Who may lift what stops promotions into ``env``: its ``hold_clearers`` who may change the runs."""
    if not _may(user, "PUT", promotion_dag_id(bundle), DagAccessEntity.RUN):
        return _permission(False, f"your role may not change runs of {promotion_dag_id(bundle)}")
    clearers = api._hold_clearers(env)
    if not eligible_groups(clearers, str(user.get_id()), api._roles(user)):
        return _permission(False, f"only {env.name}'s hold_clearers may {what} ({_group_names(clearers)})")
    return _permission(True)


def _lock_wait_view(wait: LockWait, runs: _Runs) -> LockWaitView:
    return LockWaitView(
        lock_id=wait.lock_id,
        lock_path=wait.lock_path,
        holder=deploy_lock.holder_name(wait.holder),
        held_since=wait.held_since,
        run_id=wait.run_id,
        run_url=runs.url(wait.run_id),
        waiting_since=wait.waiting_since,
    )


def _schedules(env: Environment, state: EnvironmentState) -> str:
    if state.schedule_hold is not None:
        return f"paused for maintenance by {state.schedule_hold.actor}: {state.schedule_hold.reason}"
    if state.current is None:
        return "nothing deployed"
    if state.current[1].state != "succeeded":
        return "paused until the deployment is verified and tested"
    return env.schedules


def _approval_policy(env: Environment) -> ApprovalPolicy | None:
    entries = [gate.approval for gate in env.gates if gate.approval is not None]
    return policy_from_spec(entries[0]) if entries else None


def _group_names(policy: ApprovalPolicy) -> str:
    return ", ".join(
        f"{group.name} ({', '.join([*group.users, *([f'role {group.role}'] if group.role else [])])})"
        for group in policy.groups
    )


def _runs_named(rows: Sequence[tuple[PromotionSpec, Sequence[EnvironmentState]]]) -> _Runs:
    """Where each run the cells name lives in Airflow's UI, and which have ended: one query for them all."""
    run_ids = {
        run_id
        for _, states in rows
        for state in states
        for run_id in (
            state.current[1].run_id if state.current else None,
            state.latest_gates.run_id if state.latest_gates else None,
            state.lock_wait.run_id if state.lock_wait else None,
        )
        if run_id
    }
    return _find_runs([spec for spec, _ in rows], run_ids)


@dataclass(frozen=True)
class _Runs:
    """The runs the board names, as Airflow has them: each run's DAG and whether it has ended."""

    dags: Mapping[str, str]
    ended: frozenset[str]

    def url(self, run_id: str) -> str | None:
        return _run_url(self.dags[run_id], run_id) if run_id in self.dags else None


def _find_runs(specs: Sequence[PromotionSpec], run_ids: set[str]) -> _Runs:
    """A deployment knows its run's id, not its DAG: a promotion's or a manual rollback's."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    if not run_ids:
        return _Runs({}, frozenset())
    dag_ids = [dag for spec in specs for dag in (promotion_dag_id(spec.bundle), rollback_dag_id(spec.bundle))]
    with create_session() as session:
        found = session.execute(
            select(DagRun.run_id, DagRun.dag_id, DagRun.state).where(
                DagRun.dag_id.in_(dag_ids), DagRun.run_id.in_(run_ids)
            )
        ).all()
    ended = frozenset(
        run_id for run_id, _, state in found if state in (DagRunState.SUCCESS, DagRunState.FAILED)
    )
    return _Runs({run_id: dag_id for run_id, dag_id, _ in found}, ended)


def _run_url(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/runs/{run_id}"


def _may(user: Any, method: Any, dag_id: str, entity: DagAccessEntity) -> bool:
    from airflow.api_fastapi.app import get_auth_manager

    return bool(
        get_auth_manager().is_authorized_dag(
            method=method, access_entity=entity, details=DagDetails(id=dag_id), user=user
        )
    )


def _require(user: Any, method: Any, dag_id: str, entity: DagAccessEntity) -> None:
    if not _may(user, method, dag_id, entity):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{user.get_id()} may not trigger {dag_id}")


def _permission(allowed: bool, reason: str | None = None) -> Permission:
    return Permission(allowed=allowed, reason=None if allowed else reason)


def _specs() -> tuple[PromotionSpec, ...]:
    """The valid specs, parsed again only when a file of the folder changed: parsing 50 costs ~100 ms."""
    from bundle_promotion import settings

    folder = settings.specs_folder()
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    return _specs_as_of(
        folder, tuple((file.name, file.stat().st_mtime_ns, file.stat().st_size) for file in files)
    )


@lru_cache(maxsize=4)
def _specs_as_of(folder: Path, files: tuple[tuple[str, int, int], ...]) -> tuple[PromotionSpec, ...]:
    return tuple(spec for spec in load_specs(folder) if not isinstance(spec, SpecError))


def _spec(bundle: str) -> PromotionSpec:
    return api._spec(bundle)
