"""The cheap read of a bundle that DAG parsing needs: its targets and its job keys.

Airflow parses DAG files every few seconds and checks each spec against its bundle
each time, so this reads the root file and its includes with PyYAML's C loader,
resolves nothing, and parses a file again only when it changed on disk.
`load.load_bundle` does the full resolution when a task runs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bundle_promotion.bundle.config.bounded_yaml import BUNDLE_FILE_BOUNDS, read_bounded
from bundle_promotion.bundle.config.shape import check_shape
from bundle_promotion.errors import BundleConfigError, FileRefused

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

# Reports a warning: the field, the problem and the file it is in.
Warn = Callable[[str, str, Path], None]
ROOT_FILE_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")


@dataclass(frozen=True)
class BundleOutline:
    """What a spec is checked against at parse time."""

    targets: tuple[str, ...]
    job_keys: tuple[str, ...]
    pipeline_keys: tuple[str, ...] = ()


def find_root_file(bundle_dir: Path) -> Path:
    """The bundle's root configuration file."""
    for name in ROOT_FILE_NAMES:
        root_file = bundle_dir / name
        if root_file.is_file():
            if not root_file.resolve().is_relative_to(bundle_dir.resolve()):
                raise BundleConfigError(
                    str(root_file),
                    "",
                    f"is a symbolic link to {root_file.resolve()}, outside the bundle folder; "
                    "a bundle's configuration must be its own files: copy the file into it",
                )
            return root_file
    raise BundleConfigError(
        str(bundle_dir), "", f"no bundle configuration found; expected one of {', '.join(ROOT_FILE_NAMES)}"
    )


def include_files(
    bundle_dir: Path, root_file: Path, root: Mapping[str, Any], warn: Warn | None = None
) -> list[Path]:
    """The files named by the root's `include` globs: per entry sorted, each once, root excluded.

    Every file must lie inside the bundle's repository, also once symbolic links are followed:
    a bundle's config is its repository's files, never the worker's. One outside the bundle
    folder is read, as the CLI does, and reported to `warn`.
    """
    entries = root.get("include") or []
    if not isinstance(entries, list):
        raise BundleConfigError(str(root_file), "include", "expected a list of paths or globs")
    seen = {root_file.resolve()}
    files: list[Path] = []
    for index, entry in enumerate(entries):
        field = f"include[{index}]"
        for match in _matches(bundle_dir, root_file, field, entry):
            resolved = _confined(bundle_dir, root_file, field, entry, match, warn)
            if resolved not in seen:
                seen.add(resolved)
                files.append(match)
    return files


def repository_root(folder: Path) -> Path | None:
    """The nearest folder at or above `folder` holding a `.git` entry (a checkout or a worktree)."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return None


def _matches(bundle_dir: Path, root_file: Path, field: str, entry: Any) -> list[Path]:
    if not isinstance(entry, str) or not entry.strip() or "\0" in entry:
        raise BundleConfigError(
            str(root_file), field, f"expected a relative path or glob, like resources/*.yml; got {entry!r}"
        )
    if os.path.isabs(entry):
        raise BundleConfigError(str(root_file), field, f"{entry}: includes must be relative paths")
    matches = sorted(glob.glob(entry, root_dir=bundle_dir))
    if not matches and not glob.has_magic(entry):
        raise BundleConfigError(
            str(root_file), field, f"{entry} defined in 'include' section does not match any files"
        )
    return [bundle_dir / match for match in matches]


def _confined(
    bundle_dir: Path, root_file: Path, field: str, entry: str, match: Path, warn: Warn | None
) -> Path:
    """The include's real path: inside the bundle, or inside its repository with a warning."""
    bundle_root, resolved = bundle_dir.resolve(), match.resolve()
    if resolved.is_relative_to(bundle_root):
        return resolved
    repository = repository_root(bundle_root)
    if repository is not None and resolved.is_relative_to(repository):
        if warn is not None:
            warn(
                field,
                f"{entry} reads {resolved}, outside the bundle folder {bundle_root}; "
                f"read because it is in the bundle's repository {repository}",
                root_file,
            )
        return resolved
    confine = repository or bundle_root
    # Where the entry points before any link below the bundle folder is followed.
    written = Path(os.path.normpath(bundle_root / os.path.relpath(match.absolute(), bundle_dir.absolute())))
    how = "through a symbolic link " if written.is_relative_to(confine) else ""
    where = (
        f"the repository {repository}"
        if repository
        else f"the bundle folder {bundle_root}, in no git repository"
    )
    raise BundleConfigError(
        str(root_file),
        field,
        f"{entry} reads {resolved}, {how}outside {where}; "
        "an include must stay inside the bundle's repository: copy or move the file into it",
    )


def config_files(bundle_dir: Path) -> list[Path]:
    """The root file, then its includes."""
    root_file = find_root_file(bundle_dir)
    return [root_file, *include_files(bundle_dir, root_file, _parsed(root_file))]


def read_outline(bundle_dir: Path) -> BundleOutline:
    """The targets, job keys and pipeline keys (root, includes and every target), each sorted."""
    configs = [_parsed(path) for path in config_files(bundle_dir)]
    targets = {name for config in configs for name in _mapping(config.get("targets"))}
    keys: dict[str, set[str]] = {"jobs": set(), "pipelines": set()}
    for config in configs:
        for section in (config, *map(_mapping, _mapping(config.get("targets")).values())):
            for kind, found in keys.items():
                found.update(_mapping(_mapping(section.get("resources")).get(kind)))
    return BundleOutline(
        targets=tuple(sorted(targets)),
        job_keys=tuple(sorted(keys["jobs"])),
        pipeline_keys=tuple(sorted(keys["pipelines"])),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parsed(path: Path) -> dict[str, Any]:
    try:
        stat = path.stat()
    except OSError as error:
        raise BundleConfigError(str(path), "", f"cannot read the file: {error.strerror}") from None
    return _parse(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _parse(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """One file's mapping; the modification stamp in the key makes an edited file parse again."""
    try:
        data = yaml.load(read_bounded(path, BUNDLE_FILE_BOUNDS), Loader=_Loader)
    except FileRefused as refused:
        raise BundleConfigError(str(path), "", refused.problem, refused.line) from None
    except yaml.YAMLError as error:
        raise BundleConfigError(str(path), "", f"invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleConfigError(str(path), "", "expected a mapping at the top level")
    check_shape(data, path)
    return data
