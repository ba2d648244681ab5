"""Planning jobs: what to create, update, delete or leave alone, and in which order.

A job is compared with the saved state (what the last deploy sent) and with the
server (what it holds now). It is updated when the config changed since the last
deploy, or when someone changed it on the server (drift, e.g. a schedule paused
by hand); it is recreated when it was deleted by hand.

Settings may name another job's id as `${resources.jobs.<key>.id}`; such a job is
applied after the job it names, with the id filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal

from bundle_promotion.errors import DeployError
from bundle_promotion.interpolation import ENGINE_ROOT, REFERENCE
from bundle_promotion.job_settings import differs
from bundle_promotion.state import DeploymentState, resource_id, resource_settings

Action = Literal["create", "update", "delete", "skip"]
JOB_PREFIX = f"{ENGINE_ROOT}.jobs."


@dataclass(frozen=True)
class JobChange:
    key: str  # "resources.jobs.etl"
    action: Action
    settings: dict[str, Any]  # to send, `${resources.jobs.x.id}` still in; for delete, as last sent
    depends_on: tuple[str, ...]
    id: str | None  # the job's id before this deploy; None for a job to create

    @property
    def writes(self) -> bool:
        return self.action != "skip"


def job_key(key: str) -> str:
    return f"{JOB_PREFIX}{key}"


def state_job_keys(state: DeploymentState) -> list[str]:
    """The jobs in the state. Entries such as `resources.jobs.x.permissions` are not jobs."""
    return [key for key in state.entries if key.startswith(JOB_PREFIX) and "." not in key[len(JOB_PREFIX) :]]


def references(key: str, settings: Any, known: Mapping[str, Any]) -> tuple[str, ...]:
    """The jobs whose ids `settings` use, as resource keys, in order of first use."""
    found: dict[str, None] = {}
    for text in _strings(settings):
        for match in REFERENCE.finditer(text):
            target, _, field = match.group(1).rpartition(".")
            if not target.startswith(JOB_PREFIX) or field != "id":
                raise DeployError(
                    f"{key}: {match.group(0)} is not supported by the native engine; "
                    f"it resolves ids of jobs only, as ${{{JOB_PREFIX}<key>.id}}"
                )
            if target not in known:
                raise DeployError(f"{key}: {match.group(0)} names a job the bundle does not define")
            found[target] = None
    return tuple(found)


def with_ids(settings: Any, ids: Mapping[str, str]) -> Any:
    """`settings` with every `${resources.jobs.<key>.id}` replaced by that job's id.

    A string that is only the reference becomes the id as a number, as the API types it.
    """
    if isinstance(settings, dict):
        return {name: with_ids(value, ids) for name, value in settings.items()}
    if isinstance(settings, list):
        return [with_ids(value, ids) for value in settings]
    if not isinstance(settings, str) or "${" not in settings:
        return settings
    whole = REFERENCE.fullmatch(settings)
    if whole:
        found = ids[whole.group(1).rpartition(".")[0]]
        return int(found) if found.isdigit() else found
    return REFERENCE.sub(lambda match: ids[match.group(1).rpartition(".")[0]], settings)


def plan_jobs(
    desired: Mapping[str, dict[str, Any]],
    state: DeploymentState,
    remote: Mapping[str, dict[str, Any] | None],
) -> list[JobChange]:
    """Changes for every job of the config (in dependency order) and every job it no longer has.

    `desired` is keyed like the state (`resources.jobs.<key>`); `remote` holds the
    server's settings of each job in both, None where the server has no such job.
    """
    depends_on = {key: references(key, settings, desired) for key, settings in desired.items()}
    changes: dict[str, JobChange] = {}
    for key in _dependency_order(depends_on):
        changes[key] = _change(key, desired[key], depends_on[key], state, remote.get(key), changes)
    removed = [key for key in state_job_keys(state) if key not in desired]
    for key in removed:
        entry = state.entries[key]
        changes[key] = JobChange(key, "delete", resource_settings(entry), (), resource_id(entry))
    return list(changes.values())


def _change(
    key: str,
    settings: dict[str, Any],
    depends_on: tuple[str, ...],
    state: DeploymentState,
    remote: dict[str, Any] | None,
    planned: Mapping[str, JobChange],
) -> JobChange:
    entry = state.entries.get(key)
    if entry is None or remote is None:
        return JobChange(key, "create", settings, depends_on, None)
    if any(planned[dependency].action == "create" for dependency in depends_on):
        return JobChange(key, "update", settings, depends_on, resource_id(entry))  # a new id to fill in
    ids = {dependency: resource_id(state.entries[dependency]) for dependency in depends_on}
    last_sent = resource_settings(entry)
    changed = with_ids(settings, ids) != last_sent or differs(last_sent, remote)
    return JobChange(key, "update" if changed else "skip", settings, depends_on, resource_id(entry))


def _dependency_order(depends_on: Mapping[str, tuple[str, ...]]) -> list[str]:
    try:
        return list(TopologicalSorter(depends_on).static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise DeployError(f"jobs reference each other's ids in a cycle: {cycle}") from None


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) and "${" in value else []
