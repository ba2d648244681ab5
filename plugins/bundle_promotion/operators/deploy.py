"""Deploy a recorded release to one environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators import github_deployments
from bundle_promotion.operators.base import PromotionOperator
from bundle_promotion.operators.bundle import EngineName, make_engine, resource_links


class BundleDeployOperator(PromotionOperator):
    """Deploy the release built by ``release_task_id`` to ``target`` through ``databricks_conn_id``.

    The deploy converges: a retry, a clear or a second promotion of the same release creates no
    new jobs and, when nothing changed, writes nothing. Returns the deployed jobs by bundle key.

    ``engine`` is the spec's: ``native`` (REST) or ``cli`` (the Databricks CLI on the worker).
    ``job_keys`` get one operator extra link each, to the job this task deployed.
    """

    template_fields: Sequence[str] = ("target", "databricks_conn_id", "repo", "bundle_path", "github_conn_id")
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        bundle: str,
        repo: str,
        bundle_path: str = ".",
        environment: str,
        target: str,
        databricks_conn_id: str,
        release_task_id: str = "release",
        github_repo: str | None = None,
        github_conn_id: str = "github_default",
        engine: EngineName = "native",
        job_keys: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.operator_extra_links = resource_links([f"jobs.{key}" for key in job_keys])
        self.resource_urls: dict[str, str] = {}
        self.bundle = bundle
        self.repo = repo
        self.bundle_path = bundle_path
        self.environment = environment
        self.target = target
        self.databricks_conn_id = databricks_conn_id
        self.release_task_id = release_task_id
        self.github_repo = github_repo
        self.github_conn_id = github_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from bundle_promotion.bundle.resources import jobs as job_resource
        from bundle_promotion.hooks.workspace import WorkspaceHook
        from bundle_promotion.lifecycle.promotion import BundleSource, deploy_release

        release_id = int(context["ti"].xcom_pull(task_ids=self.release_task_id))
        ledger = settings.ledger()
        mirror = github_deployments.mirror(
            self.github_repo, self.github_conn_id, self.environment, release_id
        )
        if mirror:
            mirror.started(context)
        hook = WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__)
        checkouts = settings.checkouts()
        try:
            deployment = deploy_release(
                BundleSource(self.bundle, self.repo, self.bundle_path),
                release_id,
                environment=self.environment,
                target=self.target,
                run_id=context["run_id"],
                api=hook,
                ledger=ledger,
                store=settings.artifact_store(),
                checkouts=checkouts,
                # A checkout serves every environment of its commit: local states go per connection.
                engine=make_engine(
                    self.engine, hook, local_states=checkouts / ".states" / self.databricks_conn_id
                ),
            )
        except Exception as error:
            if mirror:
                mirror.failed(context, f"deploy failed: {error}")
            raise
        host = hook.workspace_host_url()
        for job in deployment.jobs.values():
            url = self.resource_urls[f"jobs.{job.key}"] = job_resource.url(host, job.id)
            self.log.info("Job %s is %r (job_id %s): %s", job.key, job.name, job.id, url)
        return {**deployment.to_xcom(), **(mirror.to_xcom() if mirror else {})}
