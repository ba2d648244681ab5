"""The kinds the native engine deploys beside jobs and pipelines, one `RestKind` each.

Paths are the Databricks REST API's (the SDK's services: catalog, ml, workspace, compute,
sql, dashboards, serving, apps); recreate rules are the CLI's direct engine's
(`bundle/direct/dresources/configs/<kind>.yml`: `id` and `immutable` fields).
In the order the engine takes them when no reference orders them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bundle_promotion.bundle.resources.rest import (
    Endpoint,
    RestKind,
    Settings,
    full_name,
    is_missing,
    listed,
    sent_as,
)
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi

_UC = "2.1/unity-catalog"
# Config fields every kind may carry that become resources of their own.
_OWN_RESOURCES = ("permissions", "grants")


def _explore(full: str) -> str:
    return "explore/data/" + full.replace(".", "/")


def _uc_kind(name: str, collection: str, natural_id: tuple[str, ...], **spec: Any) -> RestKind:
    """A Unity Catalog securable, addressed by its full name."""
    item = f"{_UC}/{collection}/{{id}}"
    return RestKind(
        name=name,
        create=Endpoint("POST", f"{_UC}/{collection}"),
        read=Endpoint("GET", item),
        update=Endpoint("PATCH", item),
        delete=Endpoint("DELETE", item),
        id_field="full_name",
        natural_id=full_name(*natural_id),
        caseless=natural_id,
        url=_explore,
        **spec,
    )


def _read_scope(api: WorkspaceApi, name: str) -> dict[str, Any] | None:
    """Secret scopes have no get: the list holds each as `{name, backend_type, keyvault_metadata}`."""
    scopes = api.call("GET", "2.0/secrets/scopes/list").get("scopes") or []
    return next((dict(scope) for scope in scopes if scope.get("name") == name), None)


def _experiment_named(api: WorkspaceApi, settings: Settings) -> list[str]:
    """Experiment names are unique in a workspace: the one of this name, unless deleted."""
    query = {"experiment_name": str(settings.get("name", ""))}
    try:
        answer = api.call("GET", "2.0/mlflow/experiments/get-by-name", query=query)
    except WorkspaceApiError as error:
        if is_missing(error):
            return []
        raise
    experiment = answer.get("experiment") or {}
    return [] if experiment.get("lifecycle_stage") == "deleted" else [str(experiment["experiment_id"])]


def _same_name(field: str) -> Callable[[Settings, Mapping[str, Any]], bool]:
    def matches(settings: Settings, item: Mapping[str, Any]) -> bool:
        return bool(item.get(field) == settings.get(field))

    return matches


def _dashboard_at_its_path(settings: Settings, item: Mapping[str, Any]) -> bool:
    """A dashboard's path is unique: `<parent_path>/<display_name>.lvdash.json`."""
    path = f"{settings.get('parent_path')}/{settings.get('display_name')}.lvdash.json"
    return item.get("path") == path and item.get("lifecycle_state") != "TRASHED"


def _publish_dashboard(api: WorkspaceApi, dashboard_id: str, settings: Settings) -> None:
    """A bundle's dashboard is published after each write, with its `embed_credentials`."""
    body = {"embed_credentials": bool(settings.get("embed_credentials"))}
    if settings.get("warehouse_id"):
        body["warehouse_id"] = settings["warehouse_id"]
    api.call("POST", f"2.0/lakeview/dashboards/{dashboard_id}/published", body=body)


def _deploy_app_source(api: WorkspaceApi, name: str, settings: Settings) -> None:
    """An app with `source_code_path` gets a snapshot deployment of it after each write."""
    if settings.get("source_code_path"):
        body = {"source_code_path": settings["source_code_path"], "mode": "SNAPSHOT"}
        api.call("POST", f"2.0/apps/{name}/deployments", body=body, idempotent=False)


def _update_endpoint(api: WorkspaceApi, name: str, settings: dict[str, Any]) -> None:
    """An endpoint's served entities and traffic go to `/config`; its tags, added and removed, to `/tags`."""
    api.call("PUT", f"2.0/serving-endpoints/{name}/config", body=dict(settings.get("config") or {}))
    wanted = {tag["key"]: tag.get("value") for tag in settings.get("tags") or []}
    held = {tag["key"] for tag in api.call("GET", f"2.0/serving-endpoints/{name}").get("tags") or []}
    if wanted or held - wanted.keys():
        body = {
            "add_tags": [{"key": key, "value": value} for key, value in sorted(wanted.items())],
            "delete_keys": sorted(held - wanted.keys()),
        }
        api.call("PATCH", f"2.0/serving-endpoints/{name}/tags", body=body)


SCHEMAS = _uc_kind(
    "schemas",
    "schemas",
    ("catalog_name", "name"),
    recreate_on=("catalog_name", "name", "storage_root"),
    not_sent=_OWN_RESOURCES,
    update_body=sent_as({}, only=("comment", "properties", "enable_predictive_optimization")),
)
VOLUMES = _uc_kind(
    "volumes",
    "volumes",
    ("catalog_name", "schema_name", "name"),
    recreate_on=("catalog_name", "schema_name", "storage_location", "volume_type"),
    not_sent=(*_OWN_RESOURCES, "volume_path"),
    # A new name renames the volume in place (its data stays); its full name, the id, changes.
    update_body=sent_as({"name": "new_name"}, only=("comment", "name")),
)
REGISTERED_MODELS = _uc_kind(
    "registered_models",
    "models",
    ("catalog_name", "schema_name", "name"),
    recreate_on=("catalog_name", "schema_name", "name", "storage_location"),
    not_sent=(*_OWN_RESOURCES, "aliases"),
    update_body=sent_as({}, only=("comment",)),
)
EXPERIMENTS = RestKind(
    name="experiments",
    create=Endpoint("POST", "2.0/mlflow/experiments/create"),
    read=Endpoint("GET", "2.0/mlflow/experiments/get", id_param="experiment_id"),
    update=Endpoint("POST", "2.0/mlflow/experiments/update", id_param="experiment_id"),
    delete=Endpoint("POST", "2.0/mlflow/experiments/delete", id_param="experiment_id"),
    id_field="experiment_id",
    recreate_on=("artifact_location",),
    not_sent=_OWN_RESOURCES,
    ignore_remote=("tags",),  # the service adds its own; the CLI leaves tags to their first deploy
    update_body=sent_as({"name": "new_name"}, only=("name",)),
    read_key="experiment",
    gone_when={"lifecycle_stage": "deleted"},
    lookup=_experiment_named,
    url=lambda experiment_id: f"ml/experiments/{experiment_id}",
)
SECRET_SCOPES = RestKind(
    name="secret_scopes",
    create=Endpoint("POST", "2.0/secrets/scopes/create"),
    read=_read_scope,
    update=None,
    delete=Endpoint("POST", "2.0/secrets/scopes/delete", id_param="scope"),
    id_field="name",
    recreate_on=("name", "backend_type", "keyvault_metadata"),
    not_sent=_OWN_RESOURCES,
    create_body=sent_as(
        {"name": "scope", "backend_type": "scope_backend_type", "keyvault_metadata": "backend_azure_keyvault"}
    ),
    natural_id=lambda settings: str(settings.get("name", "")),
)
CLUSTERS = RestKind(
    name="clusters",
    create=Endpoint("POST", "2.1/clusters/create"),
    read=Endpoint("GET", "2.1/clusters/get", id_param="cluster_id"),
    update=Endpoint("POST", "2.1/clusters/edit", id_param="cluster_id"),
    delete=Endpoint("POST", "2.1/clusters/permanent-delete", id_param="cluster_id"),
    id_field="cluster_id",
    not_sent=(*_OWN_RESOURCES, "lifecycle"),
    lookup=listed("2.1/clusters/list", "clusters", "cluster_id", _same_name("cluster_name")),
    url=lambda cluster_id: f"compute/clusters/{cluster_id}",
)
SQL_WAREHOUSES = RestKind(
    name="sql_warehouses",
    create=Endpoint("POST", "2.0/sql/warehouses"),
    read=Endpoint("GET", "2.0/sql/warehouses/{id}"),
    update=Endpoint("POST", "2.0/sql/warehouses/{id}/edit"),
    delete=Endpoint("DELETE", "2.0/sql/warehouses/{id}"),
    id_field="id",
    not_sent=(*_OWN_RESOURCES, "lifecycle"),
    ignore_remote=("channel", "tags", "warehouse_type", "min_num_clusters"),
    lookup=listed("2.0/sql/warehouses", "warehouses", "id", _same_name("name")),
    url=lambda warehouse_id: f"sql/warehouses/{warehouse_id}",
)
DASHBOARDS = RestKind(
    name="dashboards",
    create=Endpoint("POST", "2.0/lakeview/dashboards"),
    read=Endpoint("GET", "2.0/lakeview/dashboards/{id}"),
    update=Endpoint("PATCH", "2.0/lakeview/dashboards/{id}"),
    delete=Endpoint("DELETE", "2.0/lakeview/dashboards/{id}"),
    id_field="dashboard_id",
    not_sent=(*_OWN_RESOURCES, "embed_credentials", "dataset_catalog", "dataset_schema"),
    # The service re-serializes the dashboard it stores; the CLI compares its etag instead.
    ignore_remote=("serialized_dashboard",),
    gone_when={"lifecycle_state": "TRASHED"},
    lookup=listed("2.0/lakeview/dashboards", "dashboards", "dashboard_id", _dashboard_at_its_path),
    url=lambda dashboard_id: f"dashboardsv3/{dashboard_id}/published",
    after_write=_publish_dashboard,
)
MODEL_SERVING_ENDPOINTS = RestKind(
    name="model_serving_endpoints",
    create=Endpoint("POST", "2.0/serving-endpoints"),
    read=Endpoint("GET", "2.0/serving-endpoints/{id}"),
    update=_update_endpoint,
    delete=Endpoint("DELETE", "2.0/serving-endpoints/{id}"),
    id_field="name",
    recreate_on=(
        "name",
        "description",
        "route_optimized",
        "config.auto_capture_config.catalog_name",
        "config.auto_capture_config.schema_name",
        "config.auto_capture_config.table_name_prefix",
    ),
    not_sent=_OWN_RESOURCES,
    ignore_remote=("rate_limits", "budget_policy_id"),
    natural_id=lambda settings: str(settings.get("name", "")),
    url=lambda name: f"ml/endpoints/{name}",
)
APPS = RestKind(
    name="apps",
    create=Endpoint("POST", "2.0/apps"),
    read=Endpoint("GET", "2.0/apps/{id}"),
    update=Endpoint("PATCH", "2.0/apps/{id}"),
    delete=Endpoint("DELETE", "2.0/apps/{id}"),
    id_field="name",
    recreate_on=("name",),
    not_sent=(*_OWN_RESOURCES, "source_code_path", "config", "lifecycle"),
    natural_id=lambda settings: str(settings.get("name", "")),
    url=lambda name: f"apps/{name}",
    after_write=_deploy_app_source,
)
QUALITY_MONITORS = RestKind(
    name="quality_monitors",
    create=Endpoint("POST", f"{_UC}/tables/{{table_name}}/monitor"),
    read=Endpoint("GET", f"{_UC}/tables/{{id}}/monitor"),
    update=Endpoint("PUT", f"{_UC}/tables/{{id}}/monitor"),
    delete=Endpoint("DELETE", f"{_UC}/tables/{{id}}/monitor"),
    id_field="table_name",
    recreate_on=("table_name", "assets_dir"),
    not_sent=(*_OWN_RESOURCES, "table_name"),
    update_body=sent_as({}, without=("assets_dir",)),
    natural_id=lambda settings: str(settings.get("table_name", "")),
    url=_explore,
)

REST_KINDS: tuple[RestKind, ...] = (
    SCHEMAS,
    VOLUMES,
    REGISTERED_MODELS,
    EXPERIMENTS,
    SECRET_SCOPES,
    CLUSTERS,
    SQL_WAREHOUSES,
    DASHBOARDS,
    MODEL_SERVING_ENDPOINTS,
    APPS,
    QUALITY_MONITORS,
)
