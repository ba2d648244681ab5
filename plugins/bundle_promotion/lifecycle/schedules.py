"""The pause state of job triggers in one environment: read, set, snapshot and restore.

A job can carry several triggers (``schedule``, ``trigger``, ``continuous``, or the
``triggers`` list); each has its own ``pause_status``. Jobs 2.2 ``update`` replaces a
top-level field whole, so a change always sends the full trigger object (or the full
list) with the new status, and nothing else. A pipeline's ``continuous`` counts as one
trigger (UNPAUSED when true); pipelines ``edit`` replaces the spec whole, so the whole
spec goes back with the flag changed.

Every function converges: a job already in the wanted state is read, never written,
so a retried task writes nothing more. Jobs are handled ``max_workers`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from bundle_promotion.bundle.resources import jobs as job_resource
from bundle_promotion.bundle.resources import pipelines as pipeline_resource
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.ledger.records import PauseStatus, ResourceKind, ScheduleSnapshot, TriggerState
from bundle_promotion.lifecycle.data_restores import PIPELINE_TERMINAL_STATES
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger

SchedulePolicy = Literal["paused", "unpaused"]

TRIGGER_FIELDS = ("schedule", "trigger", "continuous")
TRIGGER_LIST_FIELD = "triggers"
DEFAULT_MAX_WORKERS = 16
RUNS_PAGE_SIZE = 25  # the most runs/list returns at once; enough to say what is still running


@dataclass(frozen=True)
class BundleResource:
    """A job or pipeline (``kind``) of a bundle as deployed in one environment."""

    key: str
    id: str
    name: str
    tags: Mapping[str, str]
    kind: ResourceKind = "job"


def select_resources(
    resources: Iterable[BundleResource], *, keys: Collection[str] = (), tags: Mapping[str, str] | None = None
) -> list[BundleResource]:
    """The jobs and pipelines with one of ``keys`` (any when empty) that carry every tag of ``tags``."""
    wanted_tags = dict(tags or {})
    return [
        resource
        for resource in resources
        if (not keys or resource.key in keys)
        and all(resource.tags.get(k) == v for k, v in wanted_tags.items())
    ]


@dataclass(frozen=True)
class ActiveRun:
    """A run that is queued or running."""

    job_id: str
    name: str
    run_id: int
    state: str
    run_page_url: str

    def __str__(self) -> str:
        return f"{self.name} run {self.run_id} ({self.state}): {self.run_page_url}"


@dataclass(frozen=True)
class ActiveUpdate:
    """A pipeline update that has not reached a terminal state."""

    pipeline_id: str
    name: str
    update_id: str
    state: str
    page_url: str

    def __str__(self) -> str:
        return f"{self.name} update {self.update_id} ({self.state}): {self.page_url}"


def active_runs(
    api: WorkspaceApi, job_ids: Iterable[str], *, max_workers: int = DEFAULT_MAX_WORKERS
) -> list[ActiveRun]:
    """The runs of the jobs that are queued or running now; empty once they are all quiet."""
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="schedules") as pool:
        per_job = pool.map(lambda job_id: _active_runs_of(api, job_id), job_ids)
        return [run for runs in per_job for run in runs]


def active_updates(
    api: WorkspaceApi, pipeline_ids: Iterable[str], *, host: str, max_workers: int = DEFAULT_MAX_WORKERS
) -> list[ActiveUpdate]:
    """The pipelines whose latest update has not ended; ``host`` makes the update pages' URLs."""
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="schedules") as pool:
        per_pipeline = pool.map(lambda pipeline_id: _active_update_of(api, pipeline_id, host), pipeline_ids)
        return [update for updates in per_pipeline for update in updates]


def still_running(
    api: WorkspaceApi,
    job_ids: Iterable[str],
    pipeline_ids: Iterable[str],
    *,
    host: str,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[ActiveRun | ActiveUpdate]:
    """The jobs' active runs and the pipelines' unfinished updates; empty once all are quiet."""
    return [
        *active_runs(api, job_ids, max_workers=max_workers),
        *active_updates(api, pipeline_ids, host=host, max_workers=max_workers),
    ]


def desired_status(policy: SchedulePolicy) -> PauseStatus:
    return "PAUSED" if policy == "paused" else "UNPAUSED"


def triggers_of(job_id: str, settings: Mapping[str, Any]) -> list[TriggerState]:
    """The triggers a job carries; a trigger without ``pause_status`` runs, so it counts as UNPAUSED."""
    name = str(settings.get("name", ""))
    return [
        TriggerState(job_id, name, field, trigger.get("pause_status", "UNPAUSED"))
        for field, trigger in _trigger_objects(settings)
    ]


def snapshot(
    api: WorkspaceApi,
    job_ids: Iterable[str],
    *,
    pipeline_ids: Iterable[str] = (),
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> ScheduleSnapshot:
    """The current state of every trigger of the jobs and pipelines; one that no longer exists has none."""
    reads: list[Callable[[], list[TriggerState]]] = [
        *(partial(_triggers_in_workspace, api, job_id) for job_id in job_ids),
        *(partial(_pipeline_triggers_in_workspace, api, pipeline_id) for pipeline_id in pipeline_ids),
    ]
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="schedules") as pool:
        per_resource = pool.map(lambda read: read(), reads)
        return ScheduleSnapshot(tuple(trigger for triggers in per_resource for trigger in triggers))


def set_pause_status(
    api: WorkspaceApi,
    job_ids: Iterable[str],
    status: PauseStatus,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[TriggerState]:
    """Leave every trigger of the jobs at ``status``; returns the triggers as they end up."""
    return _converge_all(api, job_ids, lambda _trigger: status, max_workers)


def set_pipeline_status(
    api: WorkspaceApi,
    pipeline_ids: Iterable[str],
    status: PauseStatus,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[TriggerState]:
    """Leave each pipeline's ``continuous`` at ``status``: PAUSED is false, UNPAUSED true.

    UNPAUSED makes any pipeline continuous, so pass only those whose config says so; a
    snapshot's ``restore`` knows which ones ran continuously.
    """
    return _converge_all(api, pipeline_ids, lambda _trigger: status, max_workers, _converge_pipeline)


def restore(
    api: WorkspaceApi, taken: ScheduleSnapshot, *, max_workers: int = DEFAULT_MAX_WORKERS
) -> list[TriggerState]:
    """Put back exactly the states of ``taken``. Triggers it does not know are left as they are."""

    def recorded(trigger: TriggerState) -> PauseStatus:
        return taken.status(trigger.job_id, trigger.field) or trigger.pause_status

    return [
        *_converge_all(api, taken.job_ids, recorded, max_workers),
        *_converge_all(api, taken.pipeline_ids, recorded, max_workers, _converge_pipeline),
    ]


def pause_for_maintenance(
    api: WorkspaceApi,
    ledger: Ledger,
    *,
    bundle: str,
    environment: str,
    job_ids: Sequence[str],
    pipeline_ids: Sequence[str] = (),
    reason: str,
    actor: str,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[TriggerState]:
    """Record the jobs' and pipelines' states in the environment's hold, then pause them.

    The hold is written before anything is paused, and a job it already holds is not read again:
    a retry or a second pause never mistakes the paused state for the one to restore. While the
    hold is in force, deploys leave every schedule of the environment paused.
    """
    hold = ledger.schedule_hold(bundle, environment)
    held = set(hold.snapshot.resource_ids) if hold else set()
    found = snapshot(
        api,
        [job_id for job_id in job_ids if job_id not in held],
        pipeline_ids=[pipeline_id for pipeline_id in pipeline_ids if pipeline_id not in held],
        max_workers=max_workers,
    )
    ledger.hold_schedules(bundle, environment, found, reason=reason, actor=actor)
    return [
        *set_pause_status(api, job_ids, "PAUSED", max_workers=max_workers),
        *set_pipeline_status(api, pipeline_ids, "PAUSED", max_workers=max_workers),
    ]


def end_maintenance(
    api: WorkspaceApi,
    ledger: Ledger,
    *,
    bundle: str,
    environment: str,
    job_ids: Sequence[str],
    pipeline_ids: Sequence[str] = (),
    policy: SchedulePolicy,
    whole_environment: bool,
    actor: str,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> list[TriggerState]:
    """Restore the held jobs and pipelines exactly; a job deployed during the hold gets the policy.

    Ending it for the ``whole_environment`` ends the hold; otherwise only these jobs leave it, and
    the hold ends with the last of them.
    """
    hold = ledger.schedule_hold(bundle, environment)
    held = hold.snapshot if hold else ScheduleSnapshot(())
    chosen = {*job_ids, *pipeline_ids}
    restored = restore(api, held.only(chosen), max_workers=max_workers)
    newcomers = [job_id for job_id in job_ids if job_id not in held.job_ids]
    applied = set_pause_status(api, newcomers, desired_status(policy), max_workers=max_workers)
    ledger.end_schedule_hold(bundle, environment, None if whole_environment else chosen, actor=actor)
    return [*restored, *applied]


_Converge = Callable[[WorkspaceApi, str, Callable[[TriggerState], PauseStatus]], list[TriggerState]]


def _converge_all(
    api: WorkspaceApi,
    resource_ids: Iterable[str],
    wanted: Callable[[TriggerState], PauseStatus],
    max_workers: int,
    converge: _Converge | None = None,
) -> list[TriggerState]:
    one = converge or _converge_job
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="schedules") as pool:
        per_resource = pool.map(lambda resource_id: one(api, resource_id, wanted), resource_ids)
        return [trigger for triggers in per_resource for trigger in triggers]


def _pipeline(api: WorkspaceApi, pipeline_id: str) -> dict[str, Any] | None:
    try:
        return api.call("GET", f"2.0/pipelines/{pipeline_id}")
    except WorkspaceApiError as error:
        if workspace_files.is_missing(error):
            return None
        raise


def _pipeline_spec(api: WorkspaceApi, pipeline_id: str) -> dict[str, Any] | None:
    pipeline = _pipeline(api, pipeline_id)
    return dict(pipeline.get("spec") or {}) if pipeline is not None else None


def _active_update_of(api: WorkspaceApi, pipeline_id: str, host: str) -> list[ActiveUpdate]:
    pipeline = _pipeline(api, pipeline_id) or {}  # a deleted pipeline runs nothing
    latest = next(iter(pipeline.get("latest_updates") or []), None)  # newest first
    if latest is None or latest.get("state") in PIPELINE_TERMINAL_STATES:
        return []
    update_id = str(latest.get("update_id", ""))
    return [
        ActiveUpdate(
            pipeline_id=pipeline_id,
            name=str(pipeline.get("name", "")),
            update_id=update_id,
            state=str(latest.get("state", "")),
            page_url=f"{pipeline_resource.url(host, pipeline_id)}/updates/{update_id}",
        )
    ]


def _pipeline_triggers(pipeline_id: str, spec: Mapping[str, Any]) -> list[TriggerState]:
    status: PauseStatus = "UNPAUSED" if spec.get("continuous") else "PAUSED"
    return [TriggerState(pipeline_id, str(spec.get("name", "")), "continuous", status, kind="pipeline")]


def _pipeline_triggers_in_workspace(api: WorkspaceApi, pipeline_id: str) -> list[TriggerState]:
    spec = _pipeline_spec(api, pipeline_id)
    return _pipeline_triggers(pipeline_id, spec) if spec is not None else []


def _converge_pipeline(
    api: WorkspaceApi, pipeline_id: str, wanted: Callable[[TriggerState], PauseStatus]
) -> list[TriggerState]:
    spec = _pipeline_spec(api, pipeline_id)
    if spec is None:
        return []
    [trigger] = _pipeline_triggers(pipeline_id, spec)
    status = wanted(trigger)
    if status == trigger.pause_status:
        return [trigger]
    changed = {**spec, "continuous": status == "UNPAUSED"}
    api.call("PUT", f"2.0/pipelines/{pipeline_id}", body=changed)
    return _pipeline_triggers(pipeline_id, changed)


def _active_runs_of(api: WorkspaceApi, job_id: str) -> list[ActiveRun]:
    query = {"job_id": int(job_id), "active_only": True, "limit": RUNS_PAGE_SIZE}
    runs = api.call("GET", "2.2/jobs/runs/list", query=query).get("runs", [])
    return [
        ActiveRun(
            job_id=job_id,
            name=str(run.get("run_name", "")),
            run_id=int(run["run_id"]),
            state=str(run.get("state", {}).get("life_cycle_state", "")),
            run_page_url=str(run.get("run_page_url", "")),
        )
        for run in runs
    ]


def _triggers_in_workspace(api: WorkspaceApi, job_id: str) -> list[TriggerState]:
    settings = job_resource.read(api, job_id)
    return triggers_of(job_id, settings) if settings is not None else []


def _converge_job(
    api: WorkspaceApi, job_id: str, wanted: Callable[[TriggerState], PauseStatus]
) -> list[TriggerState]:
    settings = job_resource.read(api, job_id)
    if settings is None:
        return []
    statuses = {trigger.field: wanted(trigger) for trigger in triggers_of(job_id, settings)}
    changed = _with_statuses(settings, statuses)
    if changed:
        api.call("POST", "2.2/jobs/update", body={"job_id": int(job_id), "new_settings": changed})
    return triggers_of(job_id, {**settings, **changed})


def _with_statuses(settings: Mapping[str, Any], statuses: Mapping[str, PauseStatus]) -> dict[str, Any]:
    """The top-level fields to send so each trigger gets its status: only those that change, whole."""
    changed: dict[str, Any] = {}
    for field in TRIGGER_FIELDS:
        trigger = settings.get(field)
        if isinstance(trigger, Mapping) and trigger.get("pause_status", "UNPAUSED") != statuses[field]:
            changed[field] = {**trigger, "pause_status": statuses[field]}
    listed = _listed_triggers(settings)
    updated = [
        {**trigger, "pause_status": statuses[f"{TRIGGER_LIST_FIELD}[{index}]"]}
        for index, trigger in enumerate(listed)
    ]
    if any(
        t.get("pause_status", "UNPAUSED") != u["pause_status"] for t, u in zip(listed, updated, strict=True)
    ):
        changed[TRIGGER_LIST_FIELD] = updated
    return changed


def _trigger_objects(settings: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    single = [
        (field, settings[field]) for field in TRIGGER_FIELDS if isinstance(settings.get(field), Mapping)
    ]
    listed = [(f"{TRIGGER_LIST_FIELD}[{i}]", t) for i, t in enumerate(_listed_triggers(settings))]
    return [*single, *listed]


def _listed_triggers(settings: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = settings.get(TRIGGER_LIST_FIELD)
    return [t for t in listed if isinstance(t, Mapping)] if isinstance(listed, list) else []
