"""Variables' `lookup`: a workspace object named in the config, resolved to its id.

    variables:
      warehouse_id:
        lookup: {warehouse: "Shared warehouse"}

Each kind is read from its list endpoint and matched by name; no match, or more
than one, is an error naming the kind and the name, as in the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bundle_promotion.bundle.config.steps import Lookup
from bundle_promotion.errors import BundleConfigError
from bundle_promotion.workspace.api import WorkspaceApi


@dataclass(frozen=True)
class _ListedKind:
    path: str
    items: str  # the answer's field holding the list
    name: str  # each item's name field, dotted for nested fields
    id: str
    query: tuple[tuple[str, str], ...] = ()  # fixed query parameters; `{name}` is the looked-up name


_KINDS = {
    "job": _ListedKind("2.2/jobs/list", "jobs", "settings.name", "job_id", (("name", "{name}"),)),
    "pipeline": _ListedKind(
        "2.0/pipelines", "statuses", "name", "pipeline_id", (("filter", "name LIKE '{name}'"),)
    ),
    "cluster": _ListedKind("2.1/clusters/list", "clusters", "cluster_name", "cluster_id"),
    "cluster_policy": _ListedKind("2.0/policies/clusters/list", "policies", "name", "policy_id"),
    "instance_pool": _ListedKind(
        "2.0/instance-pools/list", "instance_pools", "instance_pool_name", "instance_pool_id"
    ),
    "warehouse": _ListedKind("2.0/sql/warehouses", "warehouses", "name", "id"),
    "metastore": _ListedKind("2.1/unity-catalog/metastores", "metastores", "name", "metastore_id"),
    "service_principal": _ListedKind(
        "2.0/preview/scim/v2/ServicePrincipals",
        "Resources",
        "displayName",
        "applicationId",
        (("filter", 'displayName eq "{name}"'),),
    ),
}
LOOKUP_KINDS = tuple(sorted(_KINDS))


def api_lookup(api: WorkspaceApi) -> Lookup:
    """A `Lookup` that asks the workspace behind `api`."""

    def lookup(kind: str, name: str) -> str:
        listed = _KINDS.get(kind)
        if listed is None:
            raise BundleConfigError(
                "variables", "lookup", f"unknown lookup kind {kind}; use one of {', '.join(LOOKUP_KINDS)}"
            )
        query = {key: value.format(name=name) for key, value in listed.query}
        answer = api.call("GET", listed.path, query=query or None)
        ids = [
            str(item[listed.id])
            for item in answer.get(listed.items) or []
            if _field(item, listed.name) == name
        ]
        if len(ids) != 1:
            found = "no" if not ids else f"{len(ids)}"
            raise BundleConfigError(
                "variables",
                "lookup",
                f"failed to resolve {kind}: {name}: {found} {kind} named {name!r} exists",
            )
        return ids[0]

    return lookup


def _field(item: dict[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
