"""Build a release's artifacts once, and the digest of its config.

Every environment deploys exactly these bytes: nothing is rebuilt per environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from bundle_promotion.bundle.config.outline import config_files
from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.records import Artifact, sha256_of_json
from bundle_promotion.processes import child_environment, scrub, secrets_in

_BUILD_OUTPUT_TAIL_LINES = 30
# Besides what any process needs, a build sees its tools' own settings (index URLs, caches).
_BUILD_TOOL_PREFIXES = ("UV_", "PIP_", "POETRY_", "HATCH_", "SETUPTOOLS_", "SOURCE_DATE_EPOCH")
_CONFIG_SUFFIXES = (".yml", ".yaml")
_NOT_CONFIG_FOLDERS = frozenset({".databricks", ".git"})


class ArtifactSpec(Protocol):
    """What building needs of an artifact's config; ``bundle.config.load.ArtifactConfig`` fits."""

    @property
    def key(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def build(self) -> str | None: ...
    @property
    def path(self) -> Path: ...


def build_artifacts(bundle_dir: Path, artifacts: Iterable[ArtifactSpec]) -> list[Artifact]:
    """Run each artifact's build in its folder and hash the wheels it leaves in ``dist/``."""
    built = [artifact for spec in artifacts for artifact in _build(bundle_dir.resolve(), spec)]
    names = [artifact.name for artifact in built]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ReleaseError(f"several artifacts built files named {duplicates}; give each wheel its own name")
    return built


def config_digest(bundle_dir: Path) -> str:
    """sha256 over the bundle's configuration files.

    Covers every ``*.yml``/``*.yaml`` under ``bundle_dir`` (outside ``.databricks`` and
    ``.git``): the root file, its includes and any other YAML, with their relative paths,
    so renaming or moving a file changes it too; and the includes outside it, elsewhere in
    the repository, by their path from it. Together they define every target, so one digest
    serves all environments. Not covered: values given at deploy time (``BUNDLE_VAR_*``) and
    non-YAML files the config references, which the commit pins.
    """
    files = {
        path.relative_to(bundle_dir).as_posix(): sha256_of_file(path) for path in _config_files(bundle_dir)
    }
    for path in config_files(bundle_dir):
        files.setdefault(Path(os.path.relpath(path, bundle_dir)).as_posix(), sha256_of_file(path))
    return sha256_of_json(files)


def _build(bundle_dir: Path, spec: ArtifactSpec) -> list[Artifact]:
    command = _build_command(spec)
    folder = _build_folder(bundle_dir, spec)
    dist = folder / "dist"
    shutil.rmtree(dist, ignore_errors=True)  # only this build's wheels may count
    _run_build_command(spec.key, command, folder)
    wheels = sorted(dist.glob("*.whl"))
    if not wheels:
        raise ReleaseError(f"artifact {spec.key!r}: `{command}` succeeded but left no wheel in {dist}")
    return [
        Artifact(
            name=wheel.name,
            relative_path=wheel.relative_to(bundle_dir).as_posix(),
            sha256=sha256_of_file(wheel),
        )
        for wheel in wheels
    ]


def _build_command(spec: ArtifactSpec) -> str:
    if spec.type != "whl":
        raise ReleaseError(f"artifact {spec.key!r} has type {spec.type!r}; only 'whl' artifacts can be built")
    if not spec.build:
        raise ReleaseError(
            f"artifact {spec.key!r} has no build command; set artifacts.{spec.key}.build, "
            "for example to 'uv build --wheel'"
        )
    return spec.build


def _build_folder(bundle_dir: Path, spec: ArtifactSpec) -> Path:
    folder = (bundle_dir / spec.path).resolve()
    if not folder.is_relative_to(bundle_dir):
        raise ReleaseError(f"artifact {spec.key!r} has path {spec.path}; it must be inside the bundle folder")
    return folder


def _run_build_command(key: str, command: str, folder: Path) -> None:
    environment = child_environment(prefixes=_BUILD_TOOL_PREFIXES)
    # The venv's scripts folder goes first, so the `uv` installed with this package builds.
    environment["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), environment.get("PATH", "")])
    result = subprocess.run(
        command,
        shell=True,
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-_BUILD_OUTPUT_TAIL_LINES:])
        raise ReleaseError(
            f"artifact {key!r}: `{command}` in {folder} failed with exit code "
            f"{result.returncode}; the end of its output:\n{scrub(tail, secrets_in(environment))}"
        )


def _config_files(bundle_dir: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(bundle_dir):
        subfolders[:] = [name for name in subfolders if name not in _NOT_CONFIG_FOLDERS]
        yield from (Path(folder, name) for name in files if name.endswith(_CONFIG_SUFFIXES))


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
