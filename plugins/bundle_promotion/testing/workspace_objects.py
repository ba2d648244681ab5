"""The emulator's store of the resources bundles deploy beside jobs and pipelines.

Schemas, volumes, quality monitors, experiments, secret scopes and their ACLs, clusters,
SQL warehouses, dashboards, serving endpoints and apps: each kind is a table of objects by
id, answered in the service's shape by `workspace_objects_app`. Unity Catalog compares
names without case; the store does too for the kinds named by a full name. Grants of
Unity Catalog securables live here as well, by securable type and full name.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from bundle_promotion.testing.workspace_protocol import ApiError, IdSequence, invalid_parameter, now_ms

# Kinds whose ids are names Unity Catalog compares without case.
_CASELESS = ("schemas", "volumes", "quality_monitors")
# Kinds that answer an unknown id with the older 400 instead of a 404.
_OLDER_APIS = ("clusters",)


@dataclass(eq=False)  # stores are told apart by identity: the permissions keep grants per store
class ObjectStore:
    """One kind's objects by id, each with the fields it was created with and the server's own."""

    kind: str
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _key(self, object_id: str) -> str:
        return object_id.lower() if self.kind in _CASELESS else object_id

    def create(self, object_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        if self._key(object_id) in self.objects:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"{self.kind} '{object_id}' already exists.")
        self.objects[self._key(object_id)] = copy.deepcopy(fields)
        return self.objects[self._key(object_id)]

    def get(self, object_id: str) -> dict[str, Any]:
        found = self.objects.get(self._key(object_id))
        if found is None:
            if self.kind in _OLDER_APIS:
                raise invalid_parameter(f"{self.kind} {object_id} does not exist")
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{self.kind} '{object_id}' does not exist.")
        return found

    def update(self, object_id: str, fields: dict[str, Any], new_id: str | None = None) -> dict[str, Any]:
        found = self.get(object_id)
        found.update(copy.deepcopy(fields))
        if new_id is not None and self._key(new_id) != self._key(object_id):
            self.create(new_id, found)
            del self.objects[self._key(object_id)]
        return self.get(new_id or object_id)

    def replace(self, object_id: str, fields: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
        """Replace every field the client sets; the server's own fields in `keep` stay."""
        found = self.get(object_id)
        kept = {name: found[name] for name in keep if name in found}
        self.objects[self._key(object_id)] = {**copy.deepcopy(fields), **kept}
        return self.objects[self._key(object_id)]

    def delete(self, object_id: str) -> None:
        self.get(object_id)
        del self.objects[self._key(object_id)]

    def find(self, field_name: str, value: Any) -> dict[str, Any] | None:
        return next((found for found in self.objects.values() if found.get(field_name) == value), None)

    def all(self) -> list[dict[str, Any]]:
        return list(self.objects.values())


class WorkspaceObjects:
    """Every kind's store, the secret scopes' ACLs and the Unity Catalog grants of one workspace."""

    KINDS = (
        "schemas",
        "volumes",
        "quality_monitors",
        "experiments",
        "secret_scopes",
        "clusters",
        "sql_warehouses",
        "dashboards",
        "model_serving_endpoints",
        "apps",
    )

    def __init__(self, ids: IdSequence, user_name: str) -> None:
        self.ids = ids
        self.user_name = user_name
        self.stores = {kind: ObjectStore(kind) for kind in self.KINDS}
        self.secret_acls: dict[str, dict[str, str]] = {}  # scope -> principal -> permission
        self.grants: dict[
            tuple[str, str], dict[str, set[str]]
        ] = {}  # (type, full name) -> principal -> privileges

    def __getitem__(self, kind: str) -> ObjectStore:
        return self.stores[kind]

    def new_id(self) -> str:
        return str(self.ids.next())

    def new_hex_id(self) -> str:
        return f"{self.ids.next():016x}"

    def created(self) -> dict[str, Any]:
        """The server's fields of a new object: who made it, and when."""
        return {"created_by": self.user_name, "created_at": now_ms(), "owner": self.user_name}
