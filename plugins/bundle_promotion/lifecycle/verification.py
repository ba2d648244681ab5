"""Installation verification: the environment holds exactly what the release says it should.

For every job of the bundle's resolved config it checks, against the workspace:

- the job exists, with the expected name, tags, ``run_as`` and libraries;
- every trigger has the expected pause state;
- each of the release's artifacts was uploaded with its exact bytes (read back and hashed).

For every pipeline, that it exists with the expected name, tags and libraries, and runs
continuously only when its config says so and triggers are to be unpaused (pipelines take
their ``run_as`` from the deploying user, so there is none to check).

Every mismatch is reported, field by field, rather than only the first.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.job_settings import LOCAL_LIBRARY_PREFIX, library_slots
from bundle_promotion.bundle.config.load import ResolvedBundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.bundle.resources import jobs as job_resource
from bundle_promotion.bundle.resources import pipelines as pipeline_resource
from bundle_promotion.errors import VerificationFailed
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Artifact, PauseStatus
from bundle_promotion.lifecycle.schedules import triggers_of
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

# Where the engine uploads built libraries, under the target's artifact path.
LIBRARY_FOLDER = ".internal"


@dataclass(frozen=True)
class Mismatch:
    """One field of one resource that differs from what the release deployed."""

    resource: str  # e.g. "resources.jobs.etl", or the artifact's workspace path
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.resource}: {self.field} is {self.actual!r}, expected {self.expected!r}"


def verify_installation(
    api: WorkspaceApi,
    bundle: ResolvedBundle,
    job_ids: Mapping[str, str],
    artifacts: Sequence[Artifact],
    *,
    pause_status: PauseStatus,
    pipeline_ids: Mapping[str, str] | None = None,
) -> list[Mismatch]:
    """Every difference between the workspace and the release; empty when the installation is exact.

    ``job_ids`` and ``pipeline_ids`` are the deployed jobs and pipelines by bundle key;
    ``pause_status`` is what every trigger should show at this point of the promotion.
    """
    library_folder = f"{bundle.workspace.artifact_path}/{LIBRARY_FOLDER}"
    mismatches: list[Mismatch] = []
    for key, expected in bundle.resources.get("jobs", {}).items():
        resource = f"resources.jobs.{key}"
        job_id = job_ids.get(key, "")
        actual = job_resource.read(api, job_id) if job_id else None
        if actual is None:
            mismatches.append(Mismatch(resource, "job_id", job_id or "a deployed job", None))
            continue
        wanted_libraries = _deployed_libraries(expected, artifacts, library_folder)
        found = _job_mismatches(resource, expected, actual, wanted_libraries, job_id, pause_status)
        mismatches += [mismatch for mismatch in found if mismatch is not None]
    mismatches += _pipelines_mismatches(api, bundle, pipeline_ids or {}, pause_status)
    for artifact in artifacts:
        if (mismatch := artifact_mismatch(api, library_folder, artifact)) is not None:
            mismatches.append(mismatch)
    return mismatches


def verify_release(
    api: WorkspaceApi,
    ledger: Ledger,
    *,
    bundle_dir: Path,
    target: str,
    release_id: int,
    job_ids: Mapping[str, str],
    pipeline_ids: Mapping[str, str],
    pause_status: PauseStatus,
) -> None:
    """Raise ``VerificationFailed`` listing every mismatch of the release's installation in ``target``."""
    release = ledger.release(release_id)
    bundle = NativeEngine(api).load(bundle_dir, target)
    mismatches = verify_installation(
        api, bundle, job_ids, release.artifacts, pause_status=pause_status, pipeline_ids=pipeline_ids
    )
    if mismatches:
        raise VerificationFailed(f"{release.bundle} {release.version} in target {target}", mismatches)


def _job_mismatches(
    resource: str,
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    libraries: list[str],
    job_id: str,
    pause_status: PauseStatus,
) -> Iterable[Mismatch | None]:
    yield _differs(resource, "name", expected.get("name"), actual.get("name"))
    yield _differs(resource, "tags", dict(expected.get("tags") or {}), dict(actual.get("tags") or {}))
    if "run_as" in expected:
        yield _differs(resource, "run_as", expected["run_as"], actual.get("run_as"))
    yield _differs(resource, "libraries", libraries, sorted(_libraries(actual)))
    for trigger in triggers_of(job_id, actual):
        yield _differs(resource, f"{trigger.field}.pause_status", pause_status, trigger.pause_status)


def _pipelines_mismatches(
    api: WorkspaceApi, bundle: ResolvedBundle, pipeline_ids: Mapping[str, str], pause_status: PauseStatus
) -> list[Mismatch]:
    mismatches: list[Mismatch] = []
    for key, expected in bundle.resources.get("pipelines", {}).items():
        resource = f"resources.pipelines.{key}"
        pipeline_id = pipeline_ids.get(key, "")
        actual = pipeline_resource.read(api, pipeline_id) if pipeline_id else None
        if actual is None:
            mismatches.append(Mismatch(resource, "pipeline_id", pipeline_id or "a deployed pipeline", None))
            continue
        found = _pipeline_mismatches(resource, expected, actual, pause_status)
        mismatches += [mismatch for mismatch in found if mismatch is not None]
    return mismatches


def _pipeline_mismatches(
    resource: str, expected: Mapping[str, Any], actual: Mapping[str, Any], pause_status: PauseStatus
) -> Iterable[Mismatch | None]:
    yield _differs(resource, "name", expected.get("name"), actual.get("name"))
    yield _differs(resource, "tags", dict(expected.get("tags") or {}), dict(actual.get("tags") or {}))
    yield _differs(resource, "libraries", expected.get("libraries") or [], actual.get("libraries") or [])
    # `continuous` is a pipeline's one trigger: the deploy step stops it until the policy says unpaused.
    runs_continuously = bool(expected.get("continuous")) and pause_status == "UNPAUSED"
    yield _differs(resource, "continuous", runs_continuously, bool(actual.get("continuous")))


def _differs(resource: str, field: str, expected: Any, actual: Any) -> Mismatch | None:
    return Mismatch(resource, field, expected, actual) if expected != actual else None


def _libraries(job: Mapping[str, Any]) -> list[str]:
    """Every wheel, jar and environment dependency the job names."""
    return [str(slot.value) for slot in library_slots(dict(job))]


def _deployed_libraries(
    job: Mapping[str, Any], artifacts: Sequence[Artifact], library_folder: str
) -> list[str]:
    """The job's libraries as the engine deploys them: local paths become the uploaded artifacts."""
    deployed: list[str] = []
    for reference in _libraries(job):
        if reference.startswith(LOCAL_LIBRARY_PREFIX):
            pattern = reference[len(LOCAL_LIBRARY_PREFIX) :]
            built = [a for a in artifacts if fnmatch.fnmatchcase(a.relative_path, pattern)]
            deployed += [f"{library_folder}/{artifact.name}" for artifact in built]
        else:
            deployed.append(reference)
    return sorted(deployed)


def artifact_mismatch(api: WorkspaceApi, library_folder: str, artifact: Artifact) -> Mismatch | None:
    """The artifact as uploaded under ``library_folder``, read back and hashed; None when its bytes match."""
    path = f"{library_folder}/{artifact.name}"
    content = workspace_files.read_bytes(api, path)
    actual = hashlib.sha256(content).hexdigest() if content is not None else None
    return _differs(path, "sha256", artifact.sha256, actual)
