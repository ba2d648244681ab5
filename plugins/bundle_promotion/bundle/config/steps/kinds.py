"""Resource kinds: every kind the CLI knows is accepted and given the CLI's defaults; the native
engine refuses, at validate time, the kinds it does not deploy."""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.interpolation import REFERENCE
from bundle_promotion.bundle.config.located_yaml import source_of
from bundle_promotion.bundle.config.resource_kinds import (
    DEFAULTS,
    KNOWN_KINDS,
    NATIVE_KINDS,
    WORKSPACE_PREFIXED,
)
from bundle_promotion.bundle.config.steps.loading import Loading, resources_of
from bundle_promotion.errors import InvalidBundle

_WORKSPACE = "/Workspace"
# Kinds whose name field takes the preset prefix as written.
_PREFIXED = (
    ("models", "name"),
    ("clusters", "cluster_name"),
    ("dashboards", "display_name"),
    ("genie_spaces", "title"),
    ("alerts", "display_name"),
    ("sql_warehouses", "name"),
)
# Kinds whose names must be identifiers: the prefix is normalized (`dev_jane_doe_`).
_NORMALIZED_PREFIX = ("model_serving_endpoints", "registered_models", "schemas")


def check_kinds(loading: Loading) -> None:
    """A kind the CLI's schema does not know (a typo, say) is an error naming it."""
    for kind in loading.tree.get("resources") or {}:
        if kind not in KNOWN_KINDS:
            raise loading.error(
                f"resources.{kind}",
                f"unknown resource kind {kind}; the Databricks CLI knows {', '.join(sorted(KNOWN_KINDS))}",
            )


def apply_kind_defaults(loading: Loading) -> None:
    """The CLI's defaults and fix-ups of the kinds beside jobs and pipelines, where the config is silent."""
    for kind, dotted, value in DEFAULTS:
        if isinstance(value, str) and value.startswith("workspace."):
            value = loading.tree["workspace"][value.removeprefix("workspace.")]
        for resource in resources_of(loading.tree, kind).values():
            _set_default(resource, dotted.split("."), value)
    for kind in WORKSPACE_PREFIXED:
        for resource in resources_of(loading.tree, kind).values():
            resource["parent_path"] = _with_workspace_prefix(str(resource["parent_path"]))
    for key, dashboard in resources_of(loading.tree, "dashboards").items():
        _read_serialized_dashboard(loading, key, dashboard)
    for volume in resources_of(loading.tree, "volumes").values():
        _set_volume_path(volume)
    for key, endpoint in resources_of(loading.tree, "model_serving_endpoints").items():
        _served_models_as_entities(loading, key, endpoint)
    for key, app in resources_of(loading.tree, "apps").items():
        _translate_app_source(loading, key, app)


def capture_uc_dependencies(loading: Loading) -> None:
    """A catalog or schema the bundle defines, named literally by another resource, becomes a
    `${resources.catalogs|schemas.<key>.name}` reference, as the CLI's `CaptureUCDependencies`
    writes it: the deploy then orders the two, and the schema's preset prefix reaches its users."""
    tree = loading.tree
    schemas = {
        (str(schema.get("catalog_name")), str(schema.get("name"))): key
        for key, schema in resources_of(tree, "schemas").items()
    }
    catalogs = {str(catalog.get("name")): key for key, catalog in resources_of(tree, "catalogs").items()}

    def capture(resource: Any, catalog_field: str, *schema_fields: str) -> None:
        if not isinstance(resource, dict) or catalog_field not in resource:
            return
        catalog = str(resource[catalog_field])
        for field in schema_fields:
            if field in resource and (catalog, str(resource[field])) in schemas:
                resource[field] = f"${{resources.schemas.{schemas[catalog, str(resource[field])]}.name}}"
        if catalog in catalogs:
            resource[catalog_field] = f"${{resources.catalogs.{catalogs[catalog]}.name}}"

    def capture_dotted(resource: dict[str, Any], field: str, parts: int) -> None:
        """A `catalog.schema[.name]` field, left alone when it already holds a reference."""
        names = str(resource.get(field, "")).split(".")
        if field not in resource or "${" in str(resource[field]) or len(names) != parts:
            return
        split = {"catalog_name": names[0], "schema_name": names[1]}
        capture(split, "catalog_name", "schema_name")
        resource[field] = ".".join([split["catalog_name"], split["schema_name"], *names[2:]])

    for kind in ("volumes", "registered_models", "secrets"):
        for resource in resources_of(tree, kind).values():
            capture(resource, "catalog_name", "schema_name")
    for pipeline in resources_of(tree, "pipelines").values():
        capture(pipeline, "catalog", "schema", "target")
    for monitor in resources_of(tree, "quality_monitors").values():
        capture_dotted(monitor, "output_schema_name", 2)
    for index in resources_of(tree, "vector_search_indexes").values():
        capture_dotted(index, "name", 3)
    for endpoint in resources_of(tree, "model_serving_endpoints").values():
        gateway, config = _mapping(endpoint.get("ai_gateway")), _mapping(endpoint.get("config"))
        capture(gateway.get("inference_table_config"), "catalog_name", "schema_name")
        capture(config.get("auto_capture_config"), "catalog_name", "schema_name")
    for schema in resources_of(tree, "schemas").values():  # last: the lookups above match their catalogs
        capture(schema, "catalog_name")


def apply_kind_presets(loading: Loading) -> None:
    """The presets on the kinds beside jobs and pipelines, as the CLI's `ApplyPresets`: the name
    prefix (normalized where names must be identifiers), the tags where a kind has them, and
    no quality monitor schedule while triggers are paused."""
    presets = loading.tree.get("presets") or {}
    prefix = str(presets.get("name_prefix") or "")
    tags = sorted((presets.get("tags") or {}).items())
    for kind, field in _PREFIXED:
        for resource in resources_of(loading.tree, kind).values():
            if field in resource:
                resource[field] = prefix + str(resource[field])
    skip_schemas = (loading.tree.get("experimental") or {}).get("skip_name_prefix_for_schema") is True
    for kind in _NORMALIZED_PREFIX:
        if kind == "schemas" and skip_schemas:
            continue
        for resource in resources_of(loading.tree, kind).values():
            if "name" in resource:
                resource["name"] = identifier_prefix(prefix) + str(resource["name"])
    for experiment in resources_of(loading.tree, "experiments").values():
        if "name" in experiment:
            folder, base = posixpath.split(str(experiment["name"]))
            experiment["name"] = posixpath.join(folder, prefix + base)
    for kind in ("models", "experiments"):
        for resource in resources_of(loading.tree, kind).values():
            _add_tags(resource, tags, "tags", as_pairs=True)
    for cluster in resources_of(loading.tree, "clusters").values():
        _add_tags(cluster, tags, "custom_tags", as_pairs=False)
    for warehouse in resources_of(loading.tree, "sql_warehouses").values():
        if tags and isinstance(warehouse.setdefault("tags", {}), dict):
            _add_tags(warehouse["tags"], tags, "custom_tags", as_pairs=True)
    if presets.get("trigger_pause_status") == "PAUSED":
        for monitor in resources_of(loading.tree, "quality_monitors").values():
            schedule = monitor.get("schedule")
            if isinstance(schedule, dict) and schedule.get("pause_status") != "UNPAUSED":
                del monitor["schedule"]


def identifier_prefix(prefix: str) -> str:
    """`[dev jane_doe] ` as `dev_jane_doe_`: the prefix of names that must be identifiers."""
    trimmed = prefix.replace("[", "").strip()
    normalized = re.sub(r"\W", "_", trimmed.removesuffix("]").lower())
    return normalized + ("_" if trimmed.endswith("]") else "")


def _add_tags(resource: dict[str, Any], tags: list[tuple[str, str]], field: str, *, as_pairs: bool) -> None:
    """Each preset tag the resource does not set itself; a list of `{key, value}` or a map."""
    if not tags or not isinstance(resource, dict):
        return
    existing = resource.setdefault(field, [] if as_pairs else {})
    if as_pairs and isinstance(existing, list):
        known = {pair.get("key") for pair in existing if isinstance(pair, dict)}
        existing += [{"key": key, "value": value} for key, value in tags if key not in known]
    elif not as_pairs and isinstance(existing, dict):
        for key, value in tags:
            existing.setdefault(key, value)


def reject_undeployable(loading: Loading) -> None:
    """With the native engine, a kind it does not deploy fails validation, one error per resource.

    The same bundle with `engine: cli` validates: the Databricks CLI deploys every kind.
    """
    if loading.engine != "native":
        return
    errors = [
        loading.error(
            f"resources.{kind}.{key}",
            f"resource kind {kind} ({key}) is not deployed by the native engine, which deploys "
            f"{', '.join(NATIVE_KINDS)}; deploy this bundle with `engine: cli`, or remove the resource",
        )
        for kind in loading.tree.get("resources") or {}
        if kind not in NATIVE_KINDS
        for key in resources_of(loading.tree, kind)
    ]
    if errors:
        raise errors[0] if len(errors) == 1 else InvalidBundle(errors)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _set_default(resource: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        inner = resource.setdefault(part, {})
        if not isinstance(inner, dict):
            return  # a value of another kind is the workspace's to judge
        resource = inner
    if resource.get(path[-1]) is None:  # left out, or left empty
        resource[path[-1]] = value


def _with_workspace_prefix(path: str) -> str:
    if path == _WORKSPACE or path.startswith(f"{_WORKSPACE}/"):
        return path
    return posixpath.join(_WORKSPACE, path.lstrip("/"))


def _read_serialized_dashboard(loading: Loading, key: str, dashboard: dict[str, Any]) -> None:
    """A dashboard's `file_path` (a `.lvdash.json` of the bundle) becomes its `serialized_dashboard`."""
    local = dashboard.pop("file_path", None)
    if local is None or "serialized_dashboard" in dashboard:
        return
    declared_in = source_of(local, loading.root_file)
    path = Path(declared_in.parent / str(local))
    if not path.is_file():
        raise loading.error(
            f"resources.dashboards.{key}.file_path", f"dashboard file {local} not found", declared_in
        )
    dashboard["serialized_dashboard"] = path.read_text(encoding="utf-8")


def _translate_app_source(loading: Loading, key: str, app: dict[str, Any]) -> None:
    """An app's local `source_code_path` becomes its uploaded copy under `workspace.file_path`."""
    local = app.get("source_code_path")
    if not isinstance(local, str) or not local or local.startswith("/"):
        return
    declared_in = source_of(local, loading.root_file)
    folder = Path(os.path.normpath(declared_in.parent / local))
    if not folder.is_relative_to(loading.bundle_dir) or not folder.is_dir():
        raise loading.error(
            f"resources.apps.{key}.source_code_path",
            f"{local} is not a folder of the bundle {loading.bundle_dir}",
            declared_in,
        )
    relative = folder.relative_to(loading.bundle_dir).as_posix()
    app["source_code_path"] = loading.tree["workspace"]["file_path"] + (
        "" if relative == "." else f"/{relative}"
    )


def _set_volume_path(volume: dict[str, Any]) -> None:
    """`/Volumes/<catalog>/<schema>/<name>`, read-only, as the CLI computes it; references stay in."""
    parts = [volume.get(field) for field in ("catalog_name", "schema_name", "name")]
    if all(isinstance(part, str) and part and _whole_or_no_reference(part) for part in parts):
        volume["volume_path"] = "/Volumes/" + "/".join(str(part) for part in parts)


def _whole_or_no_reference(text: str) -> bool:
    return "${" not in text or REFERENCE.fullmatch(text) is not None


def _served_models_as_entities(loading: Loading, key: str, endpoint: dict[str, Any]) -> None:
    """The deprecated `served_models` become `served_entities`, as the CLI converts them."""
    config = endpoint.get("config")
    if not isinstance(config, dict) or not config.get("served_models"):
        return
    if not all(isinstance(model, dict) for model in config["served_models"]):
        return  # not a list of models: the workspace's to judge
    if config.get("served_entities"):
        raise loading.error(
            f"resources.model_serving_endpoints.{key}.config",
            "cannot use both served_models and served_entities; keep served_entities",
        )
    config["served_entities"] = [_served_entity(model) for model in config.pop("served_models")]


def _served_entity(model: dict[str, Any]) -> dict[str, Any]:
    renamed = {"model_name": "entity_name", "model_version": "entity_version"}
    return {renamed.get(field, field): value for field, value in model.items()}
