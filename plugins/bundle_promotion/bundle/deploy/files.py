"""Which local files a deploy uploads, where they go, and what they held last time.

The bundle folder (or the sync root holding it and its `sync.paths`) is mirrored to
`workspace.file_path`: notebooks (source files with the `Databricks notebook source`
header, and `.ipynb`) become workspace notebooks, the source ones without their suffix;
everything else becomes a workspace file. `.git`, `.databricks`,
`dist` and `__pycache__` are never uploaded, nor what the root `.gitignore` or
`sync.exclude` name.

A manifest in the state folder records each uploaded path's sha256, so a redeploy
uploads only what changed and deletes what is gone.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.notebooks import notebook_import, remote_notebook_name
from bundle_promotion.bundle.deploy.state import DeploymentState
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

ALWAYS_SKIPPED = frozenset({".git", ".databricks", "dist", "__pycache__"})
MANIFEST_FILE = "bundle-promotion-files.json"


@dataclass(frozen=True)
class Upload:
    """One local file and how it lands in the workspace."""

    local: Path
    remote: str
    digest: str
    import_format: str = "RAW"
    language: str | None = None

    def send(self, api: WorkspaceApi) -> None:
        content = self.local.read_bytes()
        workspace_files.write_bytes(
            api, self.remote, content, import_format=self.import_format, language=self.language
        )


def bundle_uploads(
    bundle_dir: Path, file_path: str, excludes: Iterable[str] = (), *, sync_paths: Iterable[Path] = ()
) -> list[Upload]:
    """Every file of the bundle folder, with its place under `file_path`.

    With `sync_paths` (folders inside `bundle_dir`, here the sync root), only the files in them.
    """
    patterns = [*_gitignore_patterns(bundle_dir), *excludes]
    folders = [folder.relative_to(bundle_dir) for folder in sync_paths] or [Path()]
    uploads = []
    for local in _files(bundle_dir, patterns):
        if not any(local.relative_to(bundle_dir).is_relative_to(folder) for folder in folders):
            continue
        relative = local.relative_to(bundle_dir).as_posix()
        notebook = notebook_import(local)
        if notebook is None:
            uploads.append(Upload(local, f"{file_path}/{relative}", file_digest(local)))
        else:
            remote = remote_notebook_name(f"{file_path}/{relative}", notebook[0])
            uploads.append(Upload(local, remote, file_digest(local), *notebook))
    return uploads


def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _files(bundle_dir: Path, patterns: list[str]) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(bundle_dir):
        relative_folder = Path(folder).relative_to(bundle_dir)
        dirs[:] = sorted(name for name in dirs if not _skipped(relative_folder / name, patterns, is_dir=True))
        found += [
            Path(folder) / name
            for name in sorted(files)
            if not _skipped(relative_folder / name, patterns, is_dir=False)
        ]
    return found


def _skipped(relative: Path, patterns: list[str], *, is_dir: bool) -> bool:
    if relative.name in ALWAYS_SKIPPED:
        return True
    return any(_matches(relative, pattern, is_dir=is_dir) for pattern in patterns)


def _matches(relative: Path, pattern: str, *, is_dir: bool) -> bool:
    """A `.gitignore` line without negation: `name`, `*.ext`, `dir/`, `/anchored/path`."""
    if pattern.endswith("/"):
        if not is_dir:
            return False
        pattern = pattern.rstrip("/")
    if "/" in pattern:
        return fnmatch.fnmatchcase(relative.as_posix(), pattern.lstrip("/"))
    return fnmatch.fnmatchcase(relative.name, pattern)


def _gitignore_patterns(bundle_dir: Path) -> list[str]:
    gitignore = bundle_dir / ".gitignore"
    if not gitignore.is_file():
        return []
    lines = (line.strip() for line in gitignore.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "!"))]


def read_manifest(api: WorkspaceApi, state_path: str, state: DeploymentState) -> dict[str, str]:
    """The digests of what the last deploy uploaded, by workspace path.

    Trusted only when that deploy also wrote the current state: after a deploy by
    someone else (the CLI, say) it is stale, and every file is uploaded again.
    """
    manifest: Any = workspace_files.read_json(api, f"{state_path}/{MANIFEST_FILE}")
    if not isinstance(manifest, dict) or (manifest.get("lineage"), manifest.get("serial")) != (
        state.lineage,
        state.serial,
    ):
        return {}
    return dict(manifest.get("files") or {})


def write_manifest(api: WorkspaceApi, state_path: str, state: DeploymentState, files: dict[str, str]) -> None:
    document = {"lineage": state.lineage, "serial": state.serial, "files": files}
    workspace_files.write_json(api, f"{state_path}/{MANIFEST_FILE}", document)
