"""Planning: what to create, update, recreate, delete or leave alone, and in which order.

Each resource is compared with the saved state (what the last deploy sent) and with
the server (what it holds now), as the CLI's direct engine plans:

- not in the state, or gone from the server (deleted by hand): create;
- the config changed since the last deploy, or someone changed it on the server
  (drift, e.g. a schedule paused by hand): update, or recreate when a field changed
  that the service cannot change in place (a pipeline's `storage`);
- in the state but no longer in the config: delete.

Settings may name another resource's id as `${resources.<kind>.<key>.id}`, or a field its
config sets (`${resources.schemas.sales.name}`); such a resource is applied after the one it
names, with the id or the field's value filled in.
"""

from __future__ import annotations

import re
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

    name: str  # "jobs", "pipelines", "permissions", "schemas", ...
    read: Callable[[WorkspaceApi, str], dict[str, Any] | None]  # None: gone from the server
    create: Callable[[WorkspaceApi, dict[str, Any]], str]  # returns the new id
    update: Callable[[WorkspaceApi, str, dict[str, Any]], str | None]  # a new id, if it changed
    delete: Callable[[WorkspaceApi, str], None]
    recreate_on: tuple[str, ...] = ()  # dotted fields whose change needs a new resource
    url: Callable[[str, str], str] | None = None  # (host, id) -> the resource's page
    # (name, deployment marker) -> ids of the resources carrying both; None: creates cannot be found
    find: Callable[[WorkspaceApi, str, str], list[str]] | None = None
    # settings -> the ids of what they may have created (a unique name's, else those of that name):
    # a create whose answer was lost is found among them, never sent again
    find_created: Callable[[WorkspaceApi, dict[str, Any]], list[str]] | None = None
    ignore_remote: tuple[str, ...] = ()  # fields the server never answers as sent: no drift
    updatable: bool = True  # False: the service changes nothing in place; any change recreates
    caseless: tuple[str, ...] = ()  # names the service stores in lower case (Unity Catalog's)


@dataclass(frozen=True)
class Change:
    key: str  # "resources.jobs.etl", "resources.jobs.etl.permissions"
    action: Action
    settings: dict[str, Any]  # to send, `${resources.*.id}` still in; for delete, as last sent
    depends_on: tuple[str, ...]  # applied after these; for a delete, the deletions of what uses it
    id: str | None  # the resource's id before this deploy; None for one to create
    changed_fields: tuple[str, ...] = field(default=())  # top-level fields that differ

    @property
    def writes(self) -> bool:
        return self.action != "skip"

    @property
    def kind(self) -> str:
        return kind_of(self.key)


# Resources inside another whose kind is not their field's name: a secret scope's
# `permissions` are Secrets API ACLs, not the Permissions API's.
_CHILD_KINDS = {("secret_scopes", "permissions"): "secret_acls"}


def kind_of(key: str) -> str:
    """`resources.jobs.etl` is a `jobs`; `resources.jobs.etl.permissions` is a `permissions`."""
    parts = key.split(".")
    if len(parts) == 4:
        return _CHILD_KINDS.get((parts[1], parts[3]), parts[3])
    return parts[1]


def managed_keys(state: DeploymentState, kinds: Mapping[str, ResourceKind]) -> list[str]:
    """The state's entries of the kinds this engine deploys; others are kept as read."""
    return [key for key in state.entries if key.startswith(f"{ENGINE_ROOT}.") and kind_of(key) in kinds]


def references(key: str, settings: Any, known: Mapping[str, Any]) -> tuple[str, ...]:
    """The resources whose ids or fields `settings` use, as resource keys, in order of first use."""
    found: dict[str, None] = {}
    for text in _strings(settings):
        for match in REFERENCE.finditer(text):
            target, wanted = _target_and_field(key, match)
            if target not in known:
                raise DeployError(f"{key}: {match.group(0)} names a resource the bundle does not define")
            if wanted != "id" and _get(known[target], wanted) is None:
                raise DeployError(
                    f"{key}: {match.group(0)} names a field the config of {target} does not set; "
                    "the native engine resolves ids and the fields a resource's config sets"
                )
            found[target] = None
    return tuple(found)


def _target_and_field(key: str, match: re.Match[str]) -> tuple[str, str]:
    parts = match.group(1).split(".", 3)
    if len(parts) < 4 or parts[0] != ENGINE_ROOT:
        raise DeployError(
            f"{key}: {match.group(0)} is not supported by the native engine; "
            f"it resolves ${{{ENGINE_ROOT}.<kind>.<key>.<field>}}"
        )
    return ".".join(parts[:3]), parts[3]


def with_fields(settings: Any, known: Mapping[str, Any]) -> Any:
    """`settings` with every reference to a field other than an id replaced by the config's value.

    Those values are the config's own, known before anything is deployed; ids wait for `with_ids`.
    """
    return _substitute(
        settings, lambda target, wanted: None if wanted == "id" else _get(known[target], wanted)
    )


def with_ids(settings: Any, ids: Mapping[str, str]) -> Any:
    """`settings` with every `${resources.<kind>.<key>.id}` replaced by that resource's id.

    A string that is only the reference to a numeric id becomes a number, as the API types job ids.
    """

    def resource_id_(target: str, wanted: str) -> Any:
        if wanted != "id":
            return None
        found = ids[target]
        return int(found) if found.isdigit() else found

    return _substitute(settings, resource_id_)


def _substitute(settings: Any, value_of: Callable[[str, str], Any]) -> Any:
    """Replace each reference `value_of(target, field)` answers (None: leave it as written)."""
    if isinstance(settings, dict):
        return {name: _substitute(value, value_of) for name, value in settings.items()}
    if isinstance(settings, list):
        return [_substitute(value, value_of) for value in settings]
    if not isinstance(settings, str) or "${" not in settings:
        return settings

    def replaced(match: re.Match[str]) -> Any:
        parts = match.group(1).split(".", 3)
        resolved = value_of(".".join(parts[:3]), parts[3]) if len(parts) == 4 else None
        return match.group(0) if resolved is None else resolved

    whole = REFERENCE.fullmatch(settings)
    if whole:
        return replaced(whole)
    return REFERENCE.sub(lambda match: str(replaced(match)), settings)


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
        settings = with_fields(desired[key], desired)
        changes[key] = _change(
            key, settings, depends_on[key], state, remote.get(key), changes, kinds[kind_of(key)]
        )
    gone = [key for key in managed_keys(state, kinds) if key not in desired]
    for key in gone:
        entry = state.entries[key]
        # A resource goes after those that use it: a volume before its schema, as the CLI deletes.
        users = tuple(other for other in gone if key in _state_depends_on(state.entries[other]))
        changes[key] = Change(key, "delete", resource_settings(entry), users, resource_id(entry))
    return list(changes.values())


def _state_depends_on(entry: Mapping[str, Any]) -> list[str]:
    return [str(dependency.get("node")) for dependency in entry.get("depends_on") or []]


def _change(
    key: str,
    settings: dict[str, Any],
    depends_on: tuple[str, ...],
    state: DeploymentState,
    remote: dict[str, Any] | None,
    planned: Mapping[str, Change],
    kind: ResourceKind,
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
    new, last_sent, remote = (
        _caseless(each, kind.caseless) for each in (with_ids(settings, ids), last_sent, remote)
    )
    fields = sorted(
        {name for name in {*new, *last_sent} if new.get(name) != last_sent.get(name)}
        | {
            name
            for name, value in last_sent.items()
            if name not in kind.ignore_remote and differs({name: value}, remote)
        }
    )
    if not fields:
        return Change(key, "skip", settings, depends_on, resource_id(entry))
    needs_new = not kind.updatable or any(
        _recreates(path, new, last_sent, remote, kind) for path in kind.recreate_on
    )
    return Change(
        key, "recreate" if needs_new else "update", settings, depends_on, resource_id(entry), tuple(fields)
    )


def _caseless(settings: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """`settings` with the names the service compares without case (Unity Catalog's) in lower case."""
    return {
        name: value.lower() if name in fields and isinstance(value, str) else value
        for name, value in settings.items()
    }


def _recreates(
    path: str,
    new: Mapping[str, Any],
    last_sent: Mapping[str, Any],
    remote: Mapping[str, Any],
    kind: ResourceKind,
) -> bool:
    """Whether a field the service cannot change in place changes: in the config since the last
    deploy, or on the server (drift) where the config sets it and the server answers it."""
    wanted = _get(new, path)
    if wanted != _get(last_sent, path):
        return True
    found = None if path.split(".")[0] in kind.ignore_remote else _get(remote, path)
    return wanted is not None and found is not None and found != wanted


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
