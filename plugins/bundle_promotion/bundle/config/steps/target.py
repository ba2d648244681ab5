"""Select the target and merge it over the root; merge keyed lists."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.job_settings import KEYED_LISTS
from bundle_promotion.bundle.config.steps.loading import Loading, jobs_of, merge
from bundle_promotion.bundle.config.steps.variables import variable_spec
from bundle_promotion.errors import BundleConfigError

# Sections of a target that are merged into the root config; the rest replace it.
MERGED_TARGET_SECTIONS = ("bundle", "workspace", "artifacts", "resources", "sync", "permissions", "presets")


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
            loading.tree[section] = merge(
                base, target[section], loading.root_file, f"{where}.{section}", loading.warn
            )
    if "run_as" in target:
        loading.tree["run_as"] = target["run_as"]
    _override_variable_values(loading, target.get("variables") or {}, where)
    bundle = loading.tree.setdefault("bundle", {})
    bundle["target"] = loading.target
    bundle["environment"] = loading.target  # the CLI still fills in the old name of `target`
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
        spec = dict(variable_spec(declared[name]))
        full_form = isinstance(value, dict) and ("default" in value or "lookup" in value)
        given = {key: value[key] for key in ("default", "lookup") if key in value} if full_form else None
        # The target's default or lookup replaces the root's; a value given one way drops the other.
        spec.pop("default", None)
        spec.pop("lookup", None)
        spec.update(given if given is not None else {"default": value})
        declared[name] = spec


def merge_keyed_lists(loading: Loading) -> None:
    """Merge a job's tasks by `task_key` (and clusters, parameters, environments by their keys).

    After a target's lists were appended to the root's, an element repeated with the
    same key is merged into the first one, which keeps its position. It runs once variables
    are resolved, as the CLI's `MergeJobClusters`, so a complex variable's cluster or task
    merges with the target's.
    """
    for job in jobs_of(loading.tree).values():
        for list_name, key_field in KEYED_LISTS.items():
            if isinstance(job.get(list_name), list):
                job[list_name] = _merge_by_key(job[list_name], key_field, loading)


def _merge_by_key(items: list[Any], key_field: str, loading: Loading) -> list[Any]:
    merged: dict[Any, Any] = {}
    for position, item in enumerate(items):
        key = item.get(key_field) if isinstance(item, dict) else None
        slot = key if key is not None else ("__position__", position)
        if slot in merged:
            merged[slot] = merge(merged[slot], item, loading.root_file, key_field, loading.warn)
        else:
            merged[slot] = item
    return list(merged.values())
