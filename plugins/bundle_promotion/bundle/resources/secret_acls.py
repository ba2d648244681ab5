"""The ACLs of a secret scope: its `permissions` in the config, applied through the Secrets API.

State key `resources.secret_scopes.<key>.permissions`, id the scope's name, settings
`{"scope", "acls": [{"principal", "permission"}]}`. The scope's creator holds MANAGE from
its creation, so the deploying user's MANAGE joins the config's, as the CLI adds it; a
principal named twice keeps its highest permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.config.steps import PRINCIPAL_FIELDS
from bundle_promotion.bundle.resources.rest import is_missing
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi

KIND = "secret_acls"
_RANK = {"READ": 1, "WRITE": 2, "MANAGE": 3}


def settings_for(resource_key: str, permissions: list[Mapping[str, Any]], deployer: str) -> dict[str, Any]:
    """What to send for the config's `permissions` of `resources.secret_scopes.<key>`."""
    highest: dict[str, str] = {deployer: "MANAGE"} if deployer else {}
    for permission in permissions:
        principal = next(str(permission[name]) for name in PRINCIPAL_FIELDS if permission.get(name))
        level = str(permission["level"])
        if _RANK.get(level, 0) > _RANK.get(highest.get(principal, ""), 0):
            highest[principal] = level
    return {
        "scope": f"${{{resource_key}.id}}",
        "acls": [
            {"principal": principal, "permission": level} for principal, level in sorted(highest.items())
        ],
    }


def read(api: WorkspaceApi, scope: str) -> dict[str, Any] | None:
    try:
        answer = api.call("GET", "2.0/secrets/acls/list", query={"scope": scope})
    except WorkspaceApiError as error:
        if is_missing(error):
            return None
        raise
    acls = [
        {"principal": item["principal"], "permission": item["permission"]}
        for item in answer.get("items") or []
    ]
    return {"scope": scope, "acls": sorted(acls, key=lambda acl: acl["principal"])}


def create(api: WorkspaceApi, settings: dict[str, Any]) -> str:
    return update(api, "", settings)


def update(api: WorkspaceApi, _: str, settings: dict[str, Any]) -> str:
    """Put each ACL that differs; delete the ACLs the config no longer names. The scope is the
    settings' (a recreated scope's name is new)."""
    scope = str(settings["scope"])
    remote = {acl["principal"]: acl["permission"] for acl in (read(api, scope) or {}).get("acls", [])}
    wanted = {acl["principal"]: acl["permission"] for acl in settings["acls"]}
    for principal, permission in wanted.items():
        if remote.get(principal) != permission:
            body = {"scope": scope, "principal": principal, "permission": permission}
            api.call("POST", "2.0/secrets/acls/put", body=body)
    for principal in remote.keys() - wanted.keys():
        api.call("POST", "2.0/secrets/acls/delete", body={"scope": scope, "principal": principal})
    return scope


def delete(api: WorkspaceApi, scope: str) -> None:
    """Nothing to do: a scope's ACLs go with the scope, and one kept keeps its creator's MANAGE."""
