"""Target modes and presets, as the CLI's `ApplyTargetMode`, `ApplyPresets` and `ValidateTargetMode`.

`mode: development` fills in presets where the target left them unset (a
`[dev <short_name>] ` name prefix, a `dev` tag, paused triggers, development
pipelines, at most 4 concurrent runs) and turns the deploy lock off unless it is
enabled explicitly. Presets then apply to every job and pipeline, never overriding
what a resource sets itself. `mode: production` is checked last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bundle_promotion.bundle.config.steps import Loading, is_service_principal, resources_of

PAUSE_STATUSES = ("PAUSED", "UNPAUSED")
MODES = ("development", "production")
DEV_MAX_CONCURRENT_RUNS = 4
# Job fields whose `pause_status` the `trigger_pause_status` preset fills in (not the newer `triggers`).
_PAUSABLE = ("schedule", "continuous", "trigger")


def apply_target_mode(loading: Loading) -> None:
    mode = loading.tree["bundle"].get("mode")
    if mode is not None and mode not in MODES:
        raise loading.error(
            f"targets.{loading.target}.mode", f"unknown mode {mode}; use {' or '.join(MODES)}"
        )
    if mode == "development":
        _development_defaults(loading)


def _development_defaults(loading: Loading) -> None:
    short_name = _short_name(loading)
    presets = loading.tree.setdefault("presets", {})
    presets.setdefault("name_prefix", f"[dev {short_name}] ")
    presets.setdefault("tags", {}).setdefault("dev", short_name)
    presets.setdefault("jobs_max_concurrent_runs", DEV_MAX_CONCURRENT_RUNS)
    presets.setdefault("trigger_pause_status", "PAUSED")
    presets.setdefault("pipelines_development", True)
    lock = loading.tree["bundle"].setdefault("deployment", {}).setdefault("lock", {})
    if lock.get("enabled") is not True:
        lock["enabled"] = False


def _short_name(loading: Loading) -> str:
    user = loading.tree.get("workspace", {}).get("current_user") or {}
    if not user.get("short_name"):
        raise loading.error(
            f"targets.{loading.target}.mode",
            "mode: development prefixes names with the deploying user's short name: pass current_user "
            "(the answer of GET /api/2.0/preview/scim/v2/Me)",
        )
    return str(user["short_name"])


def apply_presets(loading: Loading) -> None:
    presets = loading.tree.get("presets") or {}
    status = presets.get("trigger_pause_status")
    if status is not None and status not in PAUSE_STATUSES:
        raise loading.error(
            "presets.trigger_pause_status", f"invalid value {status}; use {' or '.join(PAUSE_STATUSES)}"
        )
    prefix = str(presets.get("name_prefix") or "")
    for job in resources_of(loading.tree, "jobs").values():
        _preset_job(job, presets, prefix)
    for pipeline in resources_of(loading.tree, "pipelines").values():
        if "name" in pipeline:
            pipeline["name"] = prefix + str(pipeline["name"])
        if presets.get("pipelines_development") is True:
            pipeline["development"] = True
        if status == "PAUSED":
            pipeline["continuous"] = False


def _preset_job(job: dict[str, Any], presets: Mapping[str, Any], prefix: str) -> None:
    if "name" in job:
        job["name"] = prefix + str(job["name"])
    tags = presets.get("tags") or {}
    if tags:
        job["tags"] = {**tags, **(job.get("tags") or {})}
    if presets.get("jobs_max_concurrent_runs") and not job.get("max_concurrent_runs"):
        job["max_concurrent_runs"] = presets["jobs_max_concurrent_runs"]
    if presets.get("trigger_pause_status"):
        for field in _PAUSABLE:
            if isinstance(job.get(field), dict) and not job[field].get("pause_status"):
                job[field]["pause_status"] = presets["trigger_pause_status"]


def validate_target_mode(loading: Loading) -> None:
    mode = loading.tree["bundle"].get("mode")
    if mode == "development":
        _validate_development_mode(loading)
    elif mode == "production":
        _validate_production_mode(loading)


def _validate_development_mode(loading: Loading) -> None:
    if (loading.tree.get("presets") or {}).get("trigger_pause_status") == "UNPAUSED":
        raise loading.error(
            "presets.trigger_pause_status",
            "UNPAUSED is not allowed in mode: development: development deployments keep triggers paused",
        )


def _validate_production_mode(loading: Loading) -> None:
    """No development pipelines; the root path pinned by the target, so only one copy is deployed.

    As in the CLI, jobs that all run as a fixed identity, or a deploy by a service
    principal, make a user-specific root path harmless.
    """
    for key, pipeline in resources_of(loading.tree, "pipelines").items():
        if pipeline.get("development") is True:
            raise loading.error(
                f"resources.pipelines.{key}.development",
                "target with 'mode: production' cannot include a pipeline with 'development: true'",
            )
    if (loading.target_tree.get("workspace") or {}).get("root_path"):
        return
    jobs = resources_of(loading.tree, "jobs")
    if (jobs and all(job.get("run_as") for job in jobs.values())) or is_service_principal(
        loading.tree.get("workspace", {}).get("current_user") or loading.current_user or {}
    ):
        return
    raise loading.error(
        f"targets.{loading.target}.workspace.root_path",
        "target with 'mode: production' must set 'workspace.root_path' "
        "to make sure only one copy is deployed",
    )
