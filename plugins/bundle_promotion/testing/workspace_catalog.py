"""Unity Catalog registered models, their versions and aliases, in one emulated workspace.

Models live under ``/api/2.1/unity-catalog/models`` by three-part full name. Versions are
created the way MLflow clients register them (``POST /api/2.0/mlflow/unity-catalog/
model-versions/create``) and are ``READY`` at once: the emulator stores no model files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bundle_promotion.testing.workspace_protocol import ApiError, invalid_parameter, now_ms


@dataclass
class ModelVersion:
    version: int
    source: str
    created_at: int


@dataclass
class RegisteredModel:
    full_name: str
    owner: str
    created_at: int
    comment: str | None = None
    versions: dict[int, ModelVersion] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, str]:
        catalog, schema, name = self.full_name.split(".")
        return {"catalog_name": catalog, "schema_name": schema, "name": name}

    def alias_list(self, version: int | None = None) -> list[dict[str, Any]]:
        return [
            {"alias_name": alias, "version_num": number}
            for alias, number in sorted(self.aliases.items())
            if version is None or number == version
        ]

    def to_api(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            **self.parts,
            "full_name": self.full_name,
            "owner": self.owner,
            "created_at": self.created_at,
            "aliases": self.alias_list(),
        }
        if self.comment:
            answer["comment"] = self.comment
        return answer

    def version_to_api(self, number: int) -> dict[str, Any]:
        version = self.version(number)
        return {
            "catalog_name": self.parts["catalog_name"],
            "schema_name": self.parts["schema_name"],
            "model_name": self.parts["name"],
            "version": version.version,
            "source": version.source,
            "status": "READY",
            "created_at": version.created_at,
            "aliases": self.alias_list(number),
        }

    def version(self, number: int) -> ModelVersion:
        found = self.versions.get(number)
        if found is None:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Model version {self.full_name}/{number} does not exist."
            )
        return found


class ModelRegistry:
    """Registered models by lower-cased full name, as Unity Catalog compares names."""

    def __init__(self, user_name: str) -> None:
        self._user_name = user_name
        self._models: dict[str, RegisteredModel] = {}

    def create(self, body: dict[str, Any]) -> RegisteredModel:
        parts = [body.get(key) for key in ("catalog_name", "schema_name", "name")]
        if not all(isinstance(part, str) and part for part in parts):
            raise invalid_parameter("catalog_name, schema_name and name are required.")
        full_name = ".".join(str(part) for part in parts)
        if full_name.lower() in self._models:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Registered model '{full_name}' already exists.")
        model = RegisteredModel(full_name, self._user_name, now_ms(), body.get("comment"))
        self._models[full_name.lower()] = model
        return model

    def get(self, full_name: str) -> RegisteredModel:
        model = self._models.get(full_name.lower())
        if model is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{full_name}' does not exist.")
        return model

    def delete(self, full_name: str) -> None:
        self.get(full_name)
        del self._models[full_name.lower()]

    def list(self) -> list[RegisteredModel]:
        return sorted(self._models.values(), key=lambda model: model.full_name)

    def create_version(self, full_name: str, source: str) -> ModelVersion:
        model = self.get(full_name)
        version = ModelVersion(max(model.versions, default=0) + 1, source, now_ms())
        model.versions[version.version] = version
        return version

    def set_alias(self, full_name: str, alias: str, version: int) -> None:
        model = self.get(full_name)
        model.version(version)
        model.aliases[alias] = version

    def alias(self, full_name: str, alias: str) -> int:
        model = self.get(full_name)
        if alias not in model.aliases:
            raise ApiError(
                404, "RESOURCE_DOES_NOT_EXIST", f"Alias '{alias}' does not exist on model '{full_name}'."
            )
        return model.aliases[alias]

    def delete_alias(self, full_name: str, alias: str) -> None:
        self.get(full_name).aliases.pop(alias, None)
