"""The native engine: deploys a resolved bundle through the workspace's REST API.

A deploy reads first and writes only what changed, in the CLI's order:

1. read: the deploy lock (held by someone else → `LockHeld`), the state, the file
   manifest and every job in the state, then plan;
2. when the plan changes nothing, stop: a redeploy of the same release writes nothing;
3. otherwise take the lock, upload changed files and libraries, create, update and
   delete jobs (a thread pool, jobs after the jobs whose ids they use), push the
   state and the manifest, and release the lock, also after a failure.

State and lock are the CLI's own (`state.py`, `lock.py`), so the CLI and this
engine can take turns on one target.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import posixpath
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bundle_promotion import bundle_files, job_resource, workspace_files
from bundle_promotion.bundle_config import ResolvedBundle
from bundle_promotion.bundle_files import Upload
from bundle_promotion.errors import DeployError
from bundle_promotion.job_plan import Action, JobChange, job_key, plan_jobs, state_job_keys, with_ids
from bundle_promotion.job_settings import LOCAL_LIBRARY_PREFIX, library_slots
from bundle_promotion.lock import DeployLock
from bundle_promotion.state import (
    DeploymentState,
    make_entry,
    read_state,
    resource_id,
    resource_settings,
    write_state,
)
from bundle_promotion.workspace_api import WorkspaceApi

T = TypeVar("T")
_SUPPORTED_RESOURCES = frozenset({job_resource.KIND})


@dataclass(frozen=True)
class DeployedResource:
    key: str  # "resources.jobs.etl"
    type: str  # "jobs"
    name: str
    id: str
    action: Action


@dataclass(frozen=True)
class DeployResult:
    resources: dict[str, DeployedResource]  # by key
    write_calls: int  # API calls other than GET this deploy made


@dataclass(frozen=True)
class _Plan:
    state: DeploymentState
    uploads: list[Upload]  # changed since the last deploy
    stale_files: list[str]  # uploaded last time, gone from the bundle now
    jobs: list[JobChange]
    files: dict[str, str]  # the manifest after this deploy: workspace path -> sha256

    @property
    def changes_anything(self) -> bool:
        return bool(self.uploads or self.stale_files or any(change.writes for change in self.jobs))


class NativeEngine:
    """Deploys bundles with `max_workers` concurrent API calls at most."""

    def __init__(self, api: WorkspaceApi, *, max_workers: int = 8) -> None:
        self._api = api
        self._max_workers = max_workers

    def deploy(self, bundle: ResolvedBundle) -> DeployResult:
        _check_supported(bundle)
        api = _CountingApi(self._api)
        state_path = bundle.workspace.state_path
        lock = DeployLock(api, state_path)
        uploads, desired = _local_changes(bundle)
        with ThreadPoolExecutor(self._max_workers, thread_name_prefix="bundle-deploy") as pool:
            run = _Run(api, pool, state_path)
            lock.raise_if_held()
            plan = run.plan(read_state(api, state_path), uploads, desired)
            if not plan.changes_anything:
                return DeployResult(_results(plan.jobs), api.write_calls)
            with lock.held(_deploying_user(api, bundle)):
                current = read_state(api, state_path)
                if not current.same_deployment_as(plan.state):
                    plan = run.plan(current, uploads, desired)  # someone deployed while we planned
                resources = run.apply(plan)
        return DeployResult(resources, api.write_calls)

    def deployed(self, bundle: ResolvedBundle) -> dict[str, DeployedResource]:
        """The jobs the target's state records, as last deployed (by this engine or the CLI)."""
        state = read_state(self._api, bundle.workspace.state_path)
        return {
            key: _resource(
                key, resource_settings(state.entries[key]), resource_id(state.entries[key]), "skip"
            )
            for key in state_job_keys(state)
        }


class _Run:
    """One deploy's reads and writes, spread over a thread pool."""

    def __init__(self, api: WorkspaceApi, pool: ThreadPoolExecutor, state_path: str) -> None:
        self._api = api
        self._pool = pool
        self._state_path = state_path

    def plan(
        self, state: DeploymentState, uploads: list[Upload], desired: dict[str, dict[str, Any]]
    ) -> _Plan:
        uploaded = bundle_files.read_manifest(self._api, self._state_path, state)
        files = {upload.remote: upload.digest for upload in uploads}
        known = [key for key in desired if key in state.entries]
        remote = dict(zip(known, self._each(known, lambda key: self._read_job(state, key)), strict=True))
        return _Plan(
            state=state,
            uploads=[upload for upload in uploads if uploaded.get(upload.remote) != upload.digest],
            stale_files=sorted(set(uploaded) - set(files)),
            jobs=plan_jobs(desired, state, remote),
            files=files,
        )

    def apply(self, plan: _Plan) -> dict[str, DeployedResource]:
        self._upload(plan.uploads)
        self._each(plan.stale_files, lambda path: workspace_files.delete(self._api, path))
        outcome = _JobsOutcome(plan.state)
        self._apply_jobs(plan.jobs, outcome)
        written = write_state(self._api, self._state_path, outcome.state())
        bundle_files.write_manifest(self._api, self._state_path, written, plan.files)
        if outcome.failures:
            raise DeployError("; ".join(outcome.failures))
        return outcome.resources

    def _read_job(self, state: DeploymentState, key: str) -> dict[str, Any] | None:
        return job_resource.read(self._api, resource_id(state.entries[key]))

    def _upload(self, uploads: list[Upload]) -> None:
        self._each(
            _leaf_folders(upload.remote for upload in uploads),
            lambda path: workspace_files.make_dirs(self._api, path),
        )
        self._each(uploads, lambda upload: upload.send(self._api))

    def _apply_jobs(self, changes: list[JobChange], outcome: _JobsOutcome) -> None:
        """Apply in waves: a job goes once every job whose id it uses is done."""
        waiting = {change.key: change for change in changes if change.writes}
        outcome.skipped([change for change in changes if not change.writes])
        while waiting:
            ready = [change for change in waiting.values() if not set(change.depends_on) & waiting.keys()]
            for change in ready:
                del waiting[change.key]
            futures = {
                change.key: self._pool.submit(self._apply_job, change, outcome.ids()) for change in ready
            }
            for change in ready:
                outcome.record(change, futures[change.key])

    def _apply_job(self, change: JobChange, ids: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        """Apply one change; return the job's id and the settings sent."""
        missing = [dependency for dependency in change.depends_on if dependency not in ids]
        if missing:
            raise DeployError(f"not deployed because {', '.join(missing)} failed")
        if change.action == "delete":
            job_resource.delete(self._api, str(change.id))
            return str(change.id), change.settings
        settings = with_ids(change.settings, ids)
        if change.action == "create":
            return job_resource.create(self._api, settings), settings
        job_resource.update(self._api, str(change.id), settings)
        return str(change.id), settings

    def _each(self, items: Iterable[T], work: Callable[[T], Any]) -> list[Any]:
        """`work` on every item in the pool; the first failure is raised once all are done."""
        futures = [self._pool.submit(work, item) for item in items]
        return [future.result() for future in futures]


class _JobsOutcome:
    """What applying the job changes did: the state entries, the ids, the results, the failures."""

    def __init__(self, state: DeploymentState) -> None:
        self._state = state
        self._entries = dict(state.entries)
        self._ids: dict[str, str] = {}  # of jobs left alone or deployed by this run
        self.resources: dict[str, DeployedResource] = {}
        self.failures: list[str] = []

    def ids(self) -> dict[str, str]:
        return dict(self._ids)

    def skipped(self, changes: list[JobChange]) -> None:
        for change in changes:
            self._ids[change.key] = str(change.id)
            self.resources[change.key] = _resource(change.key, change.settings, str(change.id), "skip")

    def record(self, change: JobChange, future: Future[tuple[str, dict[str, Any]]]) -> None:
        try:
            job_id, sent = future.result()
        except Exception as error:  # one job's failure must not lose what the others did
            self.failures.append(f"{change.key}: {change.action} failed: {error}")
            return
        if change.action == "delete":
            self._entries.pop(change.key, None)
        else:
            self._entries[change.key] = make_entry(job_id, sent, list(change.depends_on))
            self._ids[change.key] = job_id
        self.resources[change.key] = _resource(change.key, sent, job_id, change.action)

    def state(self) -> DeploymentState:
        return dataclasses.replace(self._state, entries=self._entries)


def _local_changes(bundle: ResolvedBundle) -> tuple[list[Upload], dict[str, dict[str, Any]]]:
    """What the bundle wants uploaded (files and built libraries) and the job settings to send."""
    excludes = bundle.config.get("sync", {}).get("exclude") or []
    uploads = bundle_files.bundle_uploads(bundle.bundle_dir, bundle.workspace.file_path, excludes)
    library_folder = f"{bundle.workspace.artifact_path}/.internal"
    libraries: dict[str, Upload] = {}
    desired = {}
    for key, job in bundle.resources.get(job_resource.KIND, {}).items():
        settings = copy.deepcopy(job)
        for slot in library_slots(settings):
            if isinstance(slot.value, str) and slot.value.startswith(LOCAL_LIBRARY_PREFIX):
                built = _built_files(bundle.bundle_dir, slot.value, f"resources.jobs.{key}.{slot.where}")
                slot.replace([_library_upload(path, library_folder, libraries).remote for path in built])
        desired[job_key(key)] = settings
    return [*uploads, *libraries.values()], desired


def _built_files(bundle_dir: Path, reference: str, where: str) -> list[Path]:
    pattern = reference[len(LOCAL_LIBRARY_PREFIX) :]
    matches = sorted(Path(path) for path in glob.glob(str(bundle_dir / pattern)) if Path(path).is_file())
    if not matches:
        raise DeployError(
            f"{where}: {reference} matches no file: the artifact was not built. Build it first "
            "(the release step builds the bundle's artifacts, e.g. `uv build --wheel`)."
        )
    return matches


def _library_upload(path: Path, folder: str, libraries: dict[str, Upload]) -> Upload:
    """The upload of a built library to `<artifact_path>/.internal/<file name>`, one per file name."""
    upload = Upload(path, f"{folder}/{path.name}", bundle_files.file_digest(path))
    known = libraries.setdefault(upload.remote, upload)
    if known.local != path:
        raise DeployError(f"two libraries are named {path.name}: {known.local} and {path}; rename one")
    return known


def _leaf_folders(paths: Iterable[str]) -> list[str]:
    """The folders to create so every path has its parent; `mkdirs` creates their ancestors."""
    folders = {posixpath.dirname(path) for path in paths}
    return sorted(
        folder for folder in folders if not any(other.startswith(folder + "/") for other in folders)
    )


def _check_supported(bundle: ResolvedBundle) -> None:
    """Refuse what the native engine does not deploy yet, rather than deploy part of a bundle."""
    unsupported = sorted(set(bundle.resources) - _SUPPORTED_RESOURCES)
    if unsupported:
        raise DeployError(
            f"{bundle.name}: the native engine deploys jobs only, not "
            f"{', '.join(f'resources.{kind}' for kind in unsupported)}; use the CLI engine"
        )
    with_permissions = [key for key, job in bundle.resources.get("jobs", {}).items() if "permissions" in job]
    if bundle.config.get("permissions") or with_permissions:
        raise DeployError(f"{bundle.name}: permissions are not supported by the native engine yet")
    sync = bundle.config.get("sync", {})
    if sync.get("include") or sync.get("paths", ["."]) != ["."]:
        raise DeployError(
            f"{bundle.name}: sync.include and sync.paths are not supported by the native engine yet"
        )


def _deploying_user(api: WorkspaceApi, bundle: ResolvedBundle) -> str:
    """Who takes the lock: the user the bundle was resolved for, or who the API says we are."""
    user = bundle.config["workspace"].get("current_user") or api.call("GET", "2.0/preview/scim/v2/Me")
    return str(user.get("userName", "unknown"))


def _resource(key: str, settings: Mapping[str, Any], resource_id: str, action: Action) -> DeployedResource:
    return DeployedResource(key, key.split(".")[1], str(settings.get("name", "")), resource_id, action)


def _results(changes: list[JobChange]) -> dict[str, DeployedResource]:
    return {
        change.key: _resource(change.key, change.settings, str(change.id), change.action)
        for change in changes
    }


class _CountingApi:
    """Counts the calls that may write (anything but GET), for the no-op redeploy budget."""

    def __init__(self, api: WorkspaceApi) -> None:
        self._api = api
        self._lock = threading.Lock()
        self.write_calls = 0

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if method.upper() != "GET":
            with self._lock:
                self.write_calls += 1
        return self._api.call(method, path, body=body, query=query)
