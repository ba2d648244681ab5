"""Rollback: return an environment to its last known-good release, code and data, then hold it.

Before each deploy, ``record_data_snapshot`` keeps what the data looked like (model aliases,
Delta table versions) next to the previous release; the schedules' states are recorded by the
deploy itself (``lifecycle.promotion.deploy_release``). A rollback reads those records into a
``RollbackPlan`` and puts each thing back with one idempotent step, so any step can be cleared
and run again: redeploy the release's exact artifacts, restore the schedules, move the model
aliases, restore the tables, refresh the pipelines; last, hold the environment so no promotion
flaps back into it before a person has looked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.lock import LockOwner
from bundle_promotion.bundle.deploy.state import read_state, resource_id
from bundle_promotion.errors import ReleaseError, RestoreFailed, StaleDeployment
from bundle_promotion.ledger import SYSTEM_ACTOR, DataSnapshot, DeploymentRecord, EnvironmentHold, Ledger
from bundle_promotion.ledger.records import TriggerState
from bundle_promotion.lifecycle import data_restores
from bundle_promotion.lifecycle.holds import refuse_if_held
from bundle_promotion.lifecycle.promotion import (
    BundleSource,
    EnvironmentDeployment,
    deploy_release,
    deployed_jobs,
    restore_schedules,
)
from bundle_promotion.lifecycle.schedules import set_pause_status
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.spec import Rollback
from bundle_promotion.workspace.api import WorkspaceApi

REDEPLOY_DETAIL = "rollback redeploy"  # marks a deployment made by a rollback, not by a promotion


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of one environment puts back, read from the ledger.

    ``rolled_back`` is the deployment being undone: its schedule snapshot and the data snapshot
    of its run are what the schedules and data go back to. ``target_release_id`` is None when the
    environment never ran a good release: then nothing is redeployed and schedules are paused.
    """

    bundle: str
    environment: str
    target_release_id: int | None
    target_version: str | None
    rolled_back: DeploymentRecord | None
    model_aliases: dict[str, int | None]
    table_versions: dict[str, int]

    def describe(self) -> list[str]:
        """One line per thing the plan restores, for the task log and the audit trail."""
        if self.target_version is None:
            return [f"{self.bundle}/{self.environment} has no previous good release: code left as is"]
        lines = [f"redeploy {self.target_version} to {self.environment}"]
        if self.rolled_back is not None:
            lines.append(f"restore the schedules found before {self.rolled_back.version} was deployed")
        lines += [f"move {key} back to version {version}" for key, version in self.model_aliases.items()]
        lines += [f"restore {table} to version {version}" for table, version in self.table_versions.items()]
        return lines


def record_data_snapshot(
    api: WorkspaceApi,
    ledger: Ledger,
    *,
    bundle: str,
    environment: str,
    run_id: str,
    policy: Rollback,
    actor: str = SYSTEM_ACTOR,
) -> DataSnapshot:
    """Before a deploy: the aliases and table versions a rollback returns to, once per run."""
    if (recorded := ledger.data_snapshot(bundle, environment, run_id)) is not None:
        return recorded
    previous = ledger.current_release(bundle, environment)
    aliases = {
        data_restores.alias_key(model.name, model.alias): data_restores.alias_version(
            api, model.name, model.alias
        )
        for model in policy.models
    }
    tables = {
        table: data_restores.table_version(api, str(policy.warehouse_id), table) for table in policy.tables
    }
    snapshot = DataSnapshot(
        bundle=bundle,
        environment=environment,
        run_id=run_id,
        previous_release_id=previous[1].release_id if previous else None,
        model_aliases=aliases,
        table_versions=tables,
        taken_at=datetime.now(UTC),
    )
    return ledger.record_data_snapshot(snapshot, actor=actor)


def plan_rollback(
    ledger: Ledger,
    *,
    bundle: str,
    environment: str,
    run_id: str | None = None,
    target_version: str | None = None,
) -> RollbackPlan:
    """Back to ``target_version``, or to the last release that passed verification and tests here.

    Every rollback step reads its plan here first, so a held environment is refused, except
    by the steps of the run (``run_id``) whose rollback set the hold.
    """
    refuse_if_held(ledger, bundle, environment, rollback_run=run_id)
    target_id, version = _target(ledger, bundle, environment, target_version)
    rolled_back = _undone(ledger.deployments(bundle, environment), target_id)
    snapshot = ledger.data_snapshot(bundle, environment, rolled_back.run_id) if rolled_back else None
    return RollbackPlan(
        bundle=bundle,
        environment=environment,
        target_release_id=target_id,
        target_version=version,
        rolled_back=rolled_back,
        model_aliases=snapshot.model_aliases if snapshot else {},
        table_versions=snapshot.table_versions if snapshot else {},
    )


def _undone(newest_first: list[DeploymentRecord], target_id: int | None) -> DeploymentRecord | None:
    """The newest deployment of another release since the target was last promoted (not redeployed)."""
    for deployment in newest_first:
        if deployment.release_id != target_id:
            return deployment
        if deployment.state == "succeeded" and deployment.detail != REDEPLOY_DETAIL:
            return None
    return None


def _target(
    ledger: Ledger, bundle: str, environment: str, version: str | None
) -> tuple[int | None, str | None]:
    if version:
        recorded = ledger.release_by_version(bundle, version)
        if recorded is None:
            raise ReleaseError(
                f"{version} of {bundle} is not in the ledger; roll back to a release that was promoted, "
                "or leave the target empty for the last known-good one"
            )
        return recorded[0], version
    good = ledger.last_good_release(bundle, environment)
    return (good[1].release_id, good[1].version) if good else (None, None)


def redeploy(
    plan: RollbackPlan,
    source: BundleSource,
    *,
    target: str,
    run_id: str,
    api: WorkspaceApi,
    ledger: Ledger,
    store: ArtifactStore,
    checkouts: Path,
    actor: str = SYSTEM_ACTOR,
    owner: LockOwner | None = None,
) -> EnvironmentDeployment | None:
    """Deploy the plan's release again, its exact artifacts by digest; None when there is none.

    ``owner`` is the redeploy task: it resumes its own deploy lock, and takes over one its run's
    deploy left when it was killed.

    A redeploy this run already finished is not repeated: the engine would write nothing, but
    the deploy step re-pauses every schedule, which a later step of the rollback had restored.
    """
    if plan.target_release_id is None or _redeployed(ledger, plan, run_id):
        return None
    deployment = deploy_release(
        source,
        plan.target_release_id,
        environment=plan.environment,
        target=target,
        run_id=run_id,
        api=api,
        ledger=ledger,
        store=store,
        checkouts=checkouts,
        rolling_back=True,
        owner=owner,
        actor=actor,
    )
    ledger.finish_rollback(deployment.deployment_id, detail=REDEPLOY_DETAIL, actor=actor)
    return deployment


def _redeployed(ledger: Ledger, plan: RollbackPlan, run_id: str) -> bool:
    return any(
        (d.run_id, d.release_id, d.state) == (run_id, plan.target_release_id, "succeeded")
        for d in ledger.deployments(plan.bundle, plan.environment)
    )


def deployed_in_run(ledger: Ledger, bundle: str, environment: str, run_id: str) -> bool:
    """Whether the run started a deployment here: a run that never deployed has nothing to undo."""
    return any(d.run_id == run_id for d in ledger.deployments(bundle, environment))


def restore_plan_schedules(
    plan: RollbackPlan,
    source: BundleSource,
    *,
    target: str,
    api: WorkspaceApi,
    ledger: Ledger,
    checkouts: Path,
) -> list[TriggerState]:
    """The schedules as they were before the rolled-back deploy; all paused when nothing was good."""
    if plan.target_release_id is None:
        jobs = deployed_jobs(
            source, environment=plan.environment, target=target, api=api, ledger=ledger, checkouts=checkouts
        )
        return set_pause_status(api, [job.id for job in jobs], "PAUSED")
    if plan.rolled_back is None:
        return []
    return restore_schedules(api, plan.rolled_back.id, ledger)


def restore_model_alias(api: WorkspaceApi, plan: RollbackPlan, model: str, alias: str) -> str:
    """What was done, in words."""
    key = data_restores.alias_key(model, alias)
    if key not in plan.model_aliases:
        return f"{key}: no version recorded before the deploy; left as is"
    version = plan.model_aliases[key]
    changed = data_restores.move_alias(api, model, alias, version)
    target = f"version {version}" if version is not None else "no version (removed)"
    return f"{key} {'moved back to' if changed else 'already at'} {target}"


def restore_table(api: WorkspaceApi, plan: RollbackPlan, warehouse_id: str, table: str) -> str:
    if table not in plan.table_versions:
        return f"{table}: no version recorded before the deploy; left as is"
    version = plan.table_versions[table]
    restored = data_restores.restore_table(api, warehouse_id, table, version)
    return f"{table} {'restored to' if restored else 'already at'} version {version}"


def start_pipeline_refresh(
    plan: RollbackPlan,
    source: BundleSource,
    *,
    pipeline_key: str,
    tables: tuple[str, ...],
    target: str,
    run_id: str,
    api: WorkspaceApi,
    ledger: Ledger,
    checkouts: Path,
) -> data_restores.PipelineUpdate:
    """The refresh of the pipeline deployed under ``pipeline_key``: one already started since the
    code was put back, or a new one."""
    deployment = _current_deployment(ledger, plan)
    if deployment is None:
        raise RestoreFailed(f"{plan.bundle}/{plan.environment} has no deployment whose pipelines to refresh")
    pipeline_id = _pipeline_ids(source, deployment.commit, target, api, checkouts).get(pipeline_key)
    if pipeline_id is None:
        raise RestoreFailed(
            f"pipeline {pipeline_key} is not deployed in {plan.environment}; the spec's rollback.pipelines "
            "name pipelines by their key under resources.pipelines"
        )
    since = _code_restored_at(ledger, plan, run_id)
    return data_restores.pipeline_refresh(
        api, pipeline_id, tables, not_before_ms=int(since.timestamp() * 1000)
    )


def _current_deployment(ledger: Ledger, plan: RollbackPlan) -> DeploymentRecord | None:
    """The deployment the environment runs after the rollback's redeploy (or the undone one, without)."""
    deployments = ledger.deployments(plan.bundle, plan.environment)
    if plan.target_release_id is None:
        return deployments[0] if deployments else None
    return next((d for d in deployments if d.release_id == plan.target_release_id), None)


def _code_restored_at(ledger: Ledger, plan: RollbackPlan, run_id: str) -> datetime:
    redeploys = [
        d.finished_at
        for d in ledger.deployments(plan.bundle, plan.environment)
        if (d.run_id, d.release_id, d.state) == (run_id, plan.target_release_id, "succeeded")
        and d.finished_at
    ]
    if redeploys:
        return redeploys[0]
    return plan.rolled_back.started_at if plan.rolled_back else datetime.fromtimestamp(0, UTC)


def _pipeline_ids(
    source: BundleSource, commit: str, target: str, api: WorkspaceApi, checkouts: Path
) -> dict[str, str]:
    bundle = load_bundle(
        source.checkout(commit, checkouts), target, current_user=api.call("GET", "2.0/preview/scim/v2/Me")
    )
    state = read_state(api, bundle.workspace.state_path)
    prefix = "resources.pipelines."
    return {
        key.removeprefix(prefix): resource_id(entry)
        for key, entry in state.entries.items()
        if key.startswith(prefix) and key.count(".") == 2
    }


def hold(
    ledger: Ledger, plan: RollbackPlan, *, run_id: str, actor: str = SYSTEM_ACTOR
) -> EnvironmentHold | None:
    """Hold the environment after a rollback; the reason says what the rollback put back.

    A run holds once: when a person has cleared its hold, a cleared step of that run's rollback
    does not set it again (None).
    """
    current = ledger.environment_hold(plan.bundle, plan.environment)
    if current is None and ledger.held_in_run(plan.bundle, plan.environment, run_id):
        return None
    reason = f"rolled back in run {run_id}: {'; '.join(plan.describe())}"
    return ledger.hold_environment(plan.bundle, plan.environment, reason=reason, actor=actor, run_id=run_id)


def refuse_if_moved_on(ledger: Ledger, bundle: str, environment: str, run_id: str) -> None:
    """For a promotion run's own rollback: ``StaleDeployment`` once another run's deployment reached
    the workspace after this run's, since there is nothing of this run left to undo."""
    own = [d.started_at for d in ledger.deployments(bundle, environment) if d.run_id == run_id]
    current = ledger.current_deployment(bundle, environment)
    if not own or current is None or current.run_id == run_id:
        return
    if current.applied_at is not None and current.applied_at > max(own):
        raise StaleDeployment(
            f"{bundle}/{environment} runs {current.version} from run {current.run_id} since "
            f"{current.applied_at:%Y-%m-%d %H:%M} UTC, deployed after this run's: this run's rollback "
            "has nothing left to undo. Roll back with the rollback DAG if that release must go"
        )
