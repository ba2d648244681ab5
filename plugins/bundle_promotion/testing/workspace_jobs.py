"""The jobs of one emulated workspace (Jobs API 2.2 semantics)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from bundle_promotion.testing.workspace_protocol import (
    IdSequence,
    invalid_parameter,
    malformed_request,
    now_ms,
)

# Arrays that jobs/update merges entry by entry on these keys instead of replacing whole
# (Jobs API docs, JobSettings of jobs/update: "except for arrays which are merged").
KEYED_ARRAYS = {"tasks": "task_key", "job_clusters": "job_cluster_key"}

# What jobs/list leaves out unless expand_tasks=true.
EXPANDED_ONLY_FIELDS = ("tasks", "job_clusters")

# What starts a job. Each carries its own pause_status; the ``triggers`` list (a preview)
# replaces the three single ones and cannot be combined with them.
SINGLE_TRIGGERS = ("schedule", "trigger", "continuous")
TRIGGER_LIST = "triggers"

# Not settings: the ACL of a job lives in the permissions API.
REQUEST_ONLY_FIELDS = ("access_control_list",)


@dataclass
class Job:
    job_id: int
    creator_user_name: str
    created_time: int
    settings: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.settings.get("name", ""))

    @property
    def run_as_user_name(self) -> str:
        run_as = self.settings.get("run_as") or {}
        return str(run_as.get("user_name") or run_as.get("service_principal_name") or self.creator_user_name)

    def to_api(self, *, expand_tasks: bool = True) -> dict[str, Any]:
        settings = copy.deepcopy(self.settings)
        if not expand_tasks:
            for field in EXPANDED_ONLY_FIELDS:
                settings.pop(field, None)
        return {
            "job_id": self.job_id,
            "creator_user_name": self.creator_user_name,
            "run_as_user_name": self.run_as_user_name,
            "created_time": self.created_time,
            "settings": settings,
        }


class JobStore:
    """Jobs by id. Every method raises ``ApiError`` as the real endpoint would."""

    def __init__(self, ids: IdSequence, user_name: str) -> None:
        self._ids = ids
        self._user_name = user_name
        self._jobs: dict[int, Job] = {}

    def create(self, request: dict[str, Any]) -> Job:
        settings = {key: value for key, value in request.items() if key not in REQUEST_ONLY_FIELDS}
        job = Job(self._ids.next(), self._user_name, now_ms(), with_server_defaults(settings))
        self._jobs[job.job_id] = job
        return job

    def get(self, job_id: int) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise invalid_parameter(f"Job {job_id} does not exist.")
        return job

    def newest_first(self, name: str | None = None) -> list[Job]:
        """All jobs, most recently created first, as jobs/list orders them.

        ``name`` filters on the exact name, ignoring case, as the real filter does.
        """
        jobs = sorted(self._jobs.values(), key=lambda job: job.job_id, reverse=True)
        if name is None:
            return jobs
        return [job for job in jobs if job.name.casefold() == name.casefold()]

    def update(self, job_id: int, new_settings: dict[str, Any], fields_to_remove: list[str]) -> None:
        job = self.get(job_id)
        settings = merge_settings(job.settings, new_settings)
        job.settings = with_server_defaults(remove_fields(settings, fields_to_remove))

    def reset(self, job_id: int, new_settings: dict[str, Any]) -> None:
        self.get(job_id).settings = with_server_defaults(copy.deepcopy(new_settings))

    def delete(self, job_id: int) -> None:
        self.get(job_id)
        del self._jobs[job_id]


def with_server_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """Check keyed arrays, then fill the defaults the service adds to every job.

    Reads then differ from writes as they do against a real workspace. The set follows
    the Jobs API docs (name, max_concurrent_runs, timeout_seconds) and what a real
    workspace returns for notifications and task ``run_if``.
    """
    _check_keyed_arrays(settings)
    _check_triggers(settings)
    settings.setdefault("name", "Untitled")
    settings.setdefault("max_concurrent_runs", 1)
    settings.setdefault("timeout_seconds", 0)
    settings.setdefault("email_notifications", {})
    settings.setdefault("webhook_notifications", {})
    for task in settings.get("tasks", []):
        task.setdefault("run_if", "ALL_SUCCESS")
        task.setdefault("timeout_seconds", 0)
        task.setdefault("email_notifications", {})
    return settings


def _check_keyed_arrays(settings: dict[str, Any]) -> None:
    for field, key in KEYED_ARRAYS.items():
        entries = settings.get(field, [])
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise malformed_request(
                f"Could not parse request object: expected a list of objects for '{field}'"
            )
        if not all(isinstance(entry.get(key), str) and entry[key] for entry in entries):
            raise invalid_parameter(f"Every entry of {field} needs a non-empty {key}.")


def _check_triggers(settings: dict[str, Any]) -> None:
    if settings.get(TRIGGER_LIST) and any(settings.get(field) for field in SINGLE_TRIGGERS):
        raise invalid_parameter(f"{TRIGGER_LIST} cannot be combined with {', '.join(SINGLE_TRIGGERS)}.")


def merge_settings(current: dict[str, Any], new_settings: dict[str, Any]) -> dict[str, Any]:
    """Apply jobs/update: top-level fields are replaced whole; keyed arrays are merged by key."""
    _check_keyed_arrays(new_settings)
    settings = copy.deepcopy(current)
    for field, value in copy.deepcopy(new_settings).items():
        key = KEYED_ARRAYS.get(field)
        settings[field] = _merge_by_key(settings.get(field, []), value, key) if key else value
    return settings


def _merge_by_key(current: list[dict[str, Any]], updates: list[dict[str, Any]], key: str) -> list[Any]:
    merged = {entry[key]: entry for entry in current}
    merged.update({entry[key]: entry for entry in updates})
    return list(merged.values())


def remove_fields(settings: dict[str, Any], fields_to_remove: list[str]) -> dict[str, Any]:
    """Apply ``fields_to_remove``: top-level names, or ``tasks/<task_key>`` and ``job_clusters/<key>``."""
    for field in fields_to_remove:
        array, _, entry_key = field.partition("/")
        key = KEYED_ARRAYS.get(array)
        if entry_key and key:
            settings[array] = [entry for entry in settings.get(array, []) if entry.get(key) != entry_key]
        else:
            settings.pop(field, None)
    return settings
