"""The emulator's REST endpoints for the resources bundles deploy beside jobs and pipelines.

Paths and answers follow the Databricks REST API: Unity Catalog schemas, volumes, grants and
quality monitors under `/api/2.1/unity-catalog`, MLflow experiments, secret scopes and ACLs,
clusters (2.1), SQL warehouses, Lakeview dashboards, serving endpoints and apps. Their state
lives in `workspace_objects`; `workspace_app.create_app` mounts `objects_api` under `/api`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bundle_promotion.testing.workspace_objects import WorkspaceObjects
from bundle_promotion.testing.workspace_protocol import ApiError, invalid_parameter
from bundle_promotion.testing.workspace_requests import Body, RequestParams, Workspace

objects_api = APIRouter()
_UC = "/2.1/unity-catalog"


def _item_routes(path: str, kind: str, *, update: str | None = None, delete: bool = True) -> None:
    """`GET` of one object of `kind` at `<path>/{id}`; with them, its update (`update` is the
    method) and its `DELETE`."""
    item = path + "/{object_id}"

    async def get_one(workspace: Workspace, object_id: str) -> dict[str, Any]:
        return workspace.objects[kind].get(object_id)

    async def update_one(workspace: Workspace, object_id: str, body: Body) -> dict[str, Any]:
        return workspace.objects[kind].update(object_id, body)

    async def delete_one(workspace: Workspace, object_id: str) -> dict[str, Any]:
        workspace.objects[kind].delete(object_id)
        return {}

    objects_api.add_api_route(item, get_one, methods=["GET"])
    if update:
        objects_api.add_api_route(item, update_one, methods=[update])
    if delete:
        objects_api.add_api_route(item, delete_one, methods=["DELETE"])


def _listed(field: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A list answer: the items under `field`, left out when there are none, as the services answer."""
    return {field: items} if items else {}


def _required(body: dict[str, Any], *names: str) -> list[str]:
    values = [body.get(name) for name in names]
    if not all(isinstance(value, str) and value for value in values):
        raise invalid_parameter(f"{', '.join(names)} are required.")
    return [str(value) for value in values]


# --- Unity Catalog: schemas, volumes, grants, quality monitors ----------------------------------


@objects_api.post(f"{_UC}/schemas")
async def create_schema(workspace: Workspace, body: Body) -> dict[str, Any]:
    catalog, name = (part.lower() for part in _required(body, "catalog_name", "name"))
    fields = {**body, "catalog_name": catalog, "name": name, "full_name": f"{catalog}.{name}"}
    return workspace.objects["schemas"].create(fields["full_name"], {**fields, **workspace.objects.created()})


@objects_api.post(f"{_UC}/volumes")
async def create_volume(workspace: Workspace, body: Body) -> dict[str, Any]:
    catalog, schema, name = _required(body, "catalog_name", "schema_name", "name")
    full = f"{catalog}.{schema}.{name}"
    fields = {**body, "full_name": full, "volume_id": workspace.objects.new_hex_id()}
    return workspace.objects["volumes"].create(full, {**fields, **workspace.objects.created()})


@objects_api.get(_UC + "/{collection}/{full_name}")
async def get_securable(workspace: Workspace, collection: str, full_name: str) -> dict[str, Any]:
    return _securables(workspace.objects, collection).get(full_name)


@objects_api.patch(_UC + "/{collection}/{full_name}")
async def update_securable(
    workspace: Workspace, collection: str, full_name: str, body: Body
) -> dict[str, Any]:
    if collection == "models":
        model = workspace.models.get(full_name)
        model.comment = body.get("comment", model.comment)
        return model.to_api()
    store = _securables(workspace.objects, collection)
    new_name = body.pop("new_name", None)
    renamed = f"{full_name.rsplit('.', 1)[0]}.{new_name}" if new_name else None
    changes = {**body, **({"name": new_name, "full_name": renamed} if renamed else {})}
    return store.update(full_name, changes, renamed)


@objects_api.delete(_UC + "/{collection}/{full_name}")
async def delete_securable(workspace: Workspace, collection: str, full_name: str) -> dict[str, Any]:
    store = _securables(workspace.objects, collection)
    if collection == "schemas" and _holds_volumes(workspace.objects, full_name):
        raise ApiError(400, "SCHEMA_NOT_EMPTY", f"Schema '{full_name}' is not empty.")
    store.delete(full_name)
    return {}


def _holds_volumes(objects: WorkspaceObjects, schema: str) -> bool:
    return any(
        f"{volume['catalog_name']}.{volume['schema_name']}".lower() == schema.lower()
        for volume in objects["volumes"].all()
    )


def _securables(objects: WorkspaceObjects, collection: str) -> Any:
    if collection not in ("schemas", "volumes"):
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for {collection}")
    return objects[collection]


_SECURABLES = {"schema": "schemas", "volume": "volumes"}


@objects_api.get(_UC + "/permissions/{securable_type}/{full_name}")
async def get_grants(workspace: Workspace, securable_type: str, full_name: str) -> dict[str, Any]:
    grants = _grants_of(workspace, securable_type, full_name)
    assignments = [
        {"principal": principal, "privileges": sorted(privileges)}
        for principal, privileges in sorted(grants.items())
        if privileges
    ]
    return {"privilege_assignments": assignments} if assignments else {}


@objects_api.patch(_UC + "/permissions/{securable_type}/{full_name}")
async def update_grants(
    workspace: Workspace, securable_type: str, full_name: str, body: Body
) -> dict[str, Any]:
    grants = _grants_of(workspace, securable_type, full_name)
    for change in body.get("changes") or []:
        held = grants.setdefault(str(change["principal"]), set())
        held.update(change.get("add") or [])
        held.difference_update(change.get("remove") or [])
    return await get_grants(workspace, securable_type, full_name)


def _grants_of(workspace: Any, securable_type: str, full_name: str) -> dict[str, set[str]]:
    """The grants of a securable that exists (else 404), by principal."""
    if securable_type == "registered-model":
        workspace.models.get(full_name)
    elif securable_type in _SECURABLES:
        workspace.objects[_SECURABLES[securable_type]].get(full_name)
    else:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No grants API for {securable_type}")
    grants: dict[str, set[str]] = workspace.objects.grants.setdefault((securable_type, full_name.lower()), {})
    return grants


@objects_api.post(_UC + "/tables/{table_name}/monitor")
async def create_monitor(workspace: Workspace, table_name: str, body: Body) -> dict[str, Any]:
    fields = {**body, "table_name": table_name, "status": "MONITOR_STATUS_ACTIVE"}
    return workspace.objects["quality_monitors"].create(table_name, fields)


@objects_api.get(_UC + "/tables/{table_name}/monitor")
async def get_monitor(workspace: Workspace, table_name: str) -> dict[str, Any]:
    return workspace.objects["quality_monitors"].get(table_name)


@objects_api.put(_UC + "/tables/{table_name}/monitor")
async def update_monitor(workspace: Workspace, table_name: str, body: Body) -> dict[str, Any]:
    return workspace.objects["quality_monitors"].update(table_name, body)


@objects_api.delete(_UC + "/tables/{table_name}/monitor")
async def delete_monitor(workspace: Workspace, table_name: str) -> dict[str, Any]:
    workspace.objects["quality_monitors"].delete(table_name)
    return {}


# --- MLflow experiments --------------------------------------------------------------------------


@objects_api.post("/2.0/mlflow/experiments/create")
async def create_experiment(workspace: Workspace, body: Body) -> dict[str, Any]:
    (name,) = _required(body, "name")
    store = workspace.objects["experiments"]
    if store.find("name", name) is not None:
        raise ApiError(400, "RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    experiment_id = workspace.objects.new_id()
    artifacts = body.get("artifact_location") or f"dbfs:/databricks/mlflow-tracking/{experiment_id}"
    store.create(
        experiment_id,
        {**body, "experiment_id": experiment_id, "artifact_location": artifacts, "lifecycle_stage": "active"},
    )
    return {"experiment_id": experiment_id}


@objects_api.get("/2.0/mlflow/experiments/get")
async def get_experiment(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    return {"experiment": workspace.objects["experiments"].get(params.text("experiment_id") or "")}


@objects_api.get("/2.0/mlflow/experiments/get-by-name")
async def get_experiment_by_name(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    name = params.text("experiment_name")
    found = workspace.objects["experiments"].find("name", name)
    if found is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name {name}")
    return {"experiment": found}


@objects_api.post("/2.0/mlflow/experiments/update")
async def update_experiment(workspace: Workspace, body: Body) -> dict[str, Any]:
    workspace.objects["experiments"].update(str(body.get("experiment_id")), {"name": body.get("new_name")})
    return {}


@objects_api.post("/2.0/mlflow/experiments/delete")
async def delete_experiment(workspace: Workspace, body: Body) -> dict[str, Any]:
    workspace.objects["experiments"].delete(str(body.get("experiment_id")))
    return {}


# --- Secret scopes and their ACLs ---------------------------------------------------------------


@objects_api.post("/2.0/secrets/scopes/create")
async def create_scope(workspace: Workspace, body: Body) -> dict[str, Any]:
    (scope,) = _required(body, "scope")
    backend = body.get("scope_backend_type") or "DATABRICKS"
    workspace.objects["secret_scopes"].create(scope, {"name": scope, "backend_type": backend})
    workspace.objects.secret_acls[scope] = {workspace.user_name: "MANAGE"}  # the creator manages it
    return {}


@objects_api.get("/2.0/secrets/scopes/list")
async def list_scopes(workspace: Workspace) -> dict[str, Any]:
    scopes = workspace.objects["secret_scopes"].all()
    return {"scopes": scopes} if scopes else {}


@objects_api.post("/2.0/secrets/scopes/delete")
async def delete_scope(workspace: Workspace, body: Body) -> dict[str, Any]:
    workspace.objects["secret_scopes"].delete(str(body.get("scope")))
    workspace.objects.secret_acls.pop(str(body.get("scope")), None)
    return {}


@objects_api.post("/2.0/secrets/acls/put")
async def put_acl(workspace: Workspace, body: Body) -> dict[str, Any]:
    scope, principal, permission = _required(body, "scope", "principal", "permission")
    if permission not in ("READ", "WRITE", "MANAGE"):
        raise invalid_parameter(f"Invalid permission {permission}")
    workspace.objects["secret_scopes"].get(scope)
    workspace.objects.secret_acls.setdefault(scope, {})[principal] = permission
    return {}


@objects_api.get("/2.0/secrets/acls/list")
async def list_acls(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    scope = params.text("scope") or ""
    workspace.objects["secret_scopes"].get(scope)
    acls = workspace.objects.secret_acls.get(scope, {})
    return {"items": [{"principal": name, "permission": level} for name, level in sorted(acls.items())]}


@objects_api.post("/2.0/secrets/acls/delete")
async def delete_acl(workspace: Workspace, body: Body) -> dict[str, Any]:
    scope, principal = _required(body, "scope", "principal")
    workspace.objects["secret_scopes"].get(scope)
    workspace.objects.secret_acls.get(scope, {}).pop(principal, None)
    return {}


# --- Clusters and SQL warehouses ----------------------------------------------------------------


@objects_api.post("/2.1/clusters/create")
async def create_cluster(workspace: Workspace, body: Body) -> dict[str, Any]:
    cluster_id = f"{workspace.objects.ids.next() % 10**4:04d}-{workspace.objects.new_hex_id()[-8:]}"
    fields = {**body, "cluster_id": cluster_id, "state": "RUNNING", "creator_user_name": workspace.user_name}
    workspace.objects["clusters"].create(cluster_id, fields)
    return {"cluster_id": cluster_id}


@objects_api.get("/2.1/clusters/list")
async def list_clusters(workspace: Workspace) -> dict[str, Any]:
    return _listed("clusters", workspace.objects["clusters"].all())


@objects_api.get("/2.1/clusters/get")
async def get_cluster(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    return workspace.objects["clusters"].get(params.text("cluster_id") or "")


@objects_api.post("/2.1/clusters/edit")
async def edit_cluster(workspace: Workspace, body: Body) -> dict[str, Any]:
    workspace.objects["clusters"].replace(str(body.get("cluster_id")), body, ("state", "creator_user_name"))
    return {}


@objects_api.post("/2.1/clusters/permanent-delete")
async def delete_cluster(workspace: Workspace, body: Body) -> dict[str, Any]:
    workspace.objects["clusters"].delete(str(body.get("cluster_id")))
    return {}


@objects_api.post("/2.0/sql/warehouses")
async def create_warehouse(workspace: Workspace, body: Body) -> dict[str, Any]:
    warehouse_id = workspace.objects.new_hex_id()
    fields = {**body, "id": warehouse_id, "state": "RUNNING", "creator_name": workspace.user_name}
    workspace.objects["sql_warehouses"].create(warehouse_id, fields)
    return {"id": warehouse_id}


@objects_api.get("/2.0/sql/warehouses")
async def list_warehouses(workspace: Workspace) -> dict[str, Any]:
    return _listed("warehouses", workspace.objects["sql_warehouses"].all())


_item_routes("/2.0/sql/warehouses", "sql_warehouses")


@objects_api.post("/2.0/sql/warehouses/{warehouse_id}/edit")
async def edit_warehouse(workspace: Workspace, warehouse_id: str, body: Body) -> dict[str, Any]:
    workspace.objects["sql_warehouses"].update(warehouse_id, body)
    return {}


# --- Lakeview dashboards ------------------------------------------------------------------------


@objects_api.post("/2.0/lakeview/dashboards")
async def create_dashboard(workspace: Workspace, body: Body) -> dict[str, Any]:
    display_name, parent = _required(body, "display_name", "parent_path")
    dashboard_id = workspace.objects.new_hex_id()
    fields = {
        **body,
        "dashboard_id": dashboard_id,
        "path": f"{parent}/{display_name}.lvdash.json",
        "lifecycle_state": "ACTIVE",
    }
    return workspace.objects["dashboards"].create(dashboard_id, fields)


@objects_api.get("/2.0/lakeview/dashboards")
async def list_dashboards(workspace: Workspace) -> dict[str, Any]:
    return _listed("dashboards", workspace.objects["dashboards"].all())


_item_routes("/2.0/lakeview/dashboards", "dashboards", update="PATCH", delete=False)


@objects_api.delete("/2.0/lakeview/dashboards/{dashboard_id}")
async def trash_dashboard(workspace: Workspace, dashboard_id: str) -> dict[str, Any]:
    """Dashboards go to the trash: they stay readable, as `TRASHED`."""
    workspace.objects["dashboards"].update(dashboard_id, {"lifecycle_state": "TRASHED"})
    return {}


@objects_api.post("/2.0/lakeview/dashboards/{dashboard_id}/published")
async def publish_dashboard(workspace: Workspace, dashboard_id: str, body: Body) -> dict[str, Any]:
    published = {
        "embed_credentials": bool(body.get("embed_credentials")),
        "warehouse_id": body.get("warehouse_id"),
    }
    workspace.objects["dashboards"].update(dashboard_id, {"published": published})
    return published


# --- Serving endpoints and apps -----------------------------------------------------------------


@objects_api.post("/2.0/serving-endpoints")
async def create_endpoint(workspace: Workspace, body: Body) -> dict[str, Any]:
    (name,) = _required(body, "name")
    fields = {
        **body,
        "id": workspace.objects.new_hex_id(),
        "state": {"ready": "READY"},
        "creator": workspace.user_name,
    }
    return workspace.objects["model_serving_endpoints"].create(name, fields)


_item_routes("/2.0/serving-endpoints", "model_serving_endpoints")


@objects_api.patch("/2.0/serving-endpoints/{name}/tags")
async def update_endpoint_tags(workspace: Workspace, name: str, body: Body) -> list[dict[str, Any]]:
    endpoint = workspace.objects["model_serving_endpoints"].get(name)
    gone = set(body.get("delete_keys") or [])
    tags = {tag["key"]: tag for tag in endpoint.get("tags") or [] if tag["key"] not in gone}
    tags.update({tag["key"]: tag for tag in body.get("add_tags") or []})
    endpoint["tags"] = sorted(tags.values(), key=lambda tag: tag["key"])
    return list(endpoint["tags"])


@objects_api.put("/2.0/serving-endpoints/{name}/config")
async def update_endpoint_config(workspace: Workspace, name: str, body: Body) -> dict[str, Any]:
    return workspace.objects["model_serving_endpoints"].update(name, {"config": body})


@objects_api.post("/2.0/apps")
async def create_app(workspace: Workspace, body: Body) -> dict[str, Any]:
    (name,) = _required(body, "name")
    fields = {**body, "compute_status": {"state": "ACTIVE"}, "creator": workspace.user_name}
    return workspace.objects["apps"].create(name, fields)


_item_routes("/2.0/apps", "apps", update="PATCH")


@objects_api.post("/2.0/apps/{name}/deployments")
async def deploy_app(workspace: Workspace, name: str, body: Body) -> dict[str, Any]:
    deployment = {
        "deployment_id": workspace.objects.new_hex_id(),
        "source_code_path": body.get("source_code_path"),
        "mode": body.get("mode", "SNAPSHOT"),
        "status": {"state": "SUCCEEDED"},
    }
    workspace.objects["apps"].update(name, {"active_deployment": deployment})
    return deployment
