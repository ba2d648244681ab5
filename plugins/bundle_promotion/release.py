"""A release: one version of a bundle, resolved to a commit and built once.

Every environment deploys exactly these bytes. Tasks of one run may land on machines
sharing no disk, so the release task puts the built files in an ``ArtifactStore`` and
later tasks check out the same commit and fetch the files, checking each sha256.
Git is driven through its CLI, so whatever credential helper the worker has applies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from bundle_promotion.errors import ReleaseError

_BUILD_OUTPUT_TAIL_LINES = 30
_TAGS_LISTED_IN_ERRORS = 10
_CONFIG_SUFFIXES = (".yml", ".yaml")
_NOT_CONFIG_FOLDERS = frozenset({".databricks", ".git"})
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


@dataclass(frozen=True)
class Artifact:
    """One file a release's build produced."""

    name: str
    relative_path: str
    sha256: str

    def __post_init__(self) -> None:
        # The store keys files by name and fetch writes to relative_path: neither may leave its folder.
        path = PurePosixPath(self.relative_path)
        if not self.name or path.name != self.name or path.is_absolute() or ".." in path.parts:
            raise ReleaseError(
                f"artifact {self.name!r} has path {self.relative_path!r}; "
                "it must be a file inside the bundle folder, named by the path's last part"
            )


@dataclass(frozen=True)
class Release:
    """One immutable thing to promote: a tagged commit, its built artifacts and its config."""

    bundle: str
    version: str
    commit: str
    artifacts: tuple[Artifact, ...]
    config_digest: str

    @property
    def digest(self) -> str:
        """The release's identity, which approvals bind to: it changes when anything deployed changes.

        Every field is part of it; the artifacts count as a set, so build order does not matter.
        """
        fields = asdict(self)
        fields["artifacts"] = sorted(fields["artifacts"], key=lambda artifact: artifact["relative_path"])
        return _sha256_of_json(fields)


class ArtifactSpec(Protocol):
    """What building needs of an artifact's config; ``bundle_config.ArtifactConfig`` fits."""

    @property
    def key(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def build(self) -> str | None: ...
    @property
    def path(self) -> Path: ...


def resolve_version(repo: str, version: str) -> str:
    """The commit a version tag points to, read from the remote (annotated tags peeled)."""
    tags = _remote_tags(repo)
    if version in tags:
        return tags[version]
    raise ReleaseError(
        f"tag {version!r} not found in {_scrub(repo)}; {_describe_tags(tags)}. "
        "Push the tag, or trigger the promotion with an existing one"
    )


def checkout(repo: str, commit: str, workdir: Path) -> Path:
    """``<workdir>/<commit>/`` holding the repository's tree at ``commit``.

    An intact checkout from an earlier call is reused. A new one is cloned beside it and
    renamed into place, so processes racing for the same commit never see a half-made tree.
    """
    if not _FULL_SHA.fullmatch(commit):
        raise ReleaseError(f"{commit!r} is not a full commit SHA; resolve the version to a commit first")
    target = workdir / commit
    if target.exists():
        if _is_intact(target, commit):
            return target
        _discard(target)
    workdir.mkdir(parents=True, exist_ok=True)
    staging = workdir / f".clone-{commit}-{uuid.uuid4().hex}"
    try:
        _clone_at(repo, commit, staging)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


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
    so renaming or moving a file changes it too. Together they define every target, so
    one digest serves all environments. Not covered: values given at deploy time
    (``BUNDLE_VAR_*``) and non-YAML files the config references, which the commit pins.
    """
    files = {
        path.relative_to(bundle_dir).as_posix(): _sha256_of_file(path) for path in _config_files(bundle_dir)
    }
    return _sha256_of_json(files)


class StoragePath(Protocol):
    """What the store needs of its root: ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` fit."""

    def __truediv__(self, key: str) -> StoragePath: ...
    def exists(self) -> bool: ...
    def mkdir(self, *, parents: bool = ..., exist_ok: bool = ...) -> None: ...
    def read_bytes(self) -> bytes: ...
    def write_bytes(self, data: bytes) -> int: ...


class ArtifactStore:
    """Release artifacts at ``<root>/<release digest>/<file name>``.

    Keying by release digest makes a stored file immutable in effect: other bytes would
    be another release. Files are read and written whole; wheels are small.
    """

    def __init__(self, root: StoragePath) -> None:
        self._root = root

    def put(self, release_digest: str, bundle_dir: Path, artifacts: Sequence[Artifact]) -> None:
        """Store the built files; a retry skips the files already there intact."""
        folder = self._root / release_digest
        folder.mkdir(parents=True, exist_ok=True)
        for artifact in artifacts:
            built = bundle_dir / artifact.relative_path
            data = built.read_bytes()
            _verify(artifact, data, location=str(built))
            stored = folder / artifact.name
            # Anything else there is a write cut short; writing again repairs it.
            if not (stored.exists() and stored.read_bytes() == data):
                stored.write_bytes(data)

    def fetch(self, release_digest: str, artifacts: Sequence[Artifact], bundle_dir: Path) -> None:
        """Write each file to ``bundle_dir/<relative_path>``, where the build had put it."""
        for artifact in artifacts:
            stored = self._root / release_digest / artifact.name
            if not stored.exists():
                raise ReleaseError(
                    f"{stored} is missing: the artifact store has no {artifact.name} for release "
                    f"{release_digest}. Rerun the release task; when workers share no disk, point the "
                    "store at an s3://, gs:// or abfs:// URL every worker can reach"
                )
            data = stored.read_bytes()
            _verify(artifact, data, location=str(stored))
            destination = bundle_dir / artifact.relative_path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)


def _remote_tags(repo: str) -> dict[str, str]:
    """Tag name → commit. An annotated tag is listed twice; its peeled ``^{}`` line names the commit."""
    tags: dict[str, str] = {}
    for line in _git("ls-remote", "--tags", "--", repo).splitlines():
        sha, ref = line.split("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            tags[name.removesuffix("^{}")] = sha
        else:
            tags.setdefault(name, sha)
    return tags


def _describe_tags(tags: dict[str, str]) -> str:
    if not tags:
        return "the repository has no tags"
    newest_first = sorted(tags, key=_natural_sort_key, reverse=True)
    shown = ", ".join(newest_first[:_TAGS_LISTED_IN_ERRORS])
    more = len(newest_first) - _TAGS_LISTED_IN_ERRORS
    return f"its tags are {shown}" + (f" and {more} more" if more > 0 else "")


def _natural_sort_key(name: str) -> list[Any]:
    # re.split with a group alternates text and digit runs, so each position compares like with like.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _is_intact(checkout_dir: Path, commit: str) -> bool:
    """At the commit with no tracked file changed; untracked files, such as build output, are fine."""
    try:
        head = _git("rev-parse", "HEAD", cwd=checkout_dir).strip()
        changes = _git("status", "--porcelain", "--untracked-files=no", cwd=checkout_dir)
    except ReleaseError:
        return False
    return head == commit and not changes


def _discard(checkout_dir: Path) -> None:
    # Renaming first takes the broken tree out of the way at once; deleting it may take a while.
    doomed = checkout_dir.with_name(f".discarded-{uuid.uuid4().hex}")
    try:
        checkout_dir.rename(doomed)
    except FileNotFoundError:
        return  # another process discarded it first
    shutil.rmtree(doomed, ignore_errors=True)


def _clone_at(repo: str, commit: str, destination: Path) -> None:
    _git("clone", "--quiet", "--no-checkout", "--", repo, str(destination))
    try:
        _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=destination)
    except ReleaseError:
        raise ReleaseError(
            f"commit {commit} is not in {_scrub(repo)}; was its tag deleted or the history rewritten? "
            "Cut a new version from a commit the repository keeps"
        ) from None
    _git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, cwd=destination)


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        staging.rename(target)
    except OSError:
        # A concurrent process renamed its clone of the same commit first: same tree, use it.
        if not target.exists():
            raise


def _git(*args: str, cwd: Path | None = None) -> str:
    # No prompts (a task has no terminal) and no optional index locks (processes share checkouts).
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        command = " ".join(["git", *args])
        raise ReleaseError(
            _scrub(f"`{command}` failed with exit code {result.returncode}: {result.stderr.strip()}")
        )
    return result.stdout


def _scrub(text: str) -> str:
    """Drop ``user:token@`` from URLs, so credentials never reach a task log."""
    return _URL_CREDENTIALS.sub("", text)


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
            sha256=_sha256_of_file(wheel),
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
    # The venv's scripts folder goes first, so the `uv` installed with this package builds.
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    result = subprocess.run(
        command,
        shell=True,
        cwd=folder,
        env={**os.environ, "PATH": path},
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
            f"{result.returncode}; the end of its output:\n{tail}"
        )


def _config_files(bundle_dir: Path) -> Iterator[Path]:
    for folder, subfolders, files in os.walk(bundle_dir):
        subfolders[:] = [name for name in subfolders if name not in _NOT_CONFIG_FOLDERS]
        yield from (Path(folder, name) for name in files if name.endswith(_CONFIG_SUFFIXES))


def _sha256_of_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _sha256_of_json(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _verify(artifact: Artifact, data: bytes, *, location: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != artifact.sha256:
        raise ReleaseError(
            f"{location} has sha256 {actual}, but the release recorded {artifact.sha256} for "
            f"{artifact.name}: the file changed after the build; rerun the release task"
        )
