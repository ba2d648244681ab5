"""Planning: what to create, update, recreate, delete or leave alone, and in which order.

Each resource is compared with the saved state (what the last deploy sent) and with
the server (what it holds now), as the CLI's direct engine plans:

- not in the state, or gone from the server (deleted by hand): create;
- the config changed since the last deploy, or someone changed it on the server
  (drift, e.g. a schedule paused by hand): update, or recreate when a field changed
  that the service cannot change in place (a pipeline's `storage`);
- in the state but no longer in the config: delete.

Settings may name another resource's id as `${resources.<kind>.<key>.id}`; such a
resource is applied after the one it names, with the id filled in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal

from bundle_promotion.bundle.config.interpolation import ENGINE_ROOT, REFERENCE
from bundle_promotion.bundle.config.job_settings import differs
from bundle_promotion.bundle.deploy.state import DeploymentState, resource_id, resource_settings
from bundle_promotion.errors import DeployError
from bundle_promotion.workspace.api import WorkspaceApi

Action = Literal["create", "update", "recreate", "delete", "skip"]
PLAN_VERSION = 2


@dataclass(frozen=True)
class ResourceKind:
    """How one kind of resource is read and written; `name` is its part of the state key."""

    name: str  # "jobs", "pipelines", "permissions"
    read: Callable[[WorkspaceApi, str], dict[str, Any] | None]  # None: gone from the server
    create: Callable[[WorkspaceApi, dict[str, Any]], str]  # returns the new id
    update: Callable[[WorkspaceApi, str, dict[str, Any]], None]
    delete: Callable[[WorkspaceApi, str], None]
    recreate_on: tuple[str, ...] = ()  # dotted fields whose change needs a new resource
    url: Callable[[str, str], str] | None = None  # (host, id) -> the resource's page
    # (name, deployment marker) -> ids of the resources carrying both; None: creates cannot be found
    find: Callable[[WorkspaceApi, str, str], list[str]] | None = None


@dataclass(frozen=True)
class Change:
    key: str  # "resources.jobs.etl", "resources.jobs.etl.permissions"
    action: Action
    settings: dict[str, Any]  # to send, `${resources.*.id}` still in; for delete, as last sent
    depends_on: tuple[str, ...]
    id: str | None  # the resource's id before this deploy; None for one to create
    changed_fields: tuple[str, ...] = field(default=())  # top-level fields that differ

    @property
    def writes(self) -> bool:
        return self.action != "skip"

    @property
    def kind(self) -> str:
        return kind_of(self.key)


def kind_of(key: str) -> str:
    """`resources.jobs.etl` is a `jobs`; `resources.jobs.etl.permissions` is a `permissions`."""
    parts = key.split(".")
    return parts[3] if len(parts) == 4 else parts[1]


def managed_keys(state: DeploymentState, kinds: Mapping[str, ResourceKind]) -> list[str]:
    """The state's entries of the kinds this engine deploys; others are kept as read."""
    return [key for key in state.entries if key.startswith(f"{ENGINE_ROOT}.") and kind_of(key) in kinds]


def references(key: str, settings: Any, known: Mapping[str, Any]) -> tuple[str, ...]:
    """The resources whose ids `settings` use, as resource keys, in order of first use."""
    found: dict[str, None] = {}
    for text in _strings(settings):
        for match in REFERENCE.finditer(text):
            target, _, wanted = match.group(1).rpartition(".")
            if not target.startswith(f"{ENGINE_ROOT}.") or wanted != "id":
                raise DeployError(
                    f"{key}: {match.group(0)} is not supported by the native engine; "
                    f"it resolves ids only, as ${{{ENGINE_ROOT}.<kind>.<key>.id}}"
                )
            if target not in known:
                raise DeployError(f"{key}: {match.group(0)} names a resource the bundle does not define")
            found[target] = None
    return tuple(found)


def with_ids(settings: Any, ids: Mapping[str, str]) -> Any:
    """`settings` with every `${resources.<kind>.<key>.id}` replaced by that resource's id.

    A string that is only the reference to a numeric id becomes a number, as the API types job ids.
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


def plan_resources(
    desired: Mapping[str, dict[str, Any]],
    state: DeploymentState,
    remote: Mapping[str, dict[str, Any] | None],
    kinds: Mapping[str, ResourceKind],
) -> list[Change]:
    """Changes for every resource of the config (in dependency order) and every one it no longer has.

    `desired` is keyed like the state (`resources.<kind>.<key>`); `remote` holds the
    server's settings of each resource in both, None where the server has no such resource.
    """
    depends_on = {key: references(key, settings, desired) for key, settings in desired.items()}
    changes: dict[str, Change] = {}
    for key in _dependency_order(depends_on):
        recreate_on = kinds[kind_of(key)].recreate_on
        changes[key] = _change(
            key, desired[key], depends_on[key], state, remote.get(key), changes, recreate_on
        )
    for key in managed_keys(state, kinds):
        if key not in desired:
            entry = state.entries[key]
            changes[key] = Change(key, "delete", resource_settings(entry), (), resource_id(entry))
    return list(changes.values())


def _change(
    key: str,
    settings: dict[str, Any],
    depends_on: tuple[str, ...],
    state: DeploymentState,
    remote: dict[str, Any] | None,
    planned: Mapping[str, Change],
    recreate_on: tuple[str, ...],
) -> Change:
    entry = state.entries.get(key)
    if entry is None or remote is None:
        return Change(key, "create", settings, depends_on, None, tuple(sorted(settings)))
    last_sent = resource_settings(entry)
    if any(planned[dependency].action in ("create", "recreate") for dependency in depends_on):
        return Change(
            key, "update", settings, depends_on, resource_id(entry), _references_to_new_ids(settings)
        )
    ids = {dependency: resource_id(state.entries[dependency]) for dependency in depends_on}
    new = with_ids(settings, ids)
    fields = sorted(
        {name for name in {*new, *last_sent} if new.get(name) != last_sent.get(name)}
        | {name for name, value in last_sent.items() if differs({name: value}, remote)}
    )
    if not fields:
        return Change(key, "skip", settings, depends_on, resource_id(entry))
    needs_new = any(_get(new, path) != _get(remote, path) for path in recreate_on)
    return Change(
        key, "recreate" if needs_new else "update", settings, depends_on, resource_id(entry), tuple(fields)
    )


def _references_to_new_ids(settings: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(name for name, value in settings.items() if _strings(value)))


def _get(settings: Mapping[str, Any], dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _dependency_order(depends_on: Mapping[str, tuple[str, ...]]) -> list[str]:
    try:
        return list(TopologicalSorter(depends_on).static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise DeployError(f"resources reference each other's ids in a cycle: {cycle}") from None


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) and "${" in value else []


def plan_json(changes: list[Change], state: DeploymentState) -> dict[str, Any]:
    """The plan in the shape of `databricks bundle plan -o json`, with each change's fields."""
    return {
        "plan_version": PLAN_VERSION,
        "cli_version": state.cli_version,
        "lineage": state.lineage,
        "serial": state.serial,
        "plan": {
            change.key: {
                "action": change.action,
                **({"changed_fields": list(change.changed_fields)} if change.writes else {}),
            }
            for change in changes
        },
    }


def describe(changes: list[Change]) -> list[str]:
    """One readable line per resource, e.g. `update resources.jobs.etl (schedule, tags)`."""
    return [
        f"{change.action:<8} {change.key}"
        + (f" ({', '.join(change.changed_fields)})" if change.changed_fields else "")
        for change in changes
    ]
