"""The workspace file tree of one emulated workspace: directories, files and notebooks.

Behaviours mirrored from a real workspace:

- ``/Workspace/Users/x`` and ``/Users/x`` (likewise ``/Workspace/Shared`` and ``/Shared``)
  name the same object. Answers spell paths the way the request did.
- Neither ``workspace/import`` nor ``workspace-files/import-file`` creates missing parent
  directories: both answer 404 ``RESOURCE_DOES_NOT_EXIST``, and clients call ``mkdirs``
  first (the Databricks CLI's workspace filer does exactly that on a 404).
- ``mkdirs`` creates every missing ancestor and succeeds on an existing directory.
- Writing over an existing object without ``overwrite`` answers ``RESOURCE_ALREADY_EXISTS``:
  400 from ``workspace/import``, 409 from ``import-file``.
- Deleting a non-empty directory without ``recursive`` answers 400 ``DIRECTORY_NOT_EMPTY``.
- ``workspace/list`` of a file lists the file itself; of an empty directory, ``{}``.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from dataclasses import dataclass
from typing import Any

from bundle_promotion.testing.workspace_protocol import (
    ApiError,
    IdSequence,
    invalid_parameter,
    malformed_request,
    now_ms,
)

WORKSPACE_PREFIX = "/Workspace"
DIRECTORY, FILE, NOTEBOOK = "DIRECTORY", "FILE", "NOTEBOOK"
LANGUAGE_EXTENSIONS = {"PYTHON": "py", "SQL": "sql", "SCALA": "scala", "R": "r"}
# AUTO imports a file as a notebook when its extension and first line say it is one.
NOTEBOOK_HEADERS = {
    ".py": ("PYTHON", b"# Databricks notebook source"),
    ".sql": ("SQL", b"-- Databricks notebook source"),
    ".scala": ("SCALA", b"// Databricks notebook source"),
    ".r": ("R", b"# Databricks notebook source"),
}
EXPORT_FORMATS = ("SOURCE", "AUTO", "RAW")


def not_found(path: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({path}) doesn't exist.")


def already_exists(path: str, status: int = 400) -> ApiError:
    return ApiError(status, "RESOURCE_ALREADY_EXISTS", f"Path ({path}) already exists.")


@dataclass(frozen=True)
class WorkspacePath:
    """A path as a request gave it: its canonical key (no ``/Workspace`` prefix) and its spelling."""

    key: str
    prefixed: bool

    @classmethod
    def parse(cls, raw: str) -> WorkspacePath:
        if not raw.startswith("/"):
            raise invalid_parameter(f"Path ({raw}) is not absolute.")
        normalized = posixpath.normpath("/" + raw.lstrip("/"))
        prefixed = normalized == WORKSPACE_PREFIX or normalized.startswith(WORKSPACE_PREFIX + "/")
        key = (normalized[len(WORKSPACE_PREFIX) :] or "/") if prefixed else normalized
        return cls(key, prefixed)

    @property
    def parent_key(self) -> str:
        return posixpath.dirname(self.key)

    def spell(self, key: str | None = None) -> str:
        """``key`` (by default this path's own) spelled the way the request spelled this path."""
        key = self.key if key is None else key
        if not self.prefixed:
            return key
        return WORKSPACE_PREFIX if key == "/" else WORKSPACE_PREFIX + key


@dataclass
class WorkspaceObject:
    key: str
    object_type: str
    object_id: int
    created_at: int
    modified_at: int
    content: bytes = b""
    language: str | None = None

    def info(self, spelling: WorkspacePath) -> dict[str, Any]:
        """The ``ObjectInfo`` that get-status and list answer with."""
        info: dict[str, Any] = {
            "object_type": self.object_type,
            "path": spelling.spell(self.key),
            "object_id": self.object_id,
            "resource_id": str(self.object_id),
            "created_at": self.created_at,
            "modified_at": self.modified_at,
        }
        if self.object_type != DIRECTORY:
            info["size"] = len(self.content)
        if self.language:
            info["language"] = self.language
        return info

    def export(self, spelling: WorkspacePath, export_format: str) -> tuple[bytes, str]:
        """The object's bytes and file type for workspace/export."""
        if self.object_type == DIRECTORY:
            raise invalid_parameter(
                f"Path ({spelling.spell()}) is a directory, which exports only as DBC; "
                "the emulator does not support DBC."
            )
        if export_format not in EXPORT_FORMATS:
            raise invalid_parameter(f"The emulator exports only in the formats {', '.join(EXPORT_FORMATS)}.")
        extension = posixpath.splitext(self.key)[1].lstrip(".")
        return self.content, LANGUAGE_EXTENSIONS.get(self.language or "", extension)


class FileTree:
    """Workspace objects by canonical path. Starts with ``/``, ``/Users/<user>`` and ``/Shared``."""

    def __init__(self, ids: IdSequence, user_name: str) -> None:
        self._ids = ids
        self._objects: dict[str, WorkspaceObject] = {}
        self._add("/", DIRECTORY)
        for seeded in (f"/Users/{user_name}", "/Shared"):
            self.mkdirs(WorkspacePath.parse(seeded))

    def get(self, path: WorkspacePath) -> WorkspaceObject:
        found = self._objects.get(path.key)
        if found is None:
            raise not_found(path.spell())
        return found

    def children(self, path: WorkspacePath) -> list[WorkspaceObject]:
        directory = self.get(path)
        if directory.object_type != DIRECTORY:
            return [directory]
        return sorted(
            (
                found
                for key, found in self._objects.items()
                if key != "/" and posixpath.dirname(key) == path.key
            ),
            key=lambda found: found.key,
        )

    def mkdirs(self, path: WorkspacePath) -> None:
        parts = [part for part in path.key.split("/") if part]
        for depth in range(1, len(parts) + 1):
            key = "/" + "/".join(parts[:depth])
            existing = self._objects.get(key)
            if existing is None:
                self._add(key, DIRECTORY)
            elif existing.object_type != DIRECTORY:
                raise already_exists(path.spell(key))

    def write(
        self,
        path: WorkspacePath,
        object_type: str,
        content: bytes,
        *,
        language: str | None = None,
        overwrite: bool = False,
        conflict_status: int = 400,
    ) -> None:
        parent = self._objects.get(path.parent_key)
        if parent is None or parent.object_type != DIRECTORY:
            raise not_found(path.spell(path.parent_key))
        existing = self._objects.get(path.key)
        if existing is None:
            self._add(path.key, object_type, content, language)
            return
        if not overwrite or existing.object_type == DIRECTORY:
            raise already_exists(path.spell(), conflict_status)
        existing.object_type, existing.content, existing.language = object_type, content, language
        existing.modified_at = now_ms()

    def delete(self, path: WorkspacePath, *, recursive: bool) -> None:
        if path.key == "/":
            raise invalid_parameter("The workspace root cannot be deleted.")
        target = self.get(path)
        descendants = [key for key in self._objects if key.startswith(path.key + "/")]
        if descendants and not recursive:
            raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"Folder ({path.spell()}) is not empty.")
        for key in [*descendants, target.key]:
            del self._objects[key]

    def _add(self, key: str, object_type: str, content: bytes = b"", language: str | None = None) -> None:
        now = now_ms()
        self._objects[key] = WorkspaceObject(key, object_type, self._ids.next(), now, now, content, language)


def decode_content(content: str) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except binascii.Error as error:
        raise malformed_request(f"Could not parse request object: content is not base64: {error}") from None


def imported_object(
    path: WorkspacePath, import_format: str, language: str | None, content: bytes
) -> tuple[WorkspacePath, str, str | None]:
    """Where workspace/import puts ``content``, as what object type, in which language.

    ``SOURCE`` (the default) makes a notebook and needs ``language``; ``RAW`` makes a
    file; ``JUPYTER`` makes a Python notebook; ``AUTO`` makes a notebook (dropping the
    extension) when the extension and first line say so, and a file otherwise.
    """
    if language is not None and language not in LANGUAGE_EXTENSIONS:
        raise invalid_parameter(f"language must be one of {', '.join(LANGUAGE_EXTENSIONS)}, not {language}.")
    if import_format == "SOURCE":
        if language is None:
            raise invalid_parameter("language is required to import a single file with format SOURCE.")
        return path, NOTEBOOK, language
    if import_format == "RAW":
        return path, FILE, None
    if import_format == "JUPYTER":
        return path, NOTEBOOK, "PYTHON"
    if import_format == "AUTO":
        return _auto_detected(path, content)
    raise invalid_parameter(f"The emulator does not support import format {import_format}.")


def _auto_detected(path: WorkspacePath, content: bytes) -> tuple[WorkspacePath, str, str | None]:
    stem, extension = posixpath.splitext(path.key)
    notebook = NOTEBOOK_HEADERS.get(extension.lower())
    if notebook is None or not content.startswith(notebook[1]):
        return path, FILE, None
    return WorkspacePath(stem, path.prefixed), NOTEBOOK, notebook[0]
