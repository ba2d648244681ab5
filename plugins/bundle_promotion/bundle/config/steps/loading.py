"""A bundle on its way from files to a resolved config, and what every step shares."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.located_yaml import kind_of
from bundle_promotion.bundle.config.outline import Warn
from bundle_promotion.errors import BundleConfigError

# Resolves a variable's `lookup` (kind, name) to an id, e.g. ("warehouse", "Shared") -> "abc123".
Lookup = Callable[[str, str], str]
WORKSPACE_SUBPATHS = {
    "file_path": "files",
    "artifact_path": "artifacts",
    "state_path": "state",
    "resource_path": "resources",
}


@dataclass
class Loading:
    """A bundle on its way from files to a resolved config."""

    bundle_dir: Path
    root_file: Path
    target: str
    variable_overrides: Mapping[str, str]
    current_user: Mapping[str, Any] | None
    lookup: Lookup | None = None
    engine: str = "native"  # who deploys: "native" refuses the kinds it cannot deploy, "cli" deploys all
    tree: dict[str, Any] = field(default_factory=dict)
    target_tree: dict[str, Any] = field(default_factory=dict)
    # What the CLI reports as `Warning: ...` and accepts; `--strict` makes them errors.
    warnings: list[BundleConfigError] = field(default_factory=list)

    def error(self, field_path: str, problem: str, file: Path | None = None) -> BundleConfigError:
        return BundleConfigError(str(file or self.root_file), field_path, problem)

    def warn(self, field_path: str, problem: str, file: Path | None = None) -> None:
        self.warnings.append(self.error(field_path, problem, file))


def merge(base: Any, override: Any, file: Path, where: str, warn: Warn | None = None) -> Any:
    """The CLI's merge: maps merge key by key, lists concatenate, scalars and nulls give way.

    Values of different kinds (text over a mapping) cannot merge: with `warn`, the override
    replaces the base and the warning says so, as the CLI does; without, it is an error.
    """
    if base is None:
        return override
    if override is None:
        return base
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            at = f"{where}.{key}" if where else key
            merged[key] = merge(base[key], value, file, at, warn) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    if isinstance(base, dict | list) or isinstance(override, dict | list):
        problem = f"cannot merge {kind_of(base)} with {kind_of(override)}"
        if warn is None:
            raise BundleConfigError(str(file), where, problem)
        warn(where, f"{problem}; the value from {file} replaces it", file)
    return override


def resources_of(tree: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one kind, by key (`jobs`, `pipelines`)."""
    resources = (tree.get("resources") or {}).get(kind) or {}
    return {key: resource for key, resource in resources.items() if isinstance(resource, dict)}


def jobs_of(tree: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(tree, "jobs")
