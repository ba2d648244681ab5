"""Files in the workspace tree, through the Workspace API (`2.0/workspace/*`)."""

from __future__ import annotations

import base64
import json
from typing import Any

from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi


def is_missing(error: WorkspaceApiError) -> bool:
    """Whether an error says the object (a file, or any other resource) does not exist."""
    return error.status == 404 or error.error_code == "RESOURCE_DOES_NOT_EXIST"


def exists(api: WorkspaceApi, path: str) -> bool:
    """Whether a file or a folder is at `path`."""
    try:
        api.call("GET", "2.0/workspace/get-status", query={"path": path})
    except WorkspaceApiError as error:
        if is_missing(error):
            return False
        raise
    return True


def read_bytes(api: WorkspaceApi, path: str) -> bytes | None:
    """A workspace file's content, or None when there is no such file."""
    try:
        answer = api.call("GET", "2.0/workspace/export", query={"path": path, "format": "SOURCE"})
    except WorkspaceApiError as error:
        if is_missing(error):
            return None
        raise
    return base64.b64decode(answer.get("content", ""))


def read_json(api: WorkspaceApi, path: str) -> Any:
    """A workspace JSON file's content, or None when there is no such file."""
    content = read_bytes(api, path)
    return None if content is None else json.loads(content)


def write_bytes(
    api: WorkspaceApi,
    path: str,
    content: bytes,
    *,
    overwrite: bool = True,
    import_format: str = "RAW",
    language: str | None = None,
) -> None:
    """Import a file as is (RAW), or as a notebook (SOURCE with its `language`, or JUPYTER).

    Without `overwrite` it fails with RESOURCE_ALREADY_EXISTS when the path exists.
    """
    body = {
        "path": path,
        "format": import_format,
        "content": base64.b64encode(content).decode("ascii"),
        "overwrite": overwrite,
    }
    if language:
        body["language"] = language
    api.call("POST", "2.0/workspace/import", body=body)


def write_json(api: WorkspaceApi, path: str, document: Any, *, overwrite: bool = True) -> None:
    write_bytes(api, path, json.dumps(document, indent=2).encode(), overwrite=overwrite)


def make_dirs(api: WorkspaceApi, path: str) -> None:
    """Create a folder and its parents; an existing folder is fine."""
    api.call("POST", "2.0/workspace/mkdirs", body={"path": path})


def delete(api: WorkspaceApi, path: str, *, recursive: bool = False) -> None:
    """Delete a file (or, `recursive`, a folder and all in it); one that is already gone is fine."""
    try:
        api.call("POST", "2.0/workspace/delete", body={"path": path, "recursive": recursive})
    except WorkspaceApiError as error:
        if not is_missing(error):
            raise
