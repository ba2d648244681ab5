"""The cheap read of a bundle that DAG parsing needs: its targets and its job keys.

Airflow parses DAG files every few seconds and checks each spec against its bundle
each time, so this reads the root file and its includes with PyYAML's C loader,
resolves nothing, and parses a file again only when it changed on disk.
`load.load_bundle` does the full resolution when a task runs.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bundle_promotion.errors import BundleConfigError

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

ROOT_FILE_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")


@dataclass(frozen=True)
class BundleOutline:
    """What a spec is checked against at parse time."""

    targets: tuple[str, ...]
    job_keys: tuple[str, ...]


def find_root_file(bundle_dir: Path) -> Path:
    """The bundle's root configuration file."""
    for name in ROOT_FILE_NAMES:
        if (bundle_dir / name).is_file():
            return bundle_dir / name
    raise BundleConfigError(
        str(bundle_dir), "", f"no bundle configuration found; expected one of {', '.join(ROOT_FILE_NAMES)}"
    )


def include_files(bundle_dir: Path, root_file: Path, root: Mapping[str, Any]) -> list[Path]:
    """The files named by the root's `include` globs: per entry sorted, each once, root excluded."""
    entries = root.get("include") or []
    if not isinstance(entries, list):
        raise BundleConfigError(str(root_file), "include", "expected a list of paths or globs")
    seen = {root_file.resolve()}
    files: list[Path] = []
    for entry in entries:
        if os.path.isabs(entry):
            raise BundleConfigError(str(root_file), "include", f"{entry}: includes must be relative paths")
        matches = sorted(glob.glob(str(bundle_dir / entry)))
        if not matches and not glob.has_magic(entry):
            raise BundleConfigError(
                str(root_file), "include", f"{entry} defined in 'include' section does not match any files"
            )
        for match in map(Path, matches):
            if match.resolve() not in seen:
                seen.add(match.resolve())
                files.append(match)
    return files


def read_outline(bundle_dir: Path) -> BundleOutline:
    """The targets and job keys (root, includes and every target), each sorted."""
    root_file = find_root_file(bundle_dir)
    root = _parsed(root_file)
    configs = [root, *(_parsed(path) for path in include_files(bundle_dir, root_file, root))]
    targets = {name for config in configs for name in _mapping(config.get("targets"))}
    jobs: set[str] = set()
    for config in configs:
        for section in (config, *map(_mapping, _mapping(config.get("targets")).values())):
            jobs.update(_mapping(_mapping(section.get("resources")).get("jobs")))
    return BundleOutline(targets=tuple(sorted(targets)), job_keys=tuple(sorted(jobs)))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parsed(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return _parse(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=256)
def _parse(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """One file's mapping; the modification stamp in the key makes an edited file parse again."""
    try:
        data = yaml.load(path.read_bytes(), Loader=_Loader)
    except yaml.YAMLError as error:
        raise BundleConfigError(str(path), "", f"invalid YAML: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BundleConfigError(str(path), "", "expected a mapping at the top level")
    return data
