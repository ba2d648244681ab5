"""The native engine: deploys a resolved bundle through the workspace's REST API.

A deploy reads first and writes only what changed, in the CLI's order:

1. read: the deploy lock (held by someone else → `LockHeld`, unless forced; held by
   this deploy's own owner → an earlier try of it was killed, and this one resumes),
   the state, the file manifest and every resource in the state, then plan (`plan.py`);
2. when the plan changes nothing and no lock is left to release, stop: a redeploy of
   the same release writes nothing;
3. otherwise take the lock, upload changed files and libraries, create, update,
   recreate and delete jobs, pipelines and permissions (a thread pool, each resource
   after the resources whose ids it uses), push the state and the manifest, and
   release the lock, also after a failure.

Creates are not idempotent, so none is ever sent twice blindly. Every job and pipeline
a bundle deploys carries its deployment's marker (`deployment.metadata_file_path`,
under the state path). Before a create, the engine looks for a resource of that name
and marker that the state does not record, one an interrupted deploy created, and
adopts it. A create whose answer is lost (a timeout, a dropped connection, a 5xx) is
looked up the same way until `unknown_outcome_grace` runs out, and then fails that
resource only: the next deploy adopts it if the workspace did create it. The other kinds
(schemas, clusters, ...) carry no marker: their creates are noted beside the state first
(`pending-creates.json`), and a lost answer is found by name, so the same holds for them.

State and lock are the CLI's own (`state.py`, `lock.py`), so the CLI and this
engine can take turns on one target.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import posixpath
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bundle_promotion.bundle.config.job_settings import LOCAL_LIBRARY_PREFIX, deployment_marker, library_slots
from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy import files as bundle_files
from bundle_promotion.bundle.deploy.files import Upload
from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.bundle.deploy.plan import (
    Action,
    Change,
    ResourceKind,
    kind_of,
    managed_keys,
    plan_resources,
    with_ids,
)
from bundle_promotion.bundle.deploy.state import (
    STATE_FILE,
    DeploymentState,
    StateCache,
    local_state_folder,
    make_entry,
    pull_state,
    push_state,
    resource_id,
    resource_settings,
)
from bundle_promotion.bundle.resources import grants as grants_resource
from bundle_promotion.bundle.resources import jobs as job_resource
from bundle_promotion.bundle.resources import permissions as permissions_resource
from bundle_promotion.bundle.resources import pipelines as pipeline_resource
from bundle_promotion.bundle.resources import secret_acls as secret_acls_resource
from bundle_promotion.bundle.resources.kinds import REST_KINDS
from bundle_promotion.bundle.resources.rest import RestKind
from bundle_promotion.errors import DeployError, WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

T = TypeVar("T")
_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
# Beside the state: the keys a deploy is creating whose kinds carry no deployment marker.
PENDING_CREATES_FILE = "pending-creates.json"


def _rest_kind(kind: RestKind) -> ResourceKind:
    return ResourceKind(
        kind.name,
        kind.read_one,
        kind.create_one,
        kind.update_one,
        kind.delete_one,
        recreate_on=kind.recreate_on,
        url=kind.page if kind.url else None,
        find_created=kind.find_created if kind.findable else None,
        ignore_remote=(*kind.not_sent, *kind.ignore_remote),
        updatable=kind.update is not None,
        caseless=kind.caseless,
    )


def _inner_kind(module: Any) -> ResourceKind:
    """Permissions, grants and ACLs: resources inside another, applied once it exists."""
    return ResourceKind(module.KIND, module.read, module.create, module.update, module.delete)


KINDS: dict[str, ResourceKind] = {
    job_resource.KIND: ResourceKind(
        job_resource.KIND,
        job_resource.read,
        job_resource.create,
        job_resource.update,
        job_resource.delete,
        url=job_resource.url,
        find=job_resource.find,
    ),
    pipeline_resource.KIND: ResourceKind(
        pipeline_resource.KIND,
        pipeline_resource.read,
        pipeline_resource.create,
        pipeline_resource.update,
        pipeline_resource.delete,
        recreate_on=pipeline_resource.RECREATE_ON,
        url=pipeline_resource.url,
        find=pipeline_resource.find,
    ),
    **{kind.name: _rest_kind(kind) for kind in REST_KINDS},
    **{
        module.KIND: _inner_kind(module)
        for module in (permissions_resource, grants_resource, secret_acls_resource)
    },
}
# Kinds of the config's `resources`; permissions, grants and ACLs come from inside them.
DEPLOYED_KINDS = (job_resource.KIND, pipeline_resource.KIND, *(kind.name for kind in REST_KINDS))


@dataclass(frozen=True)
class DeployedResource:
    key: str  # "resources.jobs.etl"
    type: str  # "jobs", "pipelines", "permissions"
    name: str
    id: str
    action: Action


@dataclass(frozen=True)
class DeployResult:
    resources: dict[str, DeployedResource]  # by key
    write_calls: int | None  # API calls other than GET this deploy made; None where not counted (CLI)
    broken_lock: dict[str, Any] | None = None  # another's lock this deploy broke (forced, or its own run's)


@dataclass(frozen=True)
class BundlePlan:
    """What a deploy would do now, read-only: uploads, deletions of files, and resource changes."""

    state: DeploymentState
    uploads: list[Upload]  # changed since the last deploy
    stale_files: list[str]  # uploaded last time, gone from the bundle now
    changes: list[Change]
    files: dict[str, str]  # the manifest after this deploy: workspace path -> sha256

    @property
    def changes_anything(self) -> bool:
        return bool(self.uploads or self.stale_files or any(change.writes for change in self.changes))


class Engine(Protocol):
    """What a promotion needs of an engine; `NativeEngine` and `cli_engine.CliEngine` provide it."""

    def load(self, bundle_dir: Path, target: str) -> ResolvedBundle: ...
    def deploy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult: ...
    def destroy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult: ...
    def deployed(self, bundle: ResolvedBundle) -> dict[str, DeployedResource]: ...


class NativeEngine:
    """Deploys bundles with `max_workers` concurrent API calls at most."""

    def __init__(
        self,
        api: WorkspaceApi,
        *,
        max_workers: int = 8,
        variables: Mapping[str, str] | None = None,
        state_cache: StateCache | None = None,
        unknown_outcome_grace: float = 30.0,
    ) -> None:
        """`state_cache` keeps the local state copies by workspace host and state path; without it
        they go to the bundle's own `.databricks/bundle/<target>`, as the CLI keeps them. Give one
        when one checkout deploys to several workspaces. `unknown_outcome_grace` is how many
        seconds a create whose answer was lost is looked for before it fails.
        """
        self._api = api
        self._max_workers = max_workers
        self._variables = dict(variables or {})  # as `--var name=value`
        self._state_cache = state_cache
        self._unknown_outcome_grace = unknown_outcome_grace

    def load(self, bundle_dir: Path, target: str) -> ResolvedBundle:
        """Resolve the bundle for the workspace's current user, with lookups asked of the workspace."""
        from bundle_promotion.bundle.config.lookup import api_lookup

        me = self._api.call("GET", "2.0/preview/scim/v2/Me")
        return load_bundle(bundle_dir, target, self._variables, current_user=me, lookup=api_lookup(self._api))

    def plan(self, bundle: ResolvedBundle) -> BundlePlan:
        """What `deploy` would change, against the state and the server as they are now; writes nothing."""
        _check_supported(bundle)
        with self._run(self._api, bundle) as run:
            return run.plan(self._pull(self._api, bundle), *_local_changes(bundle))

    def deploy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult:
        """Deploy `bundle`. `owner` names the task deploying: its retries, on any worker, resume its lock.

        A lock found at the start is released at the end, also when nothing else changes: the
        owner's own lock left by a killed try, or another deployment's when `force_lock` breaks it
        (reported as `broken_lock`).
        """
        _check_supported(bundle)
        api = _CountingApi(self._api)
        lock = _lock(api, bundle, force_lock, owner)
        uploads, desired = _local_changes(bundle)
        with self._run(api, bundle) as run:
            found = lock.holder() if lock else None
            if lock:
                lock.refuse_if_held(found)
            plan = run.plan(self._pull(api, bundle), uploads, desired)
            if not plan.changes_anything and found is None:
                return DeployResult(_results(plan.changes), api.write_calls)
            with lock.held(_deploying_user(api, bundle)) if lock else nullcontext():
                current = self._pull(api, bundle)
                if not current.same_deployment_as(plan.state):
                    plan = run.plan(current, uploads, desired)  # someone deployed while we planned
                resources = run.apply(plan) if plan.changes_anything else _results(plan.changes)
        return DeployResult(resources, api.write_calls, broken_lock=_broken(lock, found))

    def destroy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult:
        """Delete every resource the state records, then the target's folder, as `bundle destroy` does."""
        api = _CountingApi(self._api)
        lock = _lock(api, bundle, force_lock, owner)
        with (
            self._run(api, bundle) as run,
            lock.held(_deploying_user(api, bundle)) if lock else nullcontext(),
        ):
            state = self._pull(api, bundle)
            deletions = plan_resources({}, state, {}, KINDS)
            resources = run.apply_changes(state, deletions)
            workspace_files.delete(api, bundle.workspace.root_path, recursive=True)
        return DeployResult(resources, api.write_calls)

    def summary(self, bundle: ResolvedBundle, host: str) -> dict[str, Any]:
        """`bundle summary -o json`: the validate output with each deployed resource's `id` and `url`."""
        document = bundle.as_validate_json()
        state = self._pull(self._api, bundle)
        for key in managed_keys(state, KINDS):
            page = KINDS[kind_of(key)].url
            resource = document.get("resources", {}).get(kind_of(key), {}).get(key.split(".")[2])
            if resource is not None and page is not None:
                resource["id"] = resource_id(state.entries[key])
                resource["url"] = page(host, resource["id"])
        return document

    def deployed(self, bundle: ResolvedBundle) -> dict[str, DeployedResource]:
        """The jobs and pipelines the target's state records, as last deployed (by this engine or the CLI)."""
        state = self._pull(self._api, bundle)
        return {
            key: _resource(
                key, resource_settings(state.entries[key]), resource_id(state.entries[key]), "skip"
            )
            for key in managed_keys(state, KINDS)
            if kind_of(key) in (job_resource.KIND, pipeline_resource.KIND)
        }

    def _local_folder(self, bundle: ResolvedBundle) -> Path:
        if self._state_cache is not None:
            return self._state_cache.folder(bundle.workspace.state_path)
        return local_state_folder(bundle.bundle_dir, bundle.target)

    def _pull(self, api: WorkspaceApi, bundle: ResolvedBundle) -> DeploymentState:
        return pull_state(api, bundle.workspace.state_path, self._local_folder(bundle))

    @contextmanager
    def _run(self, api: WorkspaceApi, bundle: ResolvedBundle) -> Iterator[_Run]:
        with ThreadPoolExecutor(self._max_workers, thread_name_prefix="bundle-deploy") as pool:
            yield _Run(
                api,
                pool,
                bundle.workspace.state_path,
                self._local_folder(bundle),
                unknown_outcome_grace=self._unknown_outcome_grace,
            )


class _Run:
    """One deploy's reads and writes, spread over a thread pool."""

    def __init__(
        self,
        api: WorkspaceApi,
        pool: ThreadPoolExecutor,
        state_path: str,
        local_folder: Path,
        *,
        unknown_outcome_grace: float,
    ) -> None:
        self._api = api
        self._pool = pool
        self._state_path = state_path
        self._local_folder = local_folder
        self._grace = unknown_outcome_grace
        self._claims = threading.Lock()
        self._claimed: set[str] = set()  # ids the state records or this deploy made or adopted
        self._earlier_creates: set[str] = set()  # keys an earlier deploy noted it was creating
        self._wanted: Counter[tuple[str, str]] = Counter()  # (kind, name) of every resource wanted

    def plan(
        self, state: DeploymentState, uploads: list[Upload], desired: dict[str, dict[str, Any]]
    ) -> BundlePlan:
        uploaded = bundle_files.read_manifest(self._api, self._state_path, state)
        files = {upload.remote: upload.digest for upload in uploads}
        known = [key for key in desired if key in state.entries]
        remote = dict(zip(known, self._each(known, lambda key: self._read(state, key)), strict=True))
        return BundlePlan(
            state=state,
            uploads=[upload for upload in uploads if uploaded.get(upload.remote) != upload.digest],
            stale_files=sorted(set(uploaded) - set(files)),
            changes=plan_resources(desired, state, remote, KINDS),
            files=files,
        )

    def apply(self, plan: BundlePlan) -> dict[str, DeployedResource]:
        self._upload(plan.uploads)
        self._each(plan.stale_files, lambda path: workspace_files.delete(self._api, path))
        return self.apply_changes(plan.state, plan.changes, plan.files)

    def apply_changes(
        self, state: DeploymentState, changes: list[Change], files: dict[str, str] | None = None
    ) -> dict[str, DeployedResource]:
        """Apply the changes, push the state (and the file manifest), then report any failure."""
        self._claimed = {resource_id(entry) for entry in state.entries.values()}
        self._wanted = Counter(
            (change.kind, str(change.settings.get("name", "")))
            for change in changes
            if change.action != "delete"
        )
        outcome = _Outcome(state)
        creating = self._note_creates(state, changes)
        self._apply_in_waves(changes, outcome)
        written = push_state(self._api, self._state_path, outcome.state(), self._local_folder)
        if files is not None:
            bundle_files.write_manifest(self._api, self._state_path, written, files)
        if outcome.failures:
            raise DeployError("; ".join(outcome.failures))
        if creating:
            workspace_files.delete(self._api, self._pending_path)
        return outcome.resources

    @property
    def _pending_path(self) -> str:
        return f"{self._state_path}/{PENDING_CREATES_FILE}"

    def _note_creates(self, state: DeploymentState, changes: list[Change]) -> bool:
        """Before creating what has no marker of its own, note it beside the state: a later deploy of
        this target that finds the note adopts what the create made instead of making another.

        Returns whether a note exists now. Notes left by an earlier deploy count only for the same
        lineage, or while the target's state was never pushed (a first deploy that was killed).
        """
        found = workspace_files.read_json(self._api, self._pending_path)
        notes: dict[str, Any] = found if isinstance(found, dict) else {}
        if state.serial and notes.get("lineage") != state.lineage:
            notes = {}  # another deployment's: never adopt what it made
        self._earlier_creates = set(notes.get("keys") or [])
        keys = self._earlier_creates | {
            change.key
            for change in changes
            if change.action in ("create", "recreate") and KINDS[change.kind].find_created is not None
        }
        if keys != self._earlier_creates:
            document = {"lineage": state.lineage, "keys": sorted(keys)}
            workspace_files.write_json(self._api, self._pending_path, document)
        return bool(keys)

    def _read(self, state: DeploymentState, key: str) -> dict[str, Any] | None:
        return KINDS[kind_of(key)].read(self._api, resource_id(state.entries[key]))

    def _upload(self, uploads: list[Upload]) -> None:
        """Upload changed files, creating their folders and the state folder first (no lock made it)."""
        paths = [*(upload.remote for upload in uploads), f"{self._state_path}/{STATE_FILE}"]
        self._each(_leaf_folders(paths), lambda path: workspace_files.make_dirs(self._api, path))
        self._each(uploads, lambda upload: upload.send(self._api))

    def _apply_in_waves(self, changes: list[Change], outcome: _Outcome) -> None:
        """A resource goes once every resource whose id it uses is done."""
        waiting = {change.key: change for change in changes if change.writes}
        outcome.skipped([change for change in changes if not change.writes])
        while waiting:
            ready = [change for change in waiting.values() if not set(change.depends_on) & waiting.keys()]
            for change in ready:
                del waiting[change.key]
            futures = {
                change.key: self._pool.submit(self._apply_one, change, outcome.ids()) for change in ready
            }
            for change in ready:
                outcome.record(change, futures[change.key])

    def _apply_one(self, change: Change, ids: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        """Apply one change; return the resource's id and the settings sent."""
        kind = KINDS[change.kind]
        if change.action == "delete":
            kind.delete(self._api, str(change.id))
            return str(change.id), change.settings
        missing = [dependency for dependency in change.depends_on if dependency not in ids]
        if missing:
            raise DeployError(f"not deployed because {', '.join(missing)} failed")
        settings = with_ids(change.settings, ids)
        if change.action == "recreate":
            kind.delete(self._api, str(change.id))
        if change.action in ("create", "recreate"):
            return self._create(change.key, kind, settings), settings
        renamed = kind.update(self._api, str(change.id), settings)
        return str(renamed or change.id), settings

    def _create(self, key: str, kind: ResourceKind, settings: dict[str, Any]) -> str:
        """Create the resource, or adopt the one an interrupted deploy made; never make two."""
        if kind.find_created is not None:
            return self._create_named(key, kind, settings)
        marker, name = deployment_marker(settings), str(settings.get("name", ""))
        if kind.find is None or marker is None or not name:
            return self._claim(kind.create(self._api, settings))
        adopted = self._adopt(kind, name, marker)
        if adopted is not None:
            kind.update(self._api, adopted, settings)  # made by an earlier deploy, maybe of older settings
            return adopted
        try:
            return self._claim(kind.create(self._api, settings))
        except WorkspaceApiError as error:
            if not error.outcome_unknown:
                raise
            what = f"no {kind.name} named {name!r} of this deployment"
            return self._await_created(key, lambda: self._adopt(kind, name, marker), what, error)

    def _create_named(self, key: str, kind: ResourceKind, settings: dict[str, Any]) -> str:
        """Create a resource of a kind without a deployment marker. What an earlier deploy noted it
        was creating is adopted; a lost answer is found by the id the settings give (a unique name)
        or among the kind's resources of that name; a unique name taken outside the bundle is not
        taken over."""
        assert kind.find_created is not None
        find_created = kind.find_created
        if key in self._earlier_creates:  # an earlier deploy sent this create; its outcome went unrecorded
            adopted = self._first_unclaimed(find_created(self._api, settings))
            if adopted is not None:
                if kind.updatable:  # made from the settings of that deploy, maybe older ones
                    adopted = kind.update(self._api, adopted, settings) or adopted
                return adopted
        try:
            return self._claim(kind.create(self._api, settings))
        except WorkspaceApiError as error:
            if error.error_code in _ALREADY_EXISTS:
                raise DeployError(
                    f"{key}: {error}. This deployment's state does not record it: if an interrupted "
                    "deploy of this bundle made it, bind it (`databricks bundle deployment bind`), "
                    "else rename the resource in the bundle"
                ) from None
            if not error.outcome_unknown:
                raise
            return self._await_created(
                key,
                lambda: self._first_unclaimed(find_created(self._api, settings)),
                f"no such {kind.name}",
                error,
            )

    def _await_created(
        self, key: str, find: Callable[[], str | None], what: str, error: WorkspaceApiError
    ) -> str:
        """Look for the resource a create with a lost answer may have made, until the grace runs out."""
        deadline = time.monotonic() + self._grace
        pause = 0.1
        while True:
            try:
                adopted = find()
            except WorkspaceApiError:
                adopted = None  # the workspace may still be struggling; look again
            if adopted is not None:
                return self._claim(adopted)
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"{key}: the create's outcome is unknown ({error}) and {what} "
                    f"appeared within {self._grace:g} s. Deploy again: if the workspace "
                    "did create it, the next deploy adopts it instead of creating another."
                ) from None
            time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 2.0)

    def _adopt(self, kind: ResourceKind, name: str, marker: str) -> str | None:
        """Claim the oldest resource of this name and marker that no state records; when the name is
        wanted once only, delete the other such copies, which interrupted deploys left behind."""
        assert kind.find is not None
        found = kind.find(self._api, name, marker)
        with self._claims:
            unclaimed = [resource for resource in found if resource not in self._claimed]
            if not unclaimed:
                return None
            duplicates = unclaimed[1:] if self._wanted[(kind.name, name)] == 1 else []
            self._claimed.update(unclaimed[:1] + duplicates)
        for duplicate in duplicates:
            kind.delete(self._api, duplicate)
        return unclaimed[0]

    def _first_unclaimed(self, candidates: list[str]) -> str | None:
        """Claim the first candidate no state records and this deploy has not taken."""
        with self._claims:
            found = next((each for each in candidates if each not in self._claimed), None)
            if found is not None:
                self._claimed.add(found)
        return found

    def _claim(self, resource: str) -> str:
        with self._claims:
            self._claimed.add(resource)
        return resource

    def _each(self, items: Iterable[T], work: Callable[[T], Any]) -> list[Any]:
        """`work` on every item in the pool; the first failure is raised once all are done."""
        futures = [self._pool.submit(work, item) for item in items]
        return [future.result() for future in futures]


class _Outcome:
    """What applying the changes did: the state entries, the ids, the results, the failures."""

    def __init__(self, state: DeploymentState) -> None:
        self._state = state
        self._entries = dict(state.entries)
        self._ids: dict[str, str] = {}  # of resources left alone or deployed by this run
        self.resources: dict[str, DeployedResource] = {}
        self.failures: list[str] = []

    def ids(self) -> dict[str, str]:
        return dict(self._ids)

    def skipped(self, changes: list[Change]) -> None:
        for change in changes:
            self._ids[change.key] = str(change.id)
            self.resources[change.key] = _resource(change.key, change.settings, str(change.id), "skip")

    def record(self, change: Change, future: Future[tuple[str, dict[str, Any]]]) -> None:
        try:
            resource_id_, sent = future.result()
        except Exception as error:  # one resource's failure must not lose what the others did
            self.failures.append(f"{change.key}: {change.action} failed: {error}")
            return
        if change.action == "delete":
            self._entries.pop(change.key, None)
        else:
            self._entries[change.key] = make_entry(resource_id_, sent, list(change.depends_on))
            self._ids[change.key] = resource_id_
        self.resources[change.key] = _resource(change.key, sent, resource_id_, change.action)

    def state(self) -> DeploymentState:
        return dataclasses.replace(self._state, entries=self._entries)


def desired_settings(bundle: ResolvedBundle) -> dict[str, dict[str, Any]]:
    """What a deploy of `bundle` sends, by state key, with `${resources.*.id}` still in."""
    return _local_changes(bundle)[1]


def _local_changes(bundle: ResolvedBundle) -> tuple[list[Upload], dict[str, dict[str, Any]]]:
    """What the bundle wants uploaded (files and built libraries) and the settings to send, by state key."""
    excludes = bundle.config.get("sync", {}).get("exclude") or []
    uploads = bundle_files.bundle_uploads(
        bundle.sync_root, bundle.workspace.file_path, excludes, sync_paths=bundle.sync_paths
    )
    library_folder = f"{bundle.workspace.artifact_path}/.internal"
    libraries: dict[str, Upload] = {}
    desired: dict[str, dict[str, Any]] = {}
    for kind in DEPLOYED_KINDS:
        for key, config in bundle.resources.get(kind, {}).items():
            state_key = f"resources.{kind}.{key}"
            settings = copy.deepcopy(config)
            permissions = settings.pop("permissions", None)
            grants = settings.pop("grants", None)
            for slot in library_slots(settings) if kind == job_resource.KIND else ():
                if isinstance(slot.value, str) and slot.value.startswith(LOCAL_LIBRARY_PREFIX):
                    built = _built_files(bundle.bundle_dir, slot.value, f"{state_key}.{slot.where}")
                    slot.replace([_library_upload(path, library_folder, libraries).remote for path in built])
            desired[state_key] = settings
            desired.update(_inner_resources(bundle, state_key, permissions, grants))
    return [*uploads, *libraries.values()], desired


def _inner_resources(
    bundle: ResolvedBundle, state_key: str, permissions: list[Any] | None, grants: list[Any] | None
) -> dict[str, dict[str, Any]]:
    """A resource's permissions (or a secret scope's ACLs) and grants, each a resource of its own."""
    kind = state_key.split(".")[1]
    inner: dict[str, dict[str, Any]] = {}
    if kind == "secret_scopes":
        deployer = str((bundle.config["workspace"].get("current_user") or {}).get("userName", ""))
        acls = secret_acls_resource.settings_for(state_key, permissions or [], deployer)
        if acls["acls"]:
            inner[f"{state_key}.permissions"] = acls
    elif permissions and kind in permissions_resource.OBJECT_TYPES:
        inner[f"{state_key}.permissions"] = permissions_resource.settings_for(state_key, permissions)
    if grants and kind in grants_resource.SECURABLE_TYPES:
        inner[f"{state_key}.grants"] = grants_resource.settings_for(state_key, grants)
    return inner


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
    undeployable = sorted(
        kind for kind, found in bundle.resources.items() if found and kind not in DEPLOYED_KINDS
    )
    if undeployable:
        raise DeployError(
            f"{bundle.name}: the native engine does not deploy {', '.join(undeployable)}; "
            "deploy this bundle with `engine: cli`"
        )
    sync = bundle.config.get("sync", {})
    if sync.get("include") or sync.get("paths", ["."]) != ["."]:
        raise DeployError(
            f"{bundle.name}: sync.include and sync.paths are not supported by the native engine yet"
        )


def _lock(
    api: WorkspaceApi, bundle: ResolvedBundle, force_lock: bool, owner: LockOwner | None
) -> DeployLock | None:
    """The target's lock: none when `bundle.deployment.lock.enabled` is false (development mode)."""
    settings = (bundle.config["bundle"].get("deployment") or {}).get("lock") or {}
    if settings.get("enabled") is False:
        return None
    force = force_lock or settings.get("force") is True
    return DeployLock(api, bundle.workspace.state_path, force=force, owner=owner)


def _broken(lock: DeployLock | None, found: dict[str, Any] | None) -> dict[str, Any] | None:
    """Another deployment's lock that this deploy broke, for the caller's audit trail."""
    return found if lock is not None and found is not None and not lock.is_own(found) else None


def _deploying_user(api: WorkspaceApi, bundle: ResolvedBundle) -> str:
    """Who takes the lock: the user the bundle was resolved for, or who the API says we are."""
    user = bundle.config["workspace"].get("current_user") or api.call("GET", "2.0/preview/scim/v2/Me")
    return str(user.get("userName", "unknown"))


def _resource(key: str, settings: Mapping[str, Any], resource_id_: str, action: Action) -> DeployedResource:
    return DeployedResource(key, kind_of(key), str(settings.get("name", "")), resource_id_, action)


def _results(changes: list[Change]) -> dict[str, DeployedResource]:
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
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        if method.upper() != "GET":
            with self._lock:
                self.write_calls += 1
        return self._api.call(method, path, body=body, query=query, idempotent=idempotent)
