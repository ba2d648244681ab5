"""The steps that turn bundle files into the config of one target.

Each step is a small function over a `Loading`, named after what it does, in the
spirit of the CLI's mutators. `load.load_bundle` applies them in order;
the order matters and is the one `databricks bundle validate` uses.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.interpolation import resolve_references
from bundle_promotion.bundle.config.job_settings import (
    KEYED_LISTS,
    LOCAL_LIBRARY_PREFIX,
    bundle_annotations,
    is_local_library,
    library_slots,
    tasks_of,
)
from bundle_promotion.bundle.config.located_yaml import kind_of, read_yaml, source_of
from bundle_promotion.bundle.config.notebooks import notebook_import
from bundle_promotion.bundle.config.outline import include_files
from bundle_promotion.bundle.config.shape import check_shape
from bundle_promotion.errors import BundleConfigError, InvalidBundle

# Sections of a target that are merged into the root config; the rest replace it.
MERGED_TARGET_SECTIONS = ("bundle", "workspace", "artifacts", "resources", "sync", "permissions", "presets")
# Task fields naming a notebook or file of the bundle, uploaded under `workspace.file_path`.
_TASK_FILE_FIELDS = (("notebook_task", "notebook_path"), ("spark_python_task", "python_file"))
# Pipeline library fields naming a notebook or file of the bundle.
_PIPELINE_LIBRARY_FIELDS = (("notebook", "path"), ("file", "path"))
# Resource kinds the native engine deploys; any other kind fails validation.
SUPPORTED_KINDS = ("jobs", "pipelines")
# Bundle-level permission levels and what each means for a job and a pipeline (`bundle/permissions`).
PERMISSION_LEVELS = {
    "jobs": {"CAN_MANAGE": "CAN_MANAGE", "CAN_VIEW": "CAN_VIEW", "CAN_RUN": "CAN_MANAGE_RUN"},
    "pipelines": {"CAN_MANAGE": "CAN_MANAGE", "CAN_VIEW": "CAN_VIEW", "CAN_RUN": "CAN_RUN"},
}
PRINCIPAL_FIELDS = ("user_name", "group_name", "service_principal_name")
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
    tree: dict[str, Any] = field(default_factory=dict)
    target_tree: dict[str, Any] = field(default_factory=dict)

    def error(self, field_path: str, problem: str, file: Path | None = None) -> BundleConfigError:
        return BundleConfigError(str(file or self.root_file), field_path, problem)


# --- load ------------------------------------------------------------------------------------


def load_files(loading: Loading) -> None:
    """Read the root file and its includes into one tree; a resource may be defined only once."""
    root = read_yaml(loading.root_file, sourced=True)
    check_shape(root, loading.root_file)
    defined_in: dict[tuple[str, str], Path] = {}
    _record_resources(root, loading.root_file, defined_in)
    for path in include_files(loading.bundle_dir, loading.root_file, root):
        included = read_yaml(path, sourced=True)
        check_shape(included, path)
        if "include" in included:
            raise BundleConfigError(str(path), "include", "only the root file may include other files")
        _record_resources(included, path, defined_in)
        root = merge(root, included, path, "")
    loading.tree = root


def _record_resources(config: Mapping[str, Any], file: Path, defined_in: dict[tuple[str, str], Path]) -> None:
    for kind, resources in (config.get("resources") or {}).items():
        for key in resources or {}:
            if (kind, key) in defined_in:
                raise BundleConfigError(
                    str(file),
                    f"resources.{kind}.{key}",
                    f"already defined in {defined_in[kind, key]}; resource keys must be unique",
                )
            defined_in[kind, key] = file


def merge(base: Any, override: Any, file: Path, where: str) -> Any:
    """The CLI's merge: maps merge key by key, lists concatenate, scalars and nulls give way."""
    if base is None:
        return override
    if override is None:
        return base
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = (
                merge(base[key], value, file, f"{where}.{key}" if where else key) if key in base else value
            )
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    if isinstance(base, dict | list) or isinstance(override, dict | list):
        raise BundleConfigError(str(file), where, f"cannot merge {kind_of(base)} with {kind_of(override)}")
    return override


# --- merge the target --------------------------------------------------------------------------


def _choose_target(targets: Mapping[str, Any], requested: str, root_file: Path) -> str:
    """The requested target; else the one marked `default: true`; else the only one."""
    if requested:
        if requested not in targets:
            available = ", ".join(sorted(targets)) or "none"
            raise BundleConfigError(
                str(root_file), "targets", f"{requested}: no such target. Available targets: {available}"
            )
        return requested
    defaults = sorted(name for name, target in targets.items() if (target or {}).get("default") is True)
    if len(defaults) > 1:
        raise BundleConfigError(
            str(root_file), "targets", f"multiple targets are marked as default: {', '.join(defaults)}"
        )
    if defaults:
        return defaults[0]
    if len(targets) == 1:
        return next(iter(targets))
    raise BundleConfigError(
        str(root_file), "targets", f"please specify a target; available targets: {', '.join(sorted(targets))}"
    )


def select_target(loading: Loading) -> None:
    """Merge the chosen target's overrides into the root and drop `targets`.

    A bundle without targets gets an empty one named `default`, like the CLI.
    """
    targets = loading.tree.pop("targets", None) or {"default": {}}
    if not isinstance(targets, dict):
        raise loading.error("targets", "expected a mapping of target names to targets")
    loading.target = _choose_target(targets, loading.target, loading.root_file)
    target = targets[loading.target] or {}
    loading.target_tree = target
    where = f"targets.{loading.target}"
    for section in MERGED_TARGET_SECTIONS:
        if section in target:
            base = loading.tree.get(section)
            loading.tree[section] = merge(base, target[section], loading.root_file, f"{where}.{section}")
    if "run_as" in target:
        loading.tree["run_as"] = target["run_as"]
    _override_variable_values(loading, target.get("variables") or {}, where)
    bundle = loading.tree.setdefault("bundle", {})
    bundle["target"] = loading.target
    if "mode" in target:
        bundle["mode"] = target["mode"]


def _override_variable_values(loading: Loading, values: Mapping[str, Any], where: str) -> None:
    """A target sets a variable's value (`name: value`), or its `default`/`lookup` in full form."""
    declared = loading.tree.setdefault("variables", {})
    for name, value in values.items():
        if name not in declared:
            raise loading.error(
                f"{where}.variables.{name}", f"variable {name} is not defined but is assigned a value"
            )
        spec = dict(_variable_spec(declared[name]))
        full_form = isinstance(value, dict) and ("default" in value or "lookup" in value)
        given = {key: value[key] for key in ("default", "lookup") if key in value} if full_form else None
        # The target's default or lookup replaces the root's; a value given one way drops the other.
        spec.pop("default", None)
        spec.pop("lookup", None)
        spec.update(given if given is not None else {"default": value})
        declared[name] = spec


def _variable_spec(declaration: Any) -> dict[str, Any]:
    return declaration if isinstance(declaration, dict) else {"default": declaration}


def merge_keyed_lists(loading: Loading) -> None:
    """Merge a job's tasks by `task_key` (and clusters, parameters, environments by their keys).

    After a target's lists were appended to the root's, an element repeated with the
    same key is merged into the first one, which keeps its position.
    """
    for job in _jobs(loading.tree).values():
        for list_name, key_field in KEYED_LISTS.items():
            if isinstance(job.get(list_name), list):
                job[list_name] = _merge_by_key(job[list_name], key_field, loading.root_file)


def _merge_by_key(items: list[Any], key_field: str, file: Path) -> list[Any]:
    merged: dict[Any, Any] = {}
    for position, item in enumerate(items):
        key = item.get(key_field) if isinstance(item, dict) else None
        slot = key if key is not None else ("__position__", position)
        merged[slot] = merge(merged[slot], item, file, key_field) if slot in merged else item
    return list(merged.values())


# --- variables ---------------------------------------------------------------------------------


def set_variable_values(loading: Loading) -> None:
    """Give each variable its `value`, from the first that has one, in the CLI's order:

    `--var`, `BUNDLE_VAR_<name>`, the `lookup`, the variable-overrides file, the default.
    """
    declared = loading.tree.setdefault("variables", {})
    for name in loading.variable_overrides:
        if name not in declared:
            raise loading.error(f"variables.{name}", f"variable {name} has not been defined")
    from_file = _variable_overrides_file(loading)
    unassigned = []
    for name, declaration in declared.items():
        spec = dict(_variable_spec(declaration))
        value = _first_value(loading.variable_overrides.get(name), os.environ.get(f"BUNDLE_VAR_{name}"))
        if value is None and spec.get("lookup"):
            value = _looked_up(loading, name, spec["lookup"])
        value = _first_value(value, from_file.get(name), spec.get("default"))
        if value is None:
            unassigned.append(loading.error(f"variables.{name}", _no_value_message(name, loading.target)))
            continue
        if isinstance(value, dict | list) and spec.get("type") != "complex":
            raise loading.error(
                f"variables.{name}",
                f"variable {name} is not of type complex, but the value in the variable is a complex type; "
                "declare it with `type: complex`",
            )
        if spec.get("type") == "complex" and name in loading.variable_overrides:
            raise loading.error(
                f"variables.{name}",
                f"setting variables of complex type via --var flag is not supported: {name}",
            )
        declared[name] = {**spec, "value": value}
    if unassigned:
        raise unassigned[0] if len(unassigned) == 1 else InvalidBundle(unassigned)


def _looked_up(loading: Loading, name: str, lookup: Any) -> str:
    """The id a `lookup: {<kind>: <name>}` names, asked of the workspace."""
    if not isinstance(lookup, dict) or len(lookup) != 1:
        raise loading.error(f"variables.{name}.lookup", "expected exactly one kind, e.g. `warehouse: Shared`")
    ((kind, wanted),) = lookup.items()
    if loading.lookup is None:
        raise loading.error(
            f"variables.{name}.lookup",
            f"resolving {kind} {wanted!r} needs the workspace; validate against a workspace "
            f"or give the value with --var {name}=<id>",
        )
    return loading.lookup(str(kind), str(wanted))


def _first_value(*candidates: Any) -> Any:
    return next((value for value in candidates if value is not None), None)


def _variable_overrides_file(loading: Loading) -> dict[str, Any]:
    path = loading.bundle_dir / ".databricks" / "bundle" / loading.target / "variable-overrides.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise BundleConfigError(str(path), "", f"invalid JSON: {error}") from error
    if not isinstance(values, dict):
        raise BundleConfigError(str(path), "", "expected a JSON object of variable names to values")
    return values


def _no_value_message(name: str, target: str) -> str:
    return (
        f'no value assigned to required variable {name}. Assignment can be done using "--var", '
        f"by setting the BUNDLE_VAR_{name} environment variable, "
        f"or in .databricks/bundle/{target}/variable-overrides.json file"
    )


# --- workspace paths ---------------------------------------------------------------------------


def default_workspace_paths(loading: Loading) -> None:
    """root_path defaults to `~/.bundle/<name>/<target>`; the other paths live under it.

    `~` is the deploying user's home, and paths get the `/Workspace` prefix, as the CLI sets them.
    """
    workspace = loading.tree.setdefault("workspace", {})
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
    """The user as the CLI shows it, with `short_name`: the user name up to `@`, made identifier-safe.

    For a service principal (its user name is an application id) the display name is used.
    """
    name = str(user.get("userName", ""))
    if is_service_principal(user) and user.get("displayName"):
        name = str(user["displayName"])
    short = re.sub(r"[^a-z0-9_]", "_", name.split("@", 1)[0].lower())
    return {**user, "short_name": user.get("short_name", short)}


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


# --- supported resource kinds ---------------------------------------------------------------


def reject_unsupported(loading: Loading) -> None:
    """A resource kind the native engine does not deploy fails validation, naming kind and key."""
    for kind, resources in (loading.tree.get("resources") or {}).items():
        if kind in SUPPORTED_KINDS:
            continue
        key = next(iter(resources or {}), "")
        raise loading.error(
            f"resources.{kind}.{key}".rstrip("."),
            f"resource kind {kind} ({key}) is not supported by the native engine, which deploys "
            f"{' and '.join(SUPPORTED_KINDS)}; deploy this bundle with `engine: cli`",
        )


# --- interpolate -------------------------------------------------------------------------------


def interpolate(loading: Loading) -> None:
    loading.tree = resolve_references(loading.tree, loading.root_file)


# --- translate paths ---------------------------------------------------------------------------


def translate_paths(loading: Loading) -> None:
    """Resolve local paths against the file that declared them.

    Notebooks and Python files become their uploaded copies under `workspace.file_path`;
    libraries become `./<path from the bundle root>` globs the engine builds and uploads;
    artifact folders become absolute local paths.
    """
    for key, pipeline in resources_of(loading.tree, "pipelines").items():
        _translate_pipeline_libraries(loading, f"resources.pipelines.{key}", pipeline)
    for key, job in _jobs(loading.tree).items():
        _translate_task_files(loading, f"resources.jobs.{key}", job)
        for slot in library_slots(job):
            if isinstance(slot.value, str) and is_local_library(slot.value):
                slot.replace([_library_reference(loading, slot.value)])
    for artifact in (loading.tree.get("artifacts") or {}).values():
        declared = artifact.get("path") or "."
        artifact["path"] = os.path.normpath(source_of(declared, loading.root_file).parent / declared)


def _translate_task_files(loading: Loading, where: str, job: dict[str, Any]) -> None:
    file_path = loading.tree["workspace"]["file_path"]
    for task_path, task in tasks_of(job):
        for task_type, field_name in _TASK_FILE_FIELDS:
            spec = task.get(task_type)
            if not isinstance(spec, dict) or not _is_local_path(spec.get(field_name)):
                continue
            if (spec.get("source") or ("GIT" if job.get("git_source") else "WORKSPACE")) == "GIT":
                continue  # a path inside the job's git repository, not in the bundle
            field_path = f"{where}.{task_path}.{task_type}.{field_name}"
            is_notebook = task_type == "notebook_task"
            spec[field_name] = _uploaded_copy(loading, spec[field_name], is_notebook, file_path, field_path)


def _translate_pipeline_libraries(loading: Loading, where: str, pipeline: dict[str, Any]) -> None:
    file_path = loading.tree["workspace"]["file_path"]
    for index, library in enumerate(pipeline.get("libraries") or []):
        for library_type, field_name in _PIPELINE_LIBRARY_FIELDS:
            spec = library.get(library_type) if isinstance(library, dict) else None
            if isinstance(spec, dict) and _is_local_path(spec.get(field_name)):
                field_path = f"{where}.libraries[{index}].{library_type}.{field_name}"
                is_notebook = library_type == "notebook"
                spec[field_name] = _uploaded_copy(
                    loading, spec[field_name], is_notebook, file_path, field_path
                )


def _uploaded_copy(loading: Loading, local: str, is_notebook: bool, file_path: str, field_path: str) -> str:
    """Where the deploy uploads a task's notebook or file: under `file_path`, a notebook without suffix."""
    declared_in = source_of(local, loading.root_file)
    absolute = Path(os.path.normpath(declared_in.parent / local))
    if not absolute.is_relative_to(loading.bundle_dir):
        raise loading.error(
            field_path, f"{local} is outside the bundle folder {loading.bundle_dir}", declared_in
        )
    if not absolute.is_file():
        what = "notebook" if is_notebook else "file"
        raise loading.error(field_path, f"{what} {local} not found", declared_in)
    relative = absolute.relative_to(loading.bundle_dir).as_posix()
    if is_notebook:
        if notebook_import(absolute) is None:
            raise loading.error(
                field_path,
                f"{local} is not a notebook: a notebook is an .ipynb file or a source file whose first "
                "line is `# Databricks notebook source` (`--` for SQL, `//` for Scala)",
                declared_in,
            )
        relative = posixpath.splitext(relative)[0]
    return f"{file_path}/{relative}"


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not value.startswith("/") and ":" not in value


def _library_reference(loading: Loading, local: str) -> str:
    absolute = os.path.normpath(source_of(local, loading.root_file).parent / local)
    return LOCAL_LIBRARY_PREFIX + Path(os.path.relpath(absolute, loading.bundle_dir)).as_posix()


# --- run_as, permissions, annotations ---------------------------------------------------------


def apply_run_as(loading: Loading) -> None:
    """The bundle's `run_as` applies to each job that does not set its own."""
    run_as = loading.tree.get("run_as")
    if run_as:
        for job in _jobs(loading.tree).values():
            job.setdefault("run_as", run_as)


def apply_permissions(loading: Loading) -> None:
    """The bundle's `permissions` join each job's and pipeline's, at the level each kind knows.

    The deploying user is left out: they own what they deploy (the CLI's `FilterCurrentUser`).
    """
    top = loading.tree.get("permissions") or []
    for index, permission in enumerate(top):
        _check_permission(loading, f"permissions[{index}]", permission, PERMISSION_LEVELS["jobs"])
    me = str((loading.tree["workspace"].get("current_user") or {}).get("userName", ""))
    for kind, levels in PERMISSION_LEVELS.items():
        for key, resource in resources_of(loading.tree, kind).items():
            own = resource.get("permissions") or []
            for index, permission in enumerate(own):
                _check_permission(loading, f"resources.{kind}.{key}.permissions[{index}]", permission, None)
            inherited = [{**permission, "level": levels[permission["level"]]} for permission in top]
            merged = [p for p in [*own, *inherited] if not me or me not in _principals(p)]
            if merged or "permissions" in resource:
                resource["permissions"] = _unique(merged)


def _check_permission(
    loading: Loading, where: str, permission: Any, levels: Mapping[str, str] | None
) -> None:
    if not isinstance(permission, dict) or len(_principals(permission)) != 1:
        raise loading.error(where, f"a permission names exactly one of {', '.join(PRINCIPAL_FIELDS)}")
    if not permission.get("level") or (levels is not None and permission["level"] not in levels):
        allowed = ", ".join(levels or ("a level",))
        raise loading.error(
            f"{where}.level", f"unsupported permission level {permission.get('level')}; use {allowed}"
        )


def _principals(permission: Mapping[str, Any]) -> list[str]:
    return [str(permission[name]) for name in PRINCIPAL_FIELDS if permission.get(name)]


def _unique(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    unique: list[dict[str, Any]] = []
    for permission in permissions:
        if permission not in unique:
            unique.append(permission)
    return unique


def annotate_resources(loading: Loading) -> None:
    """Mark every job and pipeline as deployed by a bundle, with its metadata file, as the CLI does."""
    state_path = loading.tree["workspace"]["state_path"]
    annotations = bundle_annotations(state_path)
    for job in _jobs(loading.tree).values():
        job.update(annotations)
    for pipeline in resources_of(loading.tree, "pipelines").values():
        pipeline["deployment"] = annotations["deployment"]


def resources_of(tree: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """The resources of one kind, by key (`jobs`, `pipelines`)."""
    resources = (tree.get("resources") or {}).get(kind) or {}
    return {key: resource for key, resource in resources.items() if isinstance(resource, dict)}


def _jobs(tree: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of(tree, "jobs")
