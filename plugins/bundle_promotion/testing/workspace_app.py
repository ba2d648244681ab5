"""The FastAPI app that answers as several Databricks workspaces, one per listening port.

Every request passes the gateway first, in this order: added latency, an injected
fault, then the bearer token. The gateway records each request in its workspace's
log, whatever the answer. A request whose answer is to be lost (``AnswerLoss``) is
acted on all the same; ``AnswerDropper`` then closes its connection unanswered.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bundle_promotion.testing import workspace_data_app
from bundle_promotion.testing.workspace_files import (
    FILE,
    WorkspacePath,
    decode_content,
    imported_object,
)
from bundle_promotion.testing.workspace_objects_app import objects_api
from bundle_promotion.testing.workspace_permissions import permissions_api
from bundle_promotion.testing.workspace_protocol import (
    ApiError,
    Page,
    now_ms,
    paginate,
)
from bundle_promotion.testing.workspace_requests import (
    ApiVersion,
    Body,
    QueryParams,
    RequestParams,
    Workspace,
)
from bundle_promotion.testing.workspace_state import RecordedRequest, WorkspaceState, injected_error

DROP_ANSWER = "bundle_promotion.drop_answer"  # set in the request's scope: close instead of answering


class Gateway:
    """What the app serves: the workspaces by local port, and the latency added to each request."""

    def __init__(self, workspaces_by_port: Mapping[int, WorkspaceState]) -> None:
        self.workspaces_by_port = dict(workspaces_by_port)
        self.latency = 0.0


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title="Databricks workspace emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway
    app.middleware("http")(_through_gateway)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _no_such_endpoint)
    for version in ("2.1", "2.2"):
        app.include_router(jobs_api, prefix=f"/api/{version}/jobs")
    app.include_router(workspace_api, prefix="/api/2.0")
    app.include_router(workspace_data_app.pipelines_api, prefix="/api/2.0/pipelines")
    app.include_router(workspace_data_app.catalog_api, prefix="/api")
    app.include_router(workspace_data_app.sql_api, prefix="/api/2.0/sql")
    app.include_router(permissions_api, prefix="/api/2.0/permissions")
    app.include_router(objects_api, prefix="/api")
    return app


def error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status == 429 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _through_gateway(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    gateway: Gateway = request.app.state.gateway
    workspace = gateway.workspaces_by_port.get(request.scope["server"][1])
    if workspace is None:
        return error_response(_endpoint_not_found(request))
    if gateway.latency:
        await asyncio.sleep(gateway.latency)
    raw_body = await request.body()
    request.state.workspace = workspace
    request.state.raw_body = raw_body
    request.state.json_body = _parsed_json(raw_body)
    response = await _answer(request, workspace, call_next)
    query = dict(request.query_params)
    workspace.log.append(
        RecordedRequest(
            request.method, request.url.path, query, request.state.json_body, response.status_code
        )
    )
    return response


async def _answer(
    request: Request, workspace: WorkspaceState, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    error = workspace.take_fault() or _authentication_error(request, workspace)
    if error is not None:
        return error_response(error)
    loss = workspace.answer_loss(request.method, request.url.path)
    if loss is None:
        return await call_next(request)
    if loss.mode == "delay":
        await asyncio.sleep(loss.seconds)
    response = await call_next(request)
    if loss.mode == "error":
        return error_response(injected_error(503))
    if loss.mode == "drop":
        request.scope[DROP_ANSWER] = True
    return response


class AnswerDropper:
    """The emulator's outermost ASGI layer: closes the connection of a request marked ``DROP_ANSWER``
    instead of answering it, as a network that loses the answer after the server acted does.

    It needs uvicorn's HTTP protocol, whose ``send`` belongs to the request's cycle and its transport.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def answer_or_drop(message: dict[str, Any]) -> None:
            if not scope.get(DROP_ANSWER):
                await send(message)
            elif message["type"] == "http.response.start":
                send.__self__.transport.close()

        await self._app(scope, receive, answer_or_drop)


def _authentication_error(request: Request, workspace: WorkspaceState) -> ApiError | None:
    """401 without a bearer token and 403 with a wrong one, as a real workspace answers."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return ApiError(
            401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type for this API."
        )
    if token != workspace.token:
        return ApiError(403, "PERMISSION_DENIED", "Invalid access token.")
    return None


def _parsed_json(raw_body: bytes) -> Any:
    if not raw_body:
        return None
    try:
        return json.loads(raw_body)
    except ValueError:
        return None


async def _api_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _no_such_endpoint(request: Request, _error: Exception) -> Response:
    return error_response(_endpoint_not_found(request))


def _endpoint_not_found(request: Request) -> ApiError:
    return ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.url.path}'")


def list_answer(field: str, items: list[dict[str, Any]], page: Page[Any], version: str) -> dict[str, Any]:
    """A list answer. Empty arrays are left out, as the service does; 2.2 dropped ``has_more``."""
    answer: dict[str, Any] = {field: items} if items else {}
    if page.next_page_token:
        answer["next_page_token"] = page.next_page_token
    if page.prev_page_token:
        answer["prev_page_token"] = page.prev_page_token
    if version == "2.1":
        answer["has_more"] = page.next_page_token is not None
    return answer


# Jobs and runs, served under both /api/2.1/jobs and /api/2.2/jobs ---------------------------

jobs_api = APIRouter()


@jobs_api.post("/create")
async def create_job(workspace: Workspace, body: Body) -> dict[str, Any]:
    return {"job_id": workspace.jobs.create(body).job_id}


@jobs_api.get("/get")
async def get_job(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    return workspace.jobs.get(params.required_int("job_id")).to_api()


@jobs_api.get("/list")
async def list_jobs(workspace: Workspace, params: RequestParams, version: ApiVersion) -> dict[str, Any]:
    jobs = workspace.jobs.newest_first(params.text("name"))
    page = paginate(jobs, params, default_limit=20, max_limit=100)
    expand_tasks = params.flag("expand_tasks")
    return list_answer("jobs", [job.to_api(expand_tasks=expand_tasks) for job in page.items], page, version)


@jobs_api.post("/update")
async def update_job(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    job_id = params.required_int("job_id")
    workspace.jobs.update(job_id, params.mapping("new_settings"), params.strings("fields_to_remove"))
    return {}


@jobs_api.post("/reset")
async def reset_job(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    workspace.jobs.reset(params.required_int("job_id"), params.mapping("new_settings"))
    return {}


@jobs_api.post("/delete")
async def delete_job(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    workspace.jobs.delete(params.required_int("job_id"))
    return {}


@jobs_api.post("/run-now")
async def run_now(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    job = workspace.jobs.get(params.required_int("job_id"))
    overrides = params.string_map("job_parameters")
    run = workspace.runs.run_now(job, overrides, params.text("idempotency_token"))
    return {"run_id": run.run_id, "number_in_job": run.run_id}


@jobs_api.get("/runs/get")
async def get_run(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    return workspace.runs.get_any(params.required_int("run_id"))


@jobs_api.get("/runs/get-output")
async def get_run_output(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    return workspace.runs.output(params.required_int("run_id"))


@jobs_api.get("/runs/list")
async def list_runs(workspace: Workspace, params: RequestParams, version: ApiVersion) -> dict[str, Any]:
    runs = workspace.runs.newest_first(
        params.optional_int("job_id"),
        active_only=params.flag("active_only"),
        completed_only=params.flag("completed_only"),
    )
    page = paginate(runs, params, default_limit=20, max_limit=25, zero_means_max=True)
    now, expand_tasks = now_ms(), params.flag("expand_tasks")
    return list_answer(
        "runs", [run.to_api(now, include_tasks=expand_tasks) for run in page.items], page, version
    )


@jobs_api.post("/runs/cancel")
async def cancel_run(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    workspace.runs.cancel(params.required_int("run_id"))
    return {}


@jobs_api.post("/runs/cancel-all")
async def cancel_all_runs(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    workspace.runs.cancel_all(params.required_int("job_id"))
    return {}


# Current user and workspace files, under /api/2.0 ------------------------------------------

workspace_api = APIRouter()


@workspace_api.get("/preview/scim/v2/Me")
async def current_user(workspace: Workspace) -> dict[str, Any]:
    return workspace.current_user()


@workspace_api.post("/workspace/mkdirs")
async def mkdirs(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    workspace.files.mkdirs(WorkspacePath.parse(params.required_text("path")))
    return {}


@workspace_api.post("/workspace/import")
async def import_object(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    content = decode_content(params.text("content", "") or "")
    path, object_type, language = imported_object(
        WorkspacePath.parse(params.required_text("path")),
        (params.text("format") or "SOURCE").upper(),
        params.text("language"),
        content,
    )
    overwrite = params.flag("overwrite")
    workspace.files.write(path, object_type, content, language=language, overwrite=overwrite)
    return {}


@workspace_api.post("/workspace-files/import-file/{file_path:path}")
async def import_file(
    workspace: Workspace, request: Request, params: QueryParams, file_path: str
) -> dict[str, Any]:
    path = WorkspacePath.parse("/" + file_path)
    content: bytes = request.state.raw_body
    workspace.files.write(path, FILE, content, overwrite=params.flag("overwrite"), conflict_status=409)
    return {}


@workspace_api.get("/workspace/get-status")
async def get_status(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    path = WorkspacePath.parse(params.required_text("path"))
    return workspace.files.get(path).info(path)


@workspace_api.get("/workspace/list")
async def list_objects(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    path = WorkspacePath.parse(params.required_text("path"))
    objects = [found.info(path) for found in workspace.files.children(path)]
    return {"objects": objects} if objects else {}


@workspace_api.post("/workspace/delete")
async def delete_object(workspace: Workspace, params: RequestParams) -> dict[str, Any]:
    path = WorkspacePath.parse(params.required_text("path"))
    workspace.files.delete(path, recursive=params.flag("recursive"))
    return {}


@workspace_api.get("/workspace/export", response_model=None)
async def export_object(workspace: Workspace, params: RequestParams) -> Response:
    path = WorkspacePath.parse(params.required_text("path"))
    export_format = (params.text("format") or "SOURCE").upper()
    content, file_type = workspace.files.get(path).export(path, export_format)
    if params.flag("direct_download"):
        return Response(content, media_type="application/octet-stream")
    return JSONResponse({"content": base64.b64encode(content).decode("ascii"), "file_type": file_type})
