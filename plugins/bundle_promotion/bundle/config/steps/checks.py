"""The CLI's checks that change nothing: each fails the bundle or warns, in the CLI's words."""

from __future__ import annotations

from typing import Any

from bundle_promotion.bundle.config.interpolation import REFERENCE
from bundle_promotion.bundle.config.steps.loading import Loading, resources_of

ENGINES = ("terraform", "direct")
# Workspace fields that configure authentication: read before variables exist (`workspace.host`, ...).
AUTH_FIELDS = {
    "host": "DATABRICKS_HOST",
    "profile": "DATABRICKS_CONFIG_PROFILE",
    "auth_type": "DATABRICKS_AUTH_TYPE",
    "client_id": "DATABRICKS_CLIENT_ID",
    "azure_client_id": "ARM_CLIENT_ID",
    "azure_tenant_id": "ARM_TENANT_ID",
    "google_service_account": "DATABRICKS_GOOGLE_SERVICE_ACCOUNT",
}
# Enum fields of jobs and pipelines and their values (databricks-sdk's jobs and pipelines types).
_PAUSE = ("PAUSED", "UNPAUSED")
ENUM_FIELDS: dict[str, tuple[str, ...]] = {
    "resources.jobs.*.edit_mode": ("EDITABLE", "UI_LOCKED"),
    "resources.jobs.*.format": ("MULTI_TASK", "SINGLE_TASK"),
    "resources.jobs.*.performance_target": ("PERFORMANCE_OPTIMIZED", "STANDARD"),
    "resources.jobs.*.schedule.pause_status": _PAUSE,
    "resources.jobs.*.trigger.pause_status": _PAUSE,
    "resources.jobs.*.continuous.pause_status": _PAUSE,
    "resources.jobs.*.tasks[*].run_if": (
        "ALL_DONE",
        "ALL_FAILED",
        "ALL_SUCCESS",
        "AT_LEAST_ONE_FAILED",
        "AT_LEAST_ONE_SUCCESS",
        "NONE_FAILED",
    ),
    "resources.jobs.*.tasks[*].notebook_task.source": ("GIT", "WORKSPACE"),
    "resources.jobs.*.tasks[*].spark_python_task.source": ("GIT", "WORKSPACE"),
    "resources.jobs.*.git_source.git_provider": (
        "awsCodeCommit",
        "azureDevOpsServices",
        "bitbucketCloud",
        "bitbucketServer",
        "gitHub",
        "gitHubEnterprise",
        "gitLab",
        "gitLabEnterpriseEdition",
    ),
    "resources.pipelines.*.edition": ("ADVANCED", "CORE", "PRO"),
}


def check_engine(loading: Loading) -> None:
    engine = (loading.tree.get("bundle") or {}).get("engine")
    if engine is None:
        return
    if engine not in ENGINES:
        raise loading.error(
            "bundle.engine", f'invalid value "{engine}" for bundle.engine (expected "terraform" or "direct")'
        )
    if engine == "terraform":
        loading.warn(
            "bundle.engine",
            "the terraform deployment engine is deprecated and will stop working in a future version of "
            'the CLI. Remove "engine: terraform" to use the direct deployment engine',
        )


def check_auth_interpolation(loading: Loading) -> None:
    """Auth fields are read before variables are resolved: a reference there is never filled in."""
    workspace = loading.tree.get("workspace") or {}
    for name, variable in AUTH_FIELDS.items():
        value = workspace.get(name)
        if isinstance(value, str) and REFERENCE.search(value):
            loading.warn(
                f"workspace.{name}",
                "Variable interpolation is not supported for fields that configure authentication. Please "
                f"set the {variable} environment variable if you wish to configure this field at runtime",
            )


def check_root_path(loading: Loading) -> None:
    root = str(loading.tree["workspace"]["root_path"])
    if any(character in root for character in "*?["):
        raise loading.error(
            "workspace.root_path",
            f"{root} contains a glob character (*, ? or [): the root path names one folder; remove it",
        )


def check_deployment_fields(loading: Loading) -> None:
    """`deployment_id` and `version_id` are the CLI's to set on every deploy."""
    for kind in ("jobs", "pipelines"):
        for key, resource in resources_of(loading.tree, kind).items():
            deployment = resource.get("deployment")
            for name in ("deployment_id", "version_id"):
                if isinstance(deployment, dict) and deployment.get(name):
                    raise loading.error(
                        f"resources.{kind}.{key}.deployment.{name}",
                        f"{name} must not be set in bundle configuration; it is managed by Declarative "
                        "Automation Bundles",
                    )


def check_enums(loading: Loading) -> None:
    """A value outside an enum is a warning, as the CLI's `validate.Enum`: the API has the last word."""
    for pattern, allowed in ENUM_FIELDS.items():
        for where, value in _values(loading.tree, pattern.split("."), ""):
            if isinstance(value, str) and value not in allowed:
                loading.warn(
                    where, f'invalid value "{value}" for enum field. Valid values are [{" ".join(allowed)}]'
                )


def _values(node: Any, segments: list[str], where: str) -> list[tuple[str, Any]]:
    """The (path, value) pairs a pattern of keys, `*` and `[*]` matches."""
    if not segments:
        return [(where, node)]
    name, each_element = segments[0].removesuffix("[*]"), segments[0].endswith("[*]")
    if not isinstance(node, dict):
        return []
    children = node.items() if name == "*" else [(name, node[name])] if name in node else []
    found: list[tuple[str, Any]] = []
    for key, child in children:
        path = f"{where}.{key}" if where else str(key)
        if not each_element:
            found += _values(child, segments[1:], path)
        elif isinstance(child, list):
            for index, element in enumerate(child):
                found += _values(element, segments[1:], f"{path}[{index}]")
    return found
