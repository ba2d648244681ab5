"""The emulator's request dependencies: the workspace a request reached, its JSON body and
parameters, and the API version in its path. Every router of the emulator uses them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from bundle_promotion.testing.workspace_protocol import Params, malformed_request
from bundle_promotion.testing.workspace_state import WorkspaceState


async def current_workspace(request: Request) -> WorkspaceState:
    workspace: WorkspaceState = request.state.workspace
    return workspace


async def json_body(request: Request) -> dict[str, Any]:
    body = request.state.json_body
    if body is None and not request.state.raw_body:
        return {}
    if not isinstance(body, dict):
        raise malformed_request("Invalid JSON given in the body of the request - expected a map")
    return body


async def request_params(request: Request, body: Annotated[dict[str, Any], Depends(json_body)]) -> Params:
    return Params(body, dict(request.query_params))


async def query_params(request: Request) -> Params:
    """Parameters of an endpoint whose body is not JSON, such as import-file's raw bytes."""
    return Params(None, dict(request.query_params))


async def api_version(request: Request) -> str:
    """``2.1`` or ``2.2``: jobs endpoints answer as the version in their path."""
    return request.url.path.split("/")[2]


Workspace = Annotated[WorkspaceState, Depends(current_workspace)]
RequestParams = Annotated[Params, Depends(request_params)]
QueryParams = Annotated[Params, Depends(query_params)]
Body = Annotated[dict[str, Any], Depends(json_body)]
ApiVersion = Annotated[str, Depends(api_version)]
