"""The pause state of job triggers in one environment.

A job can carry several triggers (``schedule``, ``trigger``, ``continuous``); each
has its own ``pause_status``. Jobs 2.2 ``update`` replaces a top-level field
whole, so a change always sends the full trigger object with the new status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from bundle_promotion.workspace_api import WorkspaceApi

PauseStatus = Literal["PAUSED", "UNPAUSED"]
SchedulePolicy = Literal["paused", "unpaused"]

TRIGGER_FIELDS = ("schedule", "trigger", "continuous")


@dataclass(frozen=True)
class TriggerState:
    """One trigger of one job, as found in the workspace."""

    job_id: str
    job_name: str
    field: str
    pause_status: PauseStatus


def desired_status(policy: SchedulePolicy) -> PauseStatus:
    return "PAUSED" if policy == "paused" else "UNPAUSED"


def triggers_of(job_id: str, settings: Mapping[str, Any]) -> list[TriggerState]:
    """The triggers a job carries; a trigger without ``pause_status`` runs, so it counts as UNPAUSED."""
    return [
        TriggerState(
            job_id=job_id,
            job_name=str(settings.get("name", "")),
            field=field,
            pause_status=settings[field].get("pause_status", "UNPAUSED"),
        )
        for field in TRIGGER_FIELDS
        if isinstance(settings.get(field), Mapping)
    ]


def set_pause_status(
    api: WorkspaceApi, job_ids: Iterable[str], status: PauseStatus, *, max_workers: int = 8
) -> list[TriggerState]:
    """Leave every trigger of the jobs at ``status``; returns the triggers as they end up.

    Only jobs whose triggers differ are written, so running it twice writes nothing the second time.
    """
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        per_job = pool.map(lambda job_id: _converge_job(api, job_id, status), job_ids)
        return [trigger for triggers in per_job for trigger in triggers]


def _converge_job(api: WorkspaceApi, job_id: str, status: PauseStatus) -> list[TriggerState]:
    settings = api.call("GET", "2.2/jobs/get", query={"job_id": job_id})["settings"]
    stale = {
        trigger.field: {**settings[trigger.field], "pause_status": status}
        for trigger in triggers_of(job_id, settings)
        if trigger.pause_status != status
    }
    if stale:
        api.call("POST", "2.2/jobs/update", body={"job_id": int(job_id), "new_settings": stale})
    return triggers_of(job_id, {**settings, **stale})
