"""The steps of a promotion run, free of Airflow. Each task of the promotion DAG calls one.

Every step takes plain inputs and the ledger, and is safe to run again: a retried
or cleared task converges on the same release, the same jobs and the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle_promotion.bundle_config import ResolvedBundle, load_bundle
from bundle_promotion.engine import NativeEngine
from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger import Ledger
from bundle_promotion.release import (
    ArtifactStore,
    Release,
    build_artifacts,
    checkout,
    config_digest,
    resolve_version,
)
from bundle_promotion.schedules import SchedulePolicy, TriggerState, desired_status, set_pause_status
from bundle_promotion.workspace_api import WorkspaceApi


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

    def to_xcom(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "jobs": {key: {"id": job.id, "name": job.name} for key, job in self.jobs.items()},
        }

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> EnvironmentDeployment:
        jobs = {key: DeployedJob(key, job["id"], job["name"]) for key, job in value["jobs"].items()}
        return cls(deployment_id=int(value["deployment_id"]), jobs=jobs)


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

    Every target is resolved before anything is built, so a bundle that cannot deploy to one of
    the environments fails here, before the first environment is touched.
    """
    commit = resolve_version(source.repo, version)
    bundle_dir = source.checkout(commit, checkouts)
    bundles = [load_bundle(bundle_dir, target) for target in targets]
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
) -> EnvironmentDeployment:
    """Deploy the release's exact files and artifacts to ``target``, and record the deployment."""
    release = ledger.release(release_id)
    bundle_dir = source.checkout(release.commit, checkouts)
    store.fetch(release.digest, release.artifacts, bundle_dir)
    me = api.call("GET", "2.0/preview/scim/v2/Me")
    bundle = load_bundle(bundle_dir, target, current_user=me)
    deployment_id = ledger.start_deployment(
        bundle=source.bundle, environment=environment, target=target, release_id=release_id, run_id=run_id
    )
    try:
        result = NativeEngine(api).deploy(bundle)
    except Exception as error:
        ledger.finish_deployment(deployment_id, "failed", detail=str(error))
        raise
    jobs = {
        resource.key.rsplit(".", 1)[-1]: DeployedJob(
            resource.key.rsplit(".", 1)[-1], resource.id, resource.name
        )
        for resource in result.resources.values()
        if resource.type == "jobs" and resource.action != "delete"
    }
    return EnvironmentDeployment(deployment_id=deployment_id, jobs=jobs)


def apply_schedule_policy(
    api: WorkspaceApi, deployment: EnvironmentDeployment, policy: SchedulePolicy
) -> list[TriggerState]:
    job_ids = [job.id for job in deployment.jobs.values()]
    return set_pause_status(api, job_ids, desired_status(policy))
