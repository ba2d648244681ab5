"""The emulator's data-plane endpoints: pipelines, Unity Catalog models and SQL statements.

The state behind them lives in ``workspace_pipelines``, ``workspace_catalog`` and
``workspace_sql``; ``workspace_app.create_app`` mounts these routers under ``/api``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from bundle_promotion.testing.workspace_protocol import ApiError, invalid_parameter, now_ms, paginate
from bundle_promotion.testing.workspace_requests import Body, RequestParams, Workspace

pipelines_api = APIRouter()


@pipelines_api.post("")
async def create_pipeline(workspace: Workspace, body: Body) -> dict[str, Any]:
    pipeline = workspace.pipelines.create(body)
    return {"pipeline_id": pipeline.pipeline_id, "effective_settings": pipeline.to_api(now_ms())["spec"]}


@pipelines_api.get("")
async def list_pipelines(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    pipelines = workspace.pipelines.newest_first(params.text("filter"))
    page = paginate(pipelines, params, default_limit=25, max_limit=100)
    now = now_ms()
    statuses = [
        {key: p.to_api(now)[key] for key in ("pipeline_id", "name", "state", "creator_user_name")}
        for p in page.items
    ]
    answer: dict[str, Any] = {"statuses": statuses} if statuses else {}
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    return answer


@pipelines_api.get("/{pipeline_id}")
async def get_pipeline(workspace: Workspace, pipeline_id: str) -> dict[str, Any]:
    return workspace.pipelines.get(pipeline_id).to_api(now_ms())


@pipelines_api.put("/{pipeline_id}")
async def edit_pipeline(workspace: Workspace, pipeline_id: str, body: Body) -> dict[str, Any]:
    workspace.pipelines.edit(pipeline_id, body)
    return {}


@pipelines_api.delete("/{pipeline_id}")
async def delete_pipeline(workspace: Workspace, pipeline_id: str) -> dict[str, Any]:
    workspace.pipelines.delete(pipeline_id)
    return {}


@pipelines_api.post("/{pipeline_id}/updates")
async def start_update(workspace: Workspace, pipeline_id: str, params: RequestParams) -> dict[str, Any]:
    update = workspace.pipelines.start_update(
        pipeline_id,
        full_refresh=params.flag("full_refresh"),
        full_refresh_selection=params.strings("full_refresh_selection"),
        refresh_selection=params.strings("refresh_selection"),
    )
    return {"update_id": update.update_id}


@pipelines_api.get("/{pipeline_id}/updates")
async def list_updates(workspace: Workspace, pipeline_id: str) -> dict[str, Any]:
    now = now_ms()
    updates = [u.to_api(now) for u in reversed(workspace.pipelines.get(pipeline_id).updates)]
    return {"updates": updates} if updates else {}


@pipelines_api.get("/{pipeline_id}/updates/{update_id}")
async def get_update(workspace: Workspace, pipeline_id: str, update_id: str) -> dict[str, Any]:
    return {"update": workspace.pipelines.update(pipeline_id, update_id).to_api(now_ms())}


@pipelines_api.post("/{pipeline_id}/stop")
async def stop_pipeline(workspace: Workspace, pipeline_id: str) -> dict[str, Any]:
    workspace.pipelines.stop(pipeline_id)
    return {}


@pipelines_api.get("/{pipeline_id}/events")
async def list_events(workspace: Workspace, pipeline_id: str) -> dict[str, Any]:
    events = workspace.pipelines.error_events(pipeline_id, now_ms())
    return {"events": events} if events else {}


catalog_api = APIRouter()


@catalog_api.post("/2.1/unity-catalog/models")
async def create_model(workspace: Workspace, body: Body) -> dict[str, Any]:
    return workspace.models.create(body).to_api()


@catalog_api.get("/2.1/unity-catalog/models")
async def list_models(workspace: Workspace) -> dict[str, Any]:
    models = [model.to_api() for model in workspace.models.list()]
    return {"registered_models": models} if models else {}


@catalog_api.get("/2.1/unity-catalog/models/{full_name}")
async def get_model(workspace: Workspace, full_name: str) -> dict[str, Any]:
    return workspace.models.get(full_name).to_api()


@catalog_api.delete("/2.1/unity-catalog/models/{full_name}")
async def delete_model(workspace: Workspace, full_name: str) -> dict[str, Any]:
    workspace.models.delete(full_name)
    return {}


@catalog_api.get("/2.1/unity-catalog/models/{full_name}/versions")
async def list_versions(workspace: Workspace, full_name: str) -> dict[str, Any]:
    model = workspace.models.get(full_name)
    versions = [model.version_to_api(number) for number in sorted(model.versions, reverse=True)]
    return {"model_versions": versions} if versions else {}


@catalog_api.get("/2.1/unity-catalog/models/{full_name}/versions/{version}")
async def get_version(workspace: Workspace, full_name: str, version: int) -> dict[str, Any]:
    return workspace.models.get(full_name).version_to_api(version)


@catalog_api.put("/2.1/unity-catalog/models/{full_name}/aliases/{alias}")
async def set_alias(
    workspace: Workspace, full_name: str, alias: str, params: RequestParams
) -> dict[str, Any]:
    version = params.required_int("version_num")
    workspace.models.set_alias(full_name, alias, version)
    return {"alias_name": alias, "version_num": version}


@catalog_api.get("/2.1/unity-catalog/models/{full_name}/aliases/{alias}")
async def get_by_alias(workspace: Workspace, full_name: str, alias: str) -> dict[str, Any]:
    version = workspace.models.alias(full_name, alias)
    return workspace.models.get(full_name).version_to_api(version)


@catalog_api.delete("/2.1/unity-catalog/models/{full_name}/aliases/{alias}")
async def delete_alias(workspace: Workspace, full_name: str, alias: str) -> dict[str, Any]:
    workspace.models.delete_alias(full_name, alias)
    return {}


@catalog_api.post("/2.0/mlflow/unity-catalog/model-versions/create")
async def create_version(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    full_name = params.required_text("name")
    version = workspace.models.create_version(full_name, params.text("source") or "")
    return {"model_version": {"name": full_name, "version": str(version.version), "status": "READY"}}


sql_api = APIRouter()


@sql_api.post("/statements")
async def execute_statement(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    statement = params.required_text("statement")
    warehouse_id = params.required_text("warehouse_id")
    answer = workspace.sql.execute(statement, warehouse_id)
    if params.text("wait_timeout") == "0s":
        return {"statement_id": answer["statement_id"], "status": {"state": "PENDING"}}
    return answer


@sql_api.get("/statements/{statement_id}")
async def get_statement(workspace: Workspace, statement_id: str) -> dict[str, Any]:
    answer = workspace.sql.statements.get(statement_id)
    if answer is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {statement_id} does not exist.")
    return answer


@sql_api.post("/statements/{statement_id}/cancel")
async def cancel_statement(workspace: Workspace, statement_id: str) -> dict[str, Any]:
    if statement_id not in workspace.sql.statements:
        raise invalid_parameter(f"Statement {statement_id} does not exist.")
    return {}
