"""Unity Catalog grants of a schema, volume or registered model, a resource of their own as in the
CLI's direct engine.

State key `resources.<kind>.<key>.grants`, id `<securable type>/<full name>`, settings
`{"securable_type", "full_name", "grants": [{"principal", "privileges"}]}`, privileges sorted
as the service sorts them. They are authoritative for the securable, as the Terraform
engine's `databricks_grants` was: an update also revokes what the config no longer grants.
Deleting them does nothing: the securable's deletion takes its grants along.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.resources.rest import is_missing
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi

KIND = "grants"
SECURABLE_TYPES = {"schemas": "schema", "volumes": "volume", "registered_models": "registered-model"}


def settings_for(resource_key: str, grants: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What to send for the config's `grants` of `resources.<kind>.<key>`."""
    return {
        "securable_type": SECURABLE_TYPES[resource_key.split(".")[1]],
        "full_name": f"${{{resource_key}.id}}",
        "grants": _sorted(grants),
    }


def read(api: WorkspaceApi, grants_id: str) -> dict[str, Any] | None:
    securable_type, _, name = grants_id.partition("/")
    try:
        answer = api.call("GET", f"2.1/unity-catalog/permissions/{securable_type}/{name}")
    except WorkspaceApiError as error:
        if is_missing(error):
            return None
        raise
    assignments = [grant for grant in answer.get("privilege_assignments") or [] if grant.get("principal")]
    return {"securable_type": securable_type, "full_name": name, "grants": _sorted(assignments)}


def create(api: WorkspaceApi, settings: dict[str, Any]) -> str:
    return update(api, "", settings)


def update(api: WorkspaceApi, _: str, settings: dict[str, Any]) -> str:
    """Grant what the config grants; revoke every other privilege on the securable (the settings',
    whose full name is new when the securable was recreated or renamed)."""
    securable_type, name = settings["securable_type"], settings["full_name"]
    held = {
        grant["principal"]: set(grant["privileges"])
        for grant in (read(api, f"{securable_type}/{name}") or {}).get("grants", [])
    }
    wanted = {grant["principal"]: set(grant["privileges"]) for grant in settings["grants"]}
    changes = [
        change
        for principal in sorted(held.keys() | wanted.keys())
        if (change := _change(principal, wanted.get(principal, set()), held.get(principal, set())))
    ]
    if changes:
        api.call("PATCH", f"2.1/unity-catalog/permissions/{securable_type}/{name}", body={"changes": changes})
    return f"{securable_type}/{name}"


def _change(principal: str, wanted: set[str], held: set[str]) -> dict[str, Any] | None:
    """The `PermissionsChange` that takes one principal from `held` to `wanted`; None: nothing to do."""
    if wanted == held:
        return None
    change: dict[str, Any] = {"principal": principal}
    if wanted - held:
        change["add"] = sorted(wanted - held)
    if held - wanted:
        change["remove"] = sorted(held - wanted)
    return change


def delete(api: WorkspaceApi, grants_id: str) -> None:
    """Nothing to do, as in the CLI: the securable's grants go with it."""


def _sorted(grants: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        (
            {"principal": grant["principal"], "privileges": sorted(grant.get("privileges") or [])}
            for grant in grants
        ),
        key=lambda grant: grant["principal"],
    )
