"""The steps of a promotion run, free of Airflow. Each task of the promotion DAG calls one.

Every step takes plain inputs and the ledger, and is safe to run again: a retried
or cleared task converges on the same release, the same jobs and the same record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.load import ArtifactConfig, ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import DeployedResource, Engine, NativeEngine
from bundle_promotion.bundle.deploy.lock import LockOwner
from bundle_promotion.errors import LockHeld, ReleaseError
from bundle_promotion.ledger import SYSTEM_ACTOR, Ledger
from bundle_promotion.ledger.evidence import chain_head
from bundle_promotion.ledger.records import PauseStatus, Release, TriggerState
from bundle_promotion.lifecycle.holds import refuse_if_held
from bundle_promotion.lifecycle.schedules import (
    BundleResource,
    ResourceKind,
    SchedulePolicy,
    desired_status,
    restore,
    set_pause_status,
    set_pipeline_status,
    snapshot,
)
from bundle_promotion.release.build import build_artifacts, config_digest
from bundle_promotion.release.git import checkout, private_copy, resolve_version
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.workspace.api import WorkspaceApi

# Who deploys, as `scim/v2/Me` would answer, while a release is checked offline.
_STAND_IN_USER = {"userName": "release-check@bundle-promotion.invalid"}
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

    @contextmanager
    def build_copy(self, commit: str, checkouts: Path) -> Iterator[Path]:
        """The bundle's folder in a private copy of the checkout, for one release's build."""
        with private_copy(checkout(self.repo, commit, checkouts)) as tree:
            yield (tree / self.path).resolve()


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
    root_path: str = ""  # the target's folder in the workspace

    def to_xcom(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "jobs": {key: {"id": job.id, "name": job.name} for key, job in self.jobs.items()},
            "continuous_pipelines": list(self.continuous_pipelines),
            "pipelines": dict(self.pipelines),
            "root_path": self.root_path,
        }

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> EnvironmentDeployment:
        jobs = {key: DeployedJob(key, job["id"], job["name"]) for key, job in value["jobs"].items()}
        return cls(
            deployment_id=int(value["deployment_id"]),
            jobs=jobs,
            continuous_pipelines=tuple(value.get("continuous_pipelines", ())),
            pipelines=dict(value.get("pipelines", {})),  # absent from XCom written before this field
            root_path=str(value.get("root_path", "")),  # likewise
        )


def cut_release(
    source: BundleSource,
    version: str,
    *,
    targets: Sequence[str],
    test_jobs: Sequence[str],
    ledger: Ledger,
    store: ArtifactStore,
    checkouts: Path,
) -> int:
    """Resolve ``version``, check the bundle at that commit, build its artifacts once; returns the release id.

    Every target is resolved before anything is built, without asking any workspace, so a
    bundle that cannot deploy to one of the environments (a config that does not resolve, a
    test job it lacks) fails here, before the first environment is touched, while one
    workspace's outage blocks no promotion to the others. What only a workspace knows (the
    deploying user, the ids of ``lookup`` variables) takes stand-ins here; each deploy
    resolves its target again, as the user behind its own connection.
    """
    commit = resolve_version(source.repo, version)
    bundle_dir = source.checkout(commit, checkouts)
    bundles = [
        load_bundle(bundle_dir, target, current_user=_STAND_IN_USER, lookup=_stand_in_lookup)
        for target in targets
    ]
    _require_test_jobs(bundles, test_jobs, version)
    if recorded := ledger.release_by_version(source.bundle, version):
        release_id, release = recorded
        if release.commit == commit:
            return release_id
    # Built in a copy of the shared checkout: concurrent releases of one commit must not wipe
    # each other's output.
    with source.build_copy(commit, checkouts) as build_dir:
        specs = [_moved(spec, bundles[0].bundle_dir, build_dir) for spec in bundles[0].artifacts.values()]
        release = Release(
            bundle=source.bundle,
            version=version,
            commit=commit,
            artifacts=tuple(build_artifacts(build_dir, specs)),
            config_digest=config_digest(bundle_dir),
        )
        store.put(release.digest, build_dir, release.artifacts)
    release_id = ledger.record_release(release)
    if head := chain_head(ledger):
        store.witness_audit_head(head)  # once per release: truncation after it cannot go unseen
    return release_id


def _stand_in_lookup(kind: str, name: str) -> str:
    """A ``lookup`` variable's id, unknown until the deploy asks the workspace."""
    return f"<the id of {kind} {name!r}, looked up at deploy>"


def _moved(artifact: ArtifactConfig, bundle_dir: Path, build_dir: Path) -> ArtifactConfig:
    """The artifact built in ``build_dir``, a copy of ``bundle_dir``."""
    if not artifact.path.is_relative_to(bundle_dir):
        return artifact  # outside the bundle: build_artifacts refuses it by name
    return replace(artifact, path=build_dir / artifact.path.relative_to(bundle_dir))


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
    owner: LockOwner | None = None,
    force_lock: bool = False,
    actor: str = SYSTEM_ACTOR,
) -> EnvironmentDeployment:
    """Deploy the release's exact files and artifacts to ``target``, and record the deployment.

    ``engine`` deploys (the spec's ``engine: native | cli``); the native engine over ``api`` by default.
    ``owner`` is the task deploying: a retry of it resumes the deploy lock a killed try left.
    ``force_lock`` breaks another deployment's lock, an act the audit trail records with ``actor``.
    A lock another deployment holds is recorded in the ledger as the one this run waits on
    (``Ledger.wait_for_lock``), until a later try gets it or ends otherwise.
    A held environment is refused, except by the redeploy of the rollback (``rolling_back``) whose
    run set the hold.

    The schedules' states before the deploy go to the ledger first. A deploy resets every
    ``pause_status`` to the bundle's config, so right after it every trigger is paused again:
    nothing runs until the release is verified, tested and the environment's policy applied.
    A failed deploy puts the states found before it back.
    """
    with _lock_wait_recorded(ledger, source.bundle, environment, run_id):
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
            result = engine.deploy(bundle, force_lock=force_lock, owner=owner)
        except Exception as error:
            restore(api, before)
            ledger.finish_deployment(deployment_id, "failed", detail=str(error))
            raise
        ledger.mark_applied(deployment_id)
        if result.broken_lock is not None:
            ledger.record_event(
                actor=actor,
                action="deploy_lock.broken",
                subject=f"{source.bundle}/{environment}",
                reason="force_lock" if force_lock else "taken over from an ended task of the same run",
                details={"state_path": bundle.workspace.state_path, "lock": result.broken_lock},
            )
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
            deployment_id=deployment_id,
            jobs=jobs,
            continuous_pipelines=continuous,
            pipelines=pipelines,
            root_path=bundle.workspace.root_path,
        )


@contextmanager
def _lock_wait_recorded(ledger: Ledger, bundle: str, environment: str, run_id: str) -> Iterator[None]:
    """Record the lock the deploy finds another deployment holding, which it will wait on; else the
    deploy got the lock, or ended for any other reason, and waits no more."""
    waits = False
    try:
        yield
    except LockHeld as held:
        if held.path is not None:  # the CLI engine's lock has no path to wait on
            ledger.wait_for_lock(bundle, environment, run_id=run_id, lock_path=held.path, holder=held.holder)
            waits = True
        raise
    finally:
        if not waits:
            ledger.end_lock_wait(bundle, environment, run_id=run_id)


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
) -> list[BundleResource]:
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
) -> list[BundleResource]:
    """The bundle's jobs and pipelines in the environment as its last deployment left them, with tags."""
    deployments = ledger.deployments(source.bundle, environment)
    if not deployments:
        return []
    engine = NativeEngine(api)
    bundle = engine.load(source.checkout(deployments[0].commit, checkouts), target)
    return [
        BundleResource(
            key,
            resource.id,
            resource.name,
            dict(bundle.resources.get(resource.type, {}).get(key, {}).get("tags") or {}),
            kind=_RESOURCE_KINDS[resource.type],
        )
        for resource in engine.deployed(bundle).values()
        for key in [resource.key.rsplit(".", 1)[-1]]
    ]
