"""The workspace's root, file, artifact, state and resource paths, and the sync paths."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.config.steps.loading import WORKSPACE_SUBPATHS, Loading


def default_workspace_paths(loading: Loading) -> None:
    """root_path defaults to `~/.bundle/<name>/<target>`; the other paths live under it.

    `~` is the deploying user's home, and paths get the `/Workspace` prefix, as the CLI sets them.
    """
    workspace = loading.tree["workspace"] = loading.tree.get("workspace") or {}  # `workspace:` may be empty
    if loading.current_user is not None:
        workspace["current_user"] = _with_short_name(loading.current_user)
    root = workspace.get("root_path") or "~/.bundle/${bundle.name}/${bundle.target}"
    if root.startswith("~"):
        root = _expand_home(loading, root)
    workspace["root_path"] = root
    for name, subfolder in WORKSPACE_SUBPATHS.items():
        workspace.setdefault(name, f"{root}/{subfolder}")
    for name in ("root_path", *WORKSPACE_SUBPATHS):
        workspace[name] = _with_workspace_prefix(workspace[name])


def _expand_home(loading: Loading, root: str) -> str:
    user = loading.current_user or {}
    if not user.get("userName"):
        raise loading.error(
            f"targets.{loading.target}.workspace.root_path",
            f"the root path {root} needs the deploying user's name: pass current_user "
            "(the answer of GET /api/2.0/preview/scim/v2/Me) or set workspace.root_path in the target",
        )
    return f"/Workspace/Users/{user['userName']}{root[1:]}"


def _with_workspace_prefix(path: str) -> str:
    if path.startswith("/") and not path.startswith(("/Workspace/", "/Volumes/")):
        return f"/Workspace{path}"
    return path


def _with_short_name(user: Mapping[str, Any]) -> dict[str, Any]:
    """The user as the CLI shows it, with `short_name`: the user name up to `@`, made identifier-safe,
    and `domain_friendly_name`: that name with accents dropped and every other character a `-`,
    fit for an app's or an endpoint's name.

    For a service principal (its user name is an application id) the display name is used.
    """
    name = str(user.get("userName", ""))
    if is_service_principal(user) and user.get("displayName"):
        name = str(user["displayName"])
    short = str(user.get("short_name") or re.sub(r"[^a-z0-9_]", "_", name.split("@", 1)[0].lower()))
    unaccented = "".join(c for c in unicodedata.normalize("NFKD", short) if not unicodedata.combining(c))
    friendly = re.sub(r"[^a-z0-9]", "-", unaccented.lower())
    return {**user, "short_name": short, "domain_friendly_name": user.get("domain_friendly_name", friendly)}


def is_service_principal(user: Mapping[str, Any]) -> bool:
    return bool(
        re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", user.get("userName", "")
        )
    )


def default_sync_paths(loading: Loading) -> None:
    """The deploy uploads the whole bundle folder unless `sync.paths` says otherwise."""
    sync = loading.tree.setdefault("sync", {})
    sync.setdefault("paths", ["."])
