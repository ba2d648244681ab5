"""`databricks bundle validate | plan | destroy` as Airflow tasks, on a bundle folder the worker can read.

Each operator resolves the bundle for `target` in the workspace behind
`databricks_conn_id`, through the native engine or (`engine="cli"`) the Databricks
CLI. Heavy imports happen in `execute`, so DAG files that use them parse fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
from airflow.sdk import BaseOperator, BaseOperatorLink, Context

from bundle_promotion.operators.base import PromotionOperator

if TYPE_CHECKING:
    from airflow.sdk.types import TaskInstanceKey

    from bundle_promotion.bundle.config.load import ResolvedBundle
    from bundle_promotion.bundle.deploy.engine import DeployedResource, Engine
    from bundle_promotion.hooks.workspace import WorkspaceHook

EngineName = Literal["native", "cli"]


@attrs.define()
class BundleResourceLink(BaseOperatorLink):
    """A link to one deployed resource (`jobs.etl`) or to the target's folder (`folder`).

    The task sets `resource_urls` on the operator while it runs; Airflow reads the link
    right after, on the same worker, and keeps it as XCom for the UI.
    """

    resource: str
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.resource

    @property
    def xcom_key(self) -> str:
        return f"_link_bundle_{self.resource}"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        urls: Mapping[str, str] = getattr(operator, "resource_urls", {})
        return urls.get(self.resource, "")


def resource_links(resources: Sequence[str]) -> tuple[BundleResourceLink, ...]:
    """The target's folder plus one link per resource, e.g. `["jobs.etl", "pipelines.sales"]`."""
    return (
        BundleResourceLink("folder", "Bundle folder"),
        *(BundleResourceLink(resource, f"Databricks {resource}") for resource in resources),
    )


def make_engine(
    name: EngineName,
    hook: WorkspaceHook,
    variables: Mapping[str, str] | None = None,
    state_cache: Path | None = None,
) -> Engine:
    """The spec's `engine`: the native engine over the hook, or the CLI with the hook's credentials.

    `state_cache` is where the native engine keeps its local state copies, by workspace host and state path.
    """
    from bundle_promotion.bundle.deploy.cli_engine import CliEngine
    from bundle_promotion.bundle.deploy.engine import NativeEngine
    from bundle_promotion.bundle.deploy.state import StateCache

    if name == "cli":
        return CliEngine(hook.cli_credentials(), variables=variables)
    cache = StateCache(state_cache, hook.workspace_host_url()) if state_cache else None
    return NativeEngine(hook, variables=variables, state_cache=cache)


def resource_urls(
    hook: WorkspaceHook, bundle: ResolvedBundle, deployed: Mapping[str, DeployedResource]
) -> dict[str, str]:
    """Pages of the deployed jobs and pipelines and of the target's folder, as `bundle summary` gives them."""
    from bundle_promotion.bundle.deploy.engine import KINDS

    host = hook.workspace_host_url()
    urls = {"folder": f"{host}/#workspace{bundle.workspace.root_path}"}
    for key, resource in deployed.items():
        page = KINDS[resource.type].url if resource.type in KINDS else None
        if page is not None and resource.action != "delete":
            urls[key.removeprefix("resources.")] = page(host, resource.id)
    return urls


class _BundleOperator(PromotionOperator):
    """The bundle in `bundle_dir` for `target`; each of `resources` (`jobs.etl`) gets a link.

    :param bundle_dir: the bundle's folder on the worker (templated)
    :param target: the bundle target (templated)
    :param databricks_conn_id: the Airflow connection to the target's workspace (templated)
    :param engine: ``native`` (REST) or ``cli`` (the Databricks CLI on the worker)
    :param variables: values of the bundle's variables, as ``--var`` gives them (templated)
    :param resources: the links to render: ``jobs.<key>`` or ``pipelines.<key>``
    """

    template_fields: Sequence[str] = ("bundle_dir", "target", "databricks_conn_id", "variables")
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        bundle_dir: str,
        target: str,
        databricks_conn_id: str,
        engine: EngineName = "native",
        variables: dict[str, str] | None = None,
        resources: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bundle_dir = bundle_dir
        self.target = target
        self.databricks_conn_id = databricks_conn_id
        self.engine = engine
        self.variables = variables or {}
        self.operator_extra_links = resource_links(resources)
        self.resource_urls: dict[str, str] = {}

    def _hook(self) -> WorkspaceHook:
        from bundle_promotion.hooks.workspace import WorkspaceHook

        return WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__)

    def _engine(self, hook: WorkspaceHook) -> Engine:
        return make_engine(self.engine, hook, self.variables)

    def _load(self, engine: Engine) -> ResolvedBundle:
        return engine.load(Path(self.bundle_dir), self.target)

    def _link(
        self, hook: WorkspaceHook, bundle: ResolvedBundle, deployed: Mapping[str, DeployedResource]
    ) -> None:
        self.resource_urls = resource_urls(hook, bundle, deployed)


class BundleValidateOperator(_BundleOperator):
    """`bundle validate -o json`: returns the resolved config; an invalid bundle fails the task.

    The error names the file, the field and the fix, before anything is deployed.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self._hook()
        engine = self._engine(hook)
        bundle = self._load(engine)
        self._link(hook, bundle, engine.deployed(bundle))
        self.log.info("Bundle %s resolves for target %s", bundle.name, bundle.target)
        return bundle.as_validate_json() if self.engine == "native" else bundle.config


class BundlePlanOperator(_BundleOperator):
    """What a deploy would change now (create, update, recreate, delete, skip, with the changed fields).

    Computed against the target's state and the workspace, so drift made by hand shows.
    Logs one line per resource and returns the plan (`bundle plan -o json`'s shape) as XCom.
    Native engine only: the CLI's plan is not wrapped.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        from bundle_promotion.bundle.deploy.engine import NativeEngine
        from bundle_promotion.bundle.deploy.plan import describe, plan_json

        if self.engine != "native":
            raise ValueError("BundlePlanOperator plans with the native engine; set engine='native'")
        hook = self._hook()
        engine = NativeEngine(hook, variables=self.variables)
        bundle = self._load(engine)
        plan = engine.plan(bundle)
        self._link(hook, bundle, engine.deployed(bundle))
        for line in describe(plan.changes) or ["nothing to deploy"]:
            self.log.info("%s", line)
        if plan.uploads or plan.stale_files:
            self.log.info("%d file(s) to upload, %d to delete", len(plan.uploads), len(plan.stale_files))
        return plan_json(plan.changes, plan.state)


class BundleDestroyOperator(_BundleOperator):
    """`bundle destroy --auto-approve`: deletes every resource in the target's state and its folder.

    :param force_lock: break a deploy lock another deployment holds (templated)
    """

    template_fields: Sequence[str] = (*_BundleOperator.template_fields, "force_lock")

    def __init__(self, *, force_lock: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.force_lock = force_lock

    def execute(self, context: Context) -> dict[str, str]:
        hook = self._hook()
        engine = self._engine(hook)
        bundle = self._load(engine)
        result = engine.destroy(bundle, force_lock=bool(self.force_lock))
        self._link(hook, bundle, {})
        for key, resource in result.resources.items():
            self.log.info("Deleted %s (id %s)", key, resource.id)
        return {key: resource.id for key, resource in result.resources.items()}
