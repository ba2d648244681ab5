"""The emulator's Permissions API: `/api/2.0/permissions/{object type}/{id}` for jobs, pipelines,
experiments, clusters, SQL warehouses, dashboards, apps and serving endpoints (by endpoint id).

Grants live beside the store of the objects they grant on, so they vanish with it when
the workspace is reset. `PUT` replaces an object's direct grants, `PATCH` adds to them,
`GET` answers them in the service's shape; the object's creator stays its owner.
"""

from __future__ import annotations

import weakref
from typing import Any

from fastapi import APIRouter

from bundle_promotion.testing.workspace_protocol import ApiError, invalid_parameter
from bundle_promotion.testing.workspace_requests import Body, Workspace
from bundle_promotion.testing.workspace_state import WorkspaceState

PRINCIPALS = ("user_name", "group_name", "service_principal_name")
LEVELS = {
    "jobs": ("CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"),
    "pipelines": ("CAN_VIEW", "CAN_RUN", "CAN_MANAGE", "IS_OWNER"),
    "experiments": ("CAN_READ", "CAN_EDIT", "CAN_MANAGE"),
    "clusters": ("CAN_ATTACH_TO", "CAN_RESTART", "CAN_MANAGE"),
    "warehouses": ("CAN_VIEW", "CAN_MONITOR", "CAN_USE", "CAN_MANAGE", "IS_OWNER"),
    "dashboards": ("CAN_READ", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE"),
    "apps": ("CAN_USE", "CAN_MANAGE"),
    "serving-endpoints": ("CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"),
}
_OBJECT_TYPES = {"jobs": "job", "pipelines": "pipelines", "serving-endpoints": "serving-endpoint"}
# The emulator's store of each object type beyond jobs and pipelines, and the field its id is in.
_STORES = {
    "experiments": ("experiments", "experiment_id"),
    "clusters": ("clusters", "cluster_id"),
    "warehouses": ("sql_warehouses", "id"),
    "dashboards": ("dashboards", "dashboard_id"),
    "apps": ("apps", "name"),
    "serving-endpoints": ("model_serving_endpoints", "id"),
}
_grants: weakref.WeakKeyDictionary[object, dict[str, list[dict[str, str]]]] = weakref.WeakKeyDictionary()

permissions_api = APIRouter()


@permissions_api.get("/{object_type}/{object_id}")
async def get_permissions(workspace: Workspace, object_type: str, object_id: str) -> dict[str, Any]:
    return _answer(workspace, object_type, object_id)


@permissions_api.put("/{object_type}/{object_id}")
async def set_permissions(
    workspace: Workspace, object_type: str, object_id: str, body: Body
) -> dict[str, Any]:
    _grants_of(workspace, object_type, object_id)[object_id] = _requests(object_type, body)
    return _answer(workspace, object_type, object_id)


@permissions_api.patch("/{object_type}/{object_id}")
async def update_permissions(
    workspace: Workspace, object_type: str, object_id: str, body: Body
) -> dict[str, Any]:
    grants = _grants_of(workspace, object_type, object_id)
    grants[object_id] = [*grants.get(object_id, []), *_requests(object_type, body)]
    return _answer(workspace, object_type, object_id)


def _grants_of(
    workspace: WorkspaceState, object_type: str, object_id: str
) -> dict[str, list[dict[str, str]]]:
    """The grants of every object of the type, after checking that this object exists (else 404)."""
    if object_type not in LEVELS:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No permissions API for object type {object_type}")
    if object_type == "jobs" and not object_id.isdigit():
        raise invalid_parameter(f"Invalid job id {object_id}")
    missing = ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{object_type} {object_id} does not exist.")
    if object_type in _STORES:
        kind, id_field = _STORES[object_type]
        objects = workspace.objects[kind]
        if objects.find(id_field, object_id) is None:
            raise missing
        return _grants.setdefault(objects, {})
    store: Any = workspace.jobs if object_type == "jobs" else workspace.pipelines
    try:
        store.get(int(object_id) if object_type == "jobs" else object_id)
    except ApiError:
        raise missing from None
    return _grants.setdefault(store, {})


def _requests(object_type: str, body: dict[str, Any]) -> list[dict[str, str]]:
    requests = body.get("access_control_list") or []
    for request in requests:
        principals = [name for name in PRINCIPALS if request.get(name)]
        if len(principals) != 1:
            raise invalid_parameter(
                f"Each access control request names exactly one of {', '.join(PRINCIPALS)}"
            )
        if request.get("permission_level") not in LEVELS[object_type]:
            raise invalid_parameter(
                f"Permission level {request.get('permission_level')} is not supported for {object_type}"
            )
    return [dict(request) for request in requests]


def _answer(workspace: WorkspaceState, object_type: str, object_id: str) -> dict[str, Any]:
    grants = _grants_of(workspace, object_type, object_id).get(object_id, [])
    owner = {
        "user_name": workspace.user_name,
        "all_permissions": [{"permission_level": "IS_OWNER", "inherited": False}],
    }
    direct = [
        {
            **{name: grant[name] for name in PRINCIPALS if grant.get(name)},
            "all_permissions": [{"permission_level": grant["permission_level"], "inherited": False}],
        }
        for grant in grants
    ]
    admins = {
        "group_name": "admins",
        "all_permissions": [
            {
                "permission_level": "CAN_MANAGE",
                "inherited": True,
                "inherited_from_object": [f"/{object_type}/"],
            }
        ],
    }
    return {
        "object_id": f"/{object_type}/{object_id}",
        "object_type": _OBJECT_TYPES.get(object_type, object_type.rstrip("s")),
        "access_control_list": [owner, *direct, admins],
    }
