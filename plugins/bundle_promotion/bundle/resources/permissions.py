"""Permissions of a job, pipeline, cluster, warehouse, experiment, dashboard, app or serving
endpoint, a resource of their own as in the CLI's direct engine.

State key `resources.<kind>.<key>.permissions`, id the object's path (`/jobs/123`),
settings `{"object_id": ..., "permissions": [{"permission_level": ..., "<principal>": ...}]}`.
They are applied with `PUT /api/2.0/permissions/<object_id>`, which replaces the
object's direct grants; the owner keeps ownership. A serving endpoint is named in the
state by its name, and in the Permissions API by its id, which is asked of the endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.config.steps import PRINCIPAL_FIELDS
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

KIND = "permissions"
_OWNER = "IS_OWNER"
# The Permissions API's object type of each kind that has permissions.
OBJECT_TYPES = {
    "jobs": "jobs",
    "pipelines": "pipelines",
    "experiments": "experiments",
    "clusters": "clusters",
    "sql_warehouses": "warehouses",
    "dashboards": "dashboards",
    "apps": "apps",
    "model_serving_endpoints": "serving-endpoints",
}
_BY_ID_NOT_NAME = "/serving-endpoints/"


def settings_for(resource_key: str, permissions: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What to send for the config's `permissions` of `resources.<kind>.<key>`."""
    object_type = OBJECT_TYPES[resource_key.split(".")[1]]
    return {
        "object_id": f"/{object_type}/${{{resource_key}.id}}",
        "permissions": sorted((_request(permission) for permission in permissions), key=_sort_key),
    }


def read(api: WorkspaceApi, object_id: str) -> dict[str, Any] | None:
    """The object's direct grants (not inherited, not ownership), or None when the object is gone."""
    try:
        answer = api.call("GET", f"2.0/permissions{_api_object(api, object_id)}")
    except WorkspaceApiError as error:
        if workspace_files.is_missing(error):
            return None
        raise
    grants = [
        {"permission_level": level["permission_level"], **_principal(entry)}
        for entry in answer.get("access_control_list") or []
        for level in entry.get("all_permissions") or []
        if not level.get("inherited") and level.get("permission_level") != _OWNER
    ]
    return {"object_id": object_id, "permissions": sorted(grants, key=_sort_key)}


def create(api: WorkspaceApi, settings: dict[str, Any]) -> str:
    update(api, settings["object_id"], settings)
    return str(settings["object_id"])


def update(api: WorkspaceApi, object_id: str, settings: dict[str, Any]) -> str:
    """Replace the object's grants; the object is the settings' (a recreated one's id is new)."""
    body = {"access_control_list": settings["permissions"]}
    api.call("PUT", f"2.0/permissions{_api_object(api, settings['object_id'])}", body=body)
    return str(settings["object_id"])


def delete(api: WorkspaceApi, object_id: str) -> None:
    """Remove the grants the bundle made; an object already gone takes its grants with it."""
    try:
        api.call("PUT", f"2.0/permissions{_api_object(api, object_id)}", body={"access_control_list": []})
    except WorkspaceApiError as error:
        if not workspace_files.is_missing(error):
            raise


def _api_object(api: WorkspaceApi, object_id: str) -> str:
    """The object's path in the Permissions API: a serving endpoint's name becomes its id."""
    if not object_id.startswith(_BY_ID_NOT_NAME):
        return object_id
    endpoint = api.call("GET", f"2.0/serving-endpoints/{object_id.removeprefix(_BY_ID_NOT_NAME)}")
    return f"{_BY_ID_NOT_NAME}{endpoint['id']}"


def _request(permission: Mapping[str, Any]) -> dict[str, Any]:
    return {"permission_level": permission["level"], **_principal(permission)}


def _principal(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {name: entry[name] for name in PRINCIPAL_FIELDS if entry.get(name)}


def _sort_key(grant: Mapping[str, Any]) -> tuple[str, ...]:
    return (*(str(grant.get(name, "")) for name in PRINCIPAL_FIELDS), str(grant["permission_level"]))
