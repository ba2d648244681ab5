"""Deploy a recorded release to one environment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from bundle_promotion.operators import storage


class BundleDeployOperator(BaseOperator):
    """Deploy the release built by ``release_task_id`` to ``target`` through ``databricks_conn_id``.

    The deploy converges: a retry, a clear or a second promotion of the same release creates no
    new jobs and, when nothing changed, writes nothing. Returns the deployed jobs by bundle key.
    """

    template_fields: Sequence[str] = ("target", "databricks_conn_id", "repo")
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.repo = repo
        self.bundle_path = bundle_path
        self.environment = environment
        self.target = target
        self.databricks_conn_id = databricks_conn_id
        self.release_task_id = release_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        from bundle_promotion.hooks.workspace import WorkspaceHook
        from bundle_promotion.promotion import BundleSource, deploy_release

        release_id = context["ti"].xcom_pull(task_ids=self.release_task_id)
        deployment = deploy_release(
            BundleSource(self.bundle, self.repo, self.bundle_path),
            int(release_id),
            environment=self.environment,
            target=self.target,
            run_id=context["run_id"],
            api=WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__),
            ledger=storage.ledger(),
            store=storage.artifact_store(),
            checkouts=storage.checkouts(),
        )
        for job in deployment.jobs.values():
            self.log.info("Job %s is %r (job_id %s)", job.key, job.name, job.id)
        return deployment.to_xcom()
