"""What config loading knows of every resource kind the Databricks CLI's bundle schema knows.

The kinds are the keys of the CLI's `config.Resources` (`bundle/config/resources.go`); the
defaults are the ones its initialize mutators set where the config leaves a field out
(`resourcemutator.applyInitializeMutators`); the permission levels are its
`ApplyBundlePermissions` table: how the bundle-wide `CAN_MANAGE`, `CAN_VIEW` and `CAN_RUN`
read on each kind that has permissions (a kind missing a level does not inherit that grant).
Jobs' and pipelines' own defaults live with their steps; these are the other kinds'.
"""

from __future__ import annotations

from typing import Any

KNOWN_KINDS = (
    "jobs",
    "job_runs",
    "pipelines",
    "models",
    "experiments",
    "model_serving_endpoints",
    "registered_models",
    "quality_monitors",
    "catalogs",
    "schemas",
    "external_locations",
    "clusters",
    "dashboards",
    "genie_spaces",
    "volumes",
    "apps",
    "alerts",
    "secret_scopes",
    "sql_warehouses",
    "database_instances",
    "database_catalogs",
    "synced_database_tables",
    "postgres_projects",
    "postgres_branches",
    "postgres_endpoints",
    "postgres_catalogs",
    "postgres_databases",
    "postgres_roles",
    "postgres_synced_tables",
    "postgres_snapshot_schedules",
    "vector_search_endpoints",
    "vector_search_indexes",
    "instance_pools",
    "secrets",
    "cluster_policies",
)

# Kinds the native engine deploys, in the order it takes them when nothing else orders them.
NATIVE_KINDS = (
    "jobs",
    "pipelines",
    "schemas",
    "volumes",
    "registered_models",
    "experiments",
    "secret_scopes",
    "clusters",
    "sql_warehouses",
    "dashboards",
    "model_serving_endpoints",
    "apps",
    "quality_monitors",
)

_MANAGE_VIEW_RUN = ("CAN_MANAGE", "CAN_VIEW", "CAN_RUN")


def _levels(*names: str) -> dict[str, str]:
    """The kind's levels for CAN_MANAGE, CAN_VIEW and CAN_RUN, in that order; "" where it has none."""
    return {bundle: own for bundle, own in zip(_MANAGE_VIEW_RUN, names, strict=False) if own}


PERMISSION_LEVELS: dict[str, dict[str, str]] = {
    "jobs": _levels("CAN_MANAGE", "CAN_VIEW", "CAN_MANAGE_RUN"),
    "pipelines": _levels("CAN_MANAGE", "CAN_VIEW", "CAN_RUN"),
    "experiments": _levels("CAN_MANAGE", "CAN_READ"),
    "models": _levels("CAN_MANAGE", "CAN_READ"),
    "model_serving_endpoints": _levels("CAN_MANAGE", "CAN_VIEW", "CAN_QUERY"),
    "dashboards": _levels("CAN_MANAGE", "CAN_READ"),
    "genie_spaces": _levels("CAN_MANAGE", "CAN_READ"),
    "apps": _levels("CAN_MANAGE", "CAN_USE"),
    "secret_scopes": _levels("MANAGE", "READ"),
    "alerts": _levels("CAN_MANAGE", "CAN_READ", "CAN_RUN"),
    "sql_warehouses": _levels("CAN_MANAGE", "CAN_VIEW", "CAN_MONITOR"),
    "database_instances": _levels("CAN_MANAGE", "CAN_USE"),
    "postgres_projects": _levels("CAN_MANAGE", "CAN_USE"),
    "clusters": _levels("CAN_MANAGE", "CAN_ATTACH_TO", "CAN_RESTART"),
    "vector_search_endpoints": _levels("CAN_MANAGE", "CAN_USE"),
    "instance_pools": _levels("CAN_MANAGE", "CAN_ATTACH_TO"),
}

# Kinds whose `grants` are Unity Catalog privileges rather than workspace permissions.
GRANT_KINDS = ("catalogs", "schemas", "external_locations", "volumes", "registered_models")

# Where a field is left out, the CLI sets it: (kind, dotted field, value). A value naming a
# `workspace.` field takes that field's value (dashboards go to the bundle's resource folder).
DEFAULTS: tuple[tuple[str, str, Any], ...] = (
    ("dashboards", "parent_path", "workspace.resource_path"),
    ("dashboards", "embed_credentials", False),
    ("genie_spaces", "parent_path", "workspace.resource_path"),
    ("alerts", "parent_path", "workspace.resource_path"),
    ("volumes", "volume_type", "MANAGED"),
    ("sql_warehouses", "auto_stop_mins", 120),
    ("sql_warehouses", "enable_photon", True),
    ("sql_warehouses", "max_num_clusters", 1),
    ("sql_warehouses", "spot_instance_policy", "COST_OPTIMIZED"),
    ("apps", "description", ""),
    ("clusters", "autotermination_minutes", 60),
    ("clusters", "workload_type.clients.notebooks", True),
    ("clusters", "workload_type.clients.jobs", True),
)

# Kinds whose `parent_path` the service reads back with the `/Workspace` prefix: the CLI adds
# it to the config too, so a deploy does not see a change on every read.
WORKSPACE_PREFIXED = ("dashboards", "genie_spaces")
