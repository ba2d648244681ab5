"""run_as, the bundle's permissions on every resource, and the deployment annotations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.config.job_settings import bundle_annotations
from bundle_promotion.bundle.config.resource_kinds import PERMISSION_LEVELS
from bundle_promotion.bundle.config.steps.loading import Loading, jobs_of, resources_of

PRINCIPAL_FIELDS = ("user_name", "group_name", "service_principal_name")
RUN_AS_FIELDS = ("user_name", "service_principal_name", "group_name")
# Permission levels from least to most, to keep the highest a principal was given.
LEVEL_ORDER = ("CAN_VIEW", "CAN_RUN", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER")


def apply_run_as(loading: Loading) -> None:
    """The bundle's `run_as` applies to each job and pipeline that does not set its own.

    It names exactly one identity, as the CLI requires of a `run_as` section, even an empty one.
    """
    if "run_as" not in loading.tree:
        return
    run_as = loading.tree["run_as"] or {}
    if len([name for name in RUN_AS_FIELDS if run_as.get(name)]) != 1:
        raise loading.error(
            "run_as",
            "run_as section must specify exactly one non-empty identity: user_name, service_principal_name, "
            "or group_name",
        )
    for kind in ("jobs", "pipelines"):
        for resource in resources_of(loading.tree, kind).values():
            resource.setdefault("run_as", dict(run_as))


def apply_permissions(loading: Loading) -> None:
    """The bundle's `permissions` join each resource's, at the level its kind knows; a kind without
    that level (an experiment has no CAN_RUN) does not get that grant.

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
            inherited = [
                {**permission, "level": levels[permission["level"]]}
                for permission in top
                if permission["level"] in levels
            ]
            merged = [p for p in [*own, *inherited] if not me or me not in _principals(p)]
            if merged or "permissions" in resource:
                resource["permissions"] = _highest_per_principal(merged)


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


def _highest_per_principal(permissions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per principal, at the highest level it was given, where it first appeared (the CLI's
    `useMaximumLevel`): the Permissions API refuses a principal named twice."""
    chosen: dict[str, dict[str, Any]] = {}
    for permission in permissions:
        principal = next(f"{name}:{permission[name]}" for name in PRINCIPAL_FIELDS if permission.get(name))
        held = chosen.get(principal)
        if held is None or _rank(permission["level"]) > _rank(held["level"]):
            chosen[principal] = permission  # a key assigned again keeps its place
    return list(chosen.values())


def _rank(level: str) -> int:
    return LEVEL_ORDER.index(level) if level in LEVEL_ORDER else -1


def annotate_resources(loading: Loading) -> None:
    """Mark every job and pipeline as deployed by a bundle, with its metadata file, as the CLI does."""
    state_path = loading.tree["workspace"]["state_path"]
    annotations = bundle_annotations(state_path)
    for job in jobs_of(loading.tree).values():
        job.update(annotations)
    for pipeline in resources_of(loading.tree, "pipelines").values():
        pipeline["deployment"] = annotations["deployment"]
