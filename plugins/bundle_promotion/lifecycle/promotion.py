"""The steps of a promotion run, free of Airflow. Each task of the promotion DAG calls one.

Every step takes plain inputs and the ledger, and is safe to run again: a retried
or cleared task converges on the same release, the same jobs and the same record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import DeployedResource, Engine, NativeEngine
from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import PauseStatus, Release, TriggerState
from bundle_promotion.lifecycle.holds import refuse_if_held
from bundle_promotion.lifecycle.schedules import (
    BundleJob,
    ResourceKind,
    SchedulePolicy,
    desired_status,
    restore,
    set_pause_status,
    set_pipeline_status,
    snapshot,
)
from bundle_promotion.release.build import build_artifacts, config_digest
from bundle_promotion.release.git import checkout, resolve_version
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.workspace.api import WorkspaceApi

# The kinds of the bundle's config (`resources.<kind>`) that schedules know.
_RESOURCE_KINDS: dict[str, ResourceKind] = {"jobs": "job", "pipelines": "pipeline"}


@dataclass(frozen=True)
class BundleSource:
    """Where a bundle lives: a git repository and the bundle's folder inside it."""

    bundle: str
    repo: str
    path: str = "."

    def checkout(self, commit: str, checkouts: Path) -> Path:
        return checkout(self.repo, commit, checkouts) / self.path


@dataclass(frozen=True)
class DeployedJob:
    key: str
    id: str
    name: str


@dataclass(frozen=True)
class EnvironmentDeployment:
    """What a deploy step hands to the rest of its environment (small enough for XCom)."""

    deployment_id: int
    jobs: dict[str, DeployedJob]
    continuous_pipelines: tuple[str, ...] = ()  # ids of the pipelines the config runs continuously
    pipelines: dict[str, str] = field(default_factory=dict)  # every deployed pipeline's id by key

    def to_xcom(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "jobs": {key: {"id": job.id, "name": job.name} for key, job in self.jobs.items()},
            "continuous_pipelines": list(self.continuous_pipelines),
            "pipelines": dict(self.pipelines),
        }

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> EnvironmentDeployment:
        jobs = {key: DeployedJob(key, job["id"], job["name"]) for key, job in value["jobs"].items()}
        return cls(
            deployment_id=int(value["deployment_id"]),
            jobs=jobs,
            continuous_pipelines=tuple(value.get("continuous_pipelines", ())),
            pipelines=dict(value.get("pipelines", {})),  # absent from XCom written before this field
        )


def cut_release(
    source: BundleSource,
    version: str,
    *,
    targets: Sequence[tuple[str, Mapping[str, Any]]],
    test_jobs: Sequence[str],
    ledger: Ledger,
    store: ArtifactStore,
    checkouts: Path,
) -> int:
    """Resolve ``version``, check the bundle at that commit, build its artifacts once; returns the release id.

    ``targets`` pairs every environment's target with the user its connection deploys as (the
    answer of ``scim/v2/Me``), since a target's paths and names may depend on that user. Every
    target is resolved before anything is built, so a bundle that cannot deploy to one of the
    environments fails here, before the first environment is touched.
    """
    commit = resolve_version(source.repo, version)
    bundle_dir = source.checkout(commit, checkouts)
    bundles = [load_bundle(bundle_dir, target, current_user=user) for target, user in targets]
    _require_test_jobs(bundles, test_jobs, version)
    if recorded := ledger.release_by_version(source.bundle, version):
        release_id, release = recorded
        if release.commit == commit:
            return release_id
    artifacts = build_artifacts(bundle_dir, bundles[0].artifacts.values())
    release = Release(
        bundle=source.bundle,
        version=version,
        commit=commit,
        artifacts=tuple(artifacts),
        config_digest=config_digest(bundle_dir),
    )
    store.put(release.digest, bundle_dir, release.artifacts)
    return ledger.record_release(release)


def _require_test_jobs(bundles: Sequence[ResolvedBundle], test_jobs: Sequence[str], version: str) -> None:
    for bundle in bundles:
        missing = sorted(set(test_jobs) - set(bundle.resources.get("jobs", {})))
        if missing:
            raise ReleaseError(
                f"{version}: target {bundle.target} of bundle {bundle.name} has no job "
                f"{', '.join(missing)}; the spec's tests name jobs by their key under resources.jobs"
            )


def deploy_release(
    source: BundleSource,
    release_id: int,
    *,
    environment: str,
    target: str,
    run_id: str,
    api: WorkspaceApi,
    ledger: Ledger,
    store: ArtifactStore,
    checkouts: Path,
    engine: Engine | None = None,
    rolling_back: bool = False,
) -> EnvironmentDeployment:
    """Deploy the release's exact files and artifacts to ``target``, and record the deployment.

    ``engine`` deploys (the spec's ``engine: native | cli``); the native engine over ``api`` by default.
    A held environment is refused, except by the redeploy of the rollback (``rolling_back``) whose
    run set the hold.

    The schedules' states before the deploy go to the ledger first. A deploy resets every
    ``pause_status`` to the bundle's config, so right after it every trigger is paused again:
    nothing runs until the release is verified, tested and the environment's policy applied.
    A failed deploy puts the states found before it back.
    """
    refuse_if_held(ledger, source.bundle, environment, rollback_run=run_id if rolling_back else None)
    release = ledger.release(release_id)
    bundle_dir = source.checkout(release.commit, checkouts)
    store.fetch(release.digest, release.artifacts, bundle_dir)
    engine = engine or NativeEngine(api)
    bundle = engine.load(bundle_dir, target)
    deployment_id = ledger.start_deployment(
        bundle=source.bundle, environment=environment, target=target, release_id=release_id, run_id=run_id
    )
    deployed = engine.deployed(bundle).values()
    found = snapshot(
        api,
        [resource.id for resource in deployed if resource.type == "jobs"],
        pipeline_ids=[resource.id for resource in deployed if resource.type == "pipelines"],
    )
    before = ledger.record_schedule_snapshot(deployment_id, found)
    try:
        result = engine.deploy(bundle)
    except Exception as error:
        restore(api, before)
        ledger.finish_deployment(deployment_id, "failed", detail=str(error))
        raise
    ledger.mark_applied(deployment_id)
    jobs = {
        resource.key.rsplit(".", 1)[-1]: DeployedJob(
            resource.key.rsplit(".", 1)[-1], resource.id, resource.name
        )
        for resource in result.resources.values()
        if resource.type == "jobs" and resource.action != "delete"
    }
    pipelines = {
        resource.key.rsplit(".", 1)[-1]: resource.id
        for resource in result.resources.values()
        if resource.type == "pipelines" and resource.action != "delete"
    }
    continuous = _continuous_pipelines(bundle, result.resources.values())
    set_pause_status(api, [job.id for job in jobs.values()], "PAUSED")
    set_pipeline_status(api, continuous, "PAUSED")
    return EnvironmentDeployment(
        deployment_id=deployment_id, jobs=jobs, continuous_pipelines=continuous, pipelines=pipelines
    )


def _continuous_pipelines(bundle: ResolvedBundle, deployed: Iterable[DeployedResource]) -> tuple[str, ...]:
    configured = bundle.resources.get("pipelines", {})
    return tuple(
        resource.id
        for resource in deployed
        if resource.type == "pipelines"
        and resource.action != "delete"
        and configured.get(resource.key.rsplit(".", 1)[-1], {}).get("continuous")
    )


def apply_schedule_policy(
    api: WorkspaceApi,
    deployment: EnvironmentDeployment,
    policy: SchedulePolicy,
    *,
    hold_in_force: bool,
) -> list[TriggerState]:
    """The environment's policy, unless a maintenance hold is in force: then everything stays paused.

    A pipeline counts only if its config runs it continuously: unpaused, it runs continuously again.
    """
    status: PauseStatus = "PAUSED" if hold_in_force else desired_status(policy)
    job_ids = [job.id for job in deployment.jobs.values()]
    return [
        *set_pause_status(api, job_ids, status),
        *set_pipeline_status(api, deployment.continuous_pipelines, status),
    ]


def restore_schedules(api: WorkspaceApi, deployment_id: int, ledger: Ledger) -> list[TriggerState]:
    """Put back the trigger states the deployment found; jobs it created stay paused."""
    before = ledger.schedule_snapshot(deployment_id)
    return restore(api, before) if before is not None else []


def deployed_jobs(
    source: BundleSource,
    *,
    environment: str,
    target: str,
    api: WorkspaceApi,
    ledger: Ledger,
    checkouts: Path,
) -> list[BundleJob]:
    """The bundle's jobs in the environment, as its last deployment left them, with their tags."""
    resources = deployed_resources(
        source, environment=environment, target=target, api=api, ledger=ledger, checkouts=checkouts
    )
    return [resource for resource in resources if resource.kind == "job"]


def deployed_resources(
    source: BundleSource,
    *,
    environment: str,
    target: str,
    api: WorkspaceApi,
    ledger: Ledger,
    checkouts: Path,
) -> list[BundleJob]:
    """The bundle's jobs and pipelines in the environment as its last deployment left them, with tags."""
    deployments = ledger.deployments(source.bundle, environment)
    if not deployments:
        return []
    engine = NativeEngine(api)
    bundle = engine.load(source.checkout(deployments[0].commit, checkouts), target)
    return [
        BundleJob(
            key,
            resource.id,
            resource.name,
            dict(bundle.resources.get(resource.type, {}).get(key, {}).get("tags") or {}),
            kind=_RESOURCE_KINDS[resource.type],
        )
        for resource in engine.deployed(bundle).values()
        for key in [resource.key.rsplit(".", 1)[-1]]
    ]
