"""A bundle's configuration, resolved for one target the way `databricks bundle validate` does.

`target_names` and `job_keys` are the cheap reads used while Airflow parses DAGs:
they parse YAML and nothing else. `load_bundle` runs the full resolution as named
steps (see `steps`), in the CLI's order.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config import steps, target_mode
from bundle_promotion.bundle.config.located_yaml import plain
from bundle_promotion.bundle.config.outline import find_root_file, read_outline
from bundle_promotion.errors import BundleConfigError, InvalidBundle

# Config resolution, in order: load → merge target → check the engine, auth fields and kinds →
# git details → resolve variables → default workspace paths → interpolate → merge keyed lists →
# mode and presets → defaults → translate paths → kinds' defaults → run_as, permissions →
# annotate → validate (mode, enums, kinds the engine deploys).
STEPS: tuple[Callable[[steps.Loading], None], ...] = (
    steps.load_files,
    steps.select_target,
    steps.check_engine,
    steps.check_auth_interpolation,
    steps.load_git_details,
    steps.check_kinds,
    steps.set_variable_values,
    steps.default_workspace_paths,
    steps.check_root_path,
    steps.default_sync_paths,
    steps.interpolate,
    steps.merge_keyed_lists,
    steps.capture_uc_dependencies,
    target_mode.apply_target_mode,
    target_mode.apply_presets,
    steps.apply_kind_presets,
    steps.set_resource_defaults,
    steps.translate_paths,
    steps.apply_kind_defaults,
    steps.apply_run_as,
    steps.apply_permissions,
    steps.check_deployment_fields,
    steps.annotate_resources,
    target_mode.validate_target_mode,
    steps.check_enums,
    steps.reject_undeployable,
)

# Top-level keys of `databricks bundle validate -o json`, in its order.
_VALIDATE_KEYS = (
    "bundle",
    "workspace",
    "variables",
    "artifacts",
    "resources",
    "sync",
    "presets",
    "permissions",
    "run_as",
)


@dataclass(frozen=True)
class WorkspacePaths:
    """Where a target lives in the workspace, each path with the `/Workspace` prefix."""

    root_path: str
    file_path: str
    artifact_path: str
    state_path: str
    resource_path: str


@dataclass(frozen=True)
class ArtifactConfig:
    """An artifact the bundle builds, e.g. a wheel from `uv build --wheel`."""

    key: str
    type: str
    build: str | None
    path: Path  # the absolute local folder the build runs in


@dataclass(frozen=True)
class ResolvedBundle:
    """One target of a bundle, fully resolved: variables set, references and paths resolved."""

    name: str
    target: str
    mode: str | None
    bundle_dir: Path
    workspace: WorkspacePaths
    variables: dict[str, Any]  # name -> value
    artifacts: dict[str, ArtifactConfig]
    resources: dict[str, dict[str, dict[str, Any]]]  # {"jobs": {key: JobSettings JSON}}
    config: dict[str, Any]  # the whole resolved tree, as `validate -o json` shows it

    @property
    def sync_paths(self) -> list[Path]:
        """The local folders a deploy uploads (`sync.paths`, relative to the bundle folder)."""
        paths = (self.config.get("sync") or {}).get("paths") or ["."]
        return [Path(os.path.normpath(self.bundle_dir / str(path))) for path in paths]

    @property
    def sync_root(self) -> Path:
        """The folder uploaded to `workspace.file_path`: the bundle folder and every sync path in it."""
        return Path(os.path.commonpath([self.bundle_dir, *self.sync_paths]))

    def as_validate_json(self) -> dict[str, Any]:
        """The shape of `databricks bundle validate -o json` for this target."""
        return {key: copy.deepcopy(self.config[key]) for key in _VALIDATE_KEYS if key in self.config}


def target_names(bundle_dir: Path) -> list[str]:
    """The bundle's target names, sorted. Parses YAML only, so it is cheap at DAG-parse time."""
    return list(read_outline(bundle_dir).targets)


def job_keys(bundle_dir: Path) -> list[str]:
    """The keys under `resources.jobs` in the root, the includes and every target, sorted."""
    return list(read_outline(bundle_dir).job_keys)


def workspace_auth_fields(bundle_dir: Path, target: str) -> dict[str, str]:
    """The target's `workspace.profile` and `workspace.host` as written: what the CLI consults to pick
    credentials before anything else is resolved. Empty when the bundle cannot be read this far."""
    try:
        loading = _loading(bundle_dir, target, None, None, None, "native")
        steps.load_files(loading)
        steps.select_target(loading)
    except BundleConfigError:
        return {}  # validate reports it, with every other problem
    workspace = loading.tree.get("workspace") or {}
    return {
        name: str(workspace[name])
        for name in ("profile", "host")
        if isinstance(workspace.get(name), str) and "${" not in workspace[name]
    }


def load_bundle(
    bundle_dir: Path,
    target: str,
    variables: Mapping[str, str] | None = None,
    current_user: Mapping[str, Any] | None = None,
    lookup: steps.Lookup | None = None,
    engine: str = "native",
) -> ResolvedBundle:
    """Resolve `target` of the bundle in `bundle_dir` (an empty `target` picks the default one).

    `variables` act like `--var name=value`. `current_user` is the answer of the
    workspace's `/api/2.0/preview/scim/v2/Me`; it is needed only where the config
    uses the user (the default root path, `${workspace.current_user.*}`, development mode).
    `lookup` resolves variables' `lookup`s (see `lookup.api_lookup`). `engine` is who deploys:
    `native` refuses the resource kinds the native engine does not deploy; `cli` accepts them all.
    """
    loading = _loading(bundle_dir, target, variables, current_user, lookup, engine)
    for step in STEPS:
        step(loading)
    return _resolved(loading, plain(loading.tree))


def _loading(
    bundle_dir: Path,
    target: str,
    variables: Mapping[str, str] | None,
    current_user: Mapping[str, Any] | None,
    lookup: steps.Lookup | None,
    engine: str,
) -> steps.Loading:
    bundle_dir = bundle_dir.resolve()
    return steps.Loading(
        bundle_dir=bundle_dir,
        root_file=find_root_file(bundle_dir),
        target=target,
        variable_overrides=dict(variables or {}),
        current_user=current_user,
        lookup=lookup,
        engine=engine,
    )


@dataclass(frozen=True)
class Validation:
    """What `databricks bundle validate -o json` reports: the config as far as it resolved, errors
    and warnings."""

    document: dict[str, Any]
    errors: list[BundleConfigError]
    warnings: list[BundleConfigError] = field(default_factory=list)

    def stderr(self) -> str:
        """The CLI's error and warning lines and its closing count, e.g. `Found 1 error and 1 warning`."""
        if not self.errors and not self.warnings:
            return "Validation OK!"
        lines = [f"Error: {error}" for error in self.errors]
        lines += [f"Warning: {warning}" for warning in self.warnings]
        counts = [_count(len(self.errors), "error"), _count(len(self.warnings), "warning")]
        return "\n".join([*lines, "", "Found " + " and ".join(count for count in counts if count)])


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}" if number else ""


def validate(
    bundle_dir: Path,
    target: str,
    variables: Mapping[str, str] | None = None,
    current_user: Mapping[str, Any] | None = None,
    lookup: steps.Lookup | None = None,
    engine: str = "native",
    *,
    strict: bool = False,
) -> Validation:
    """Resolve like `load_bundle`; on failure keep the config resolved so far, as the CLI prints it.

    `strict` (the CLI's `--strict`) reports every warning as an error.
    """
    try:
        loading = _loading(bundle_dir, target, variables, current_user, lookup, engine)
    except BundleConfigError as error:
        return Validation({}, [error])
    try:
        for step in STEPS:
            step(loading)
        bundle = _resolved(loading, plain(loading.tree))
    except BundleConfigError as error:
        tree = plain(loading.tree)
        errors = error.errors if isinstance(error, InvalidBundle) else [error]
        document = {key: tree[key] for key in _VALIDATE_KEYS if key in tree}
        return _reported(document, errors, loading.warnings, strict)
    return _reported(bundle.as_validate_json(), [], loading.warnings, strict)


def _reported(
    document: dict[str, Any], errors: list[BundleConfigError], warnings: list[BundleConfigError], strict: bool
) -> Validation:
    return (
        Validation(document, [*errors, *warnings], []) if strict else Validation(document, errors, warnings)
    )


def _resolved(loading: steps.Loading, tree: dict[str, Any]) -> ResolvedBundle:
    bundle = tree["bundle"]
    if not bundle.get("name"):
        raise BundleConfigError(str(loading.root_file), "bundle.name", "every bundle needs a name")
    workspace = tree["workspace"]
    return ResolvedBundle(
        name=bundle["name"],
        target=bundle["target"],
        mode=bundle.get("mode"),
        bundle_dir=loading.bundle_dir,
        workspace=WorkspacePaths(
            **{name: workspace[name] for name in ("root_path", *steps.WORKSPACE_SUBPATHS)}
        ),
        variables={name: spec["value"] for name, spec in tree["variables"].items()},
        artifacts={
            key: ArtifactConfig(
                key=key, type=spec.get("type", "whl"), build=spec.get("build"), path=Path(spec["path"])
            )
            for key, spec in (tree.get("artifacts") or {}).items()
        },
        resources=tree.get("resources") or {},
        config=tree,
    )
