"""Installation verification of a deployed release, as a task."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.base import FromBundleSource, OnWorkspace
from bundle_promotion.operators.deployment_step import DeploymentStep


class VerifyInstallationOperator(FromBundleSource, OnWorkspace, DeploymentStep):
    """Check that the environment holds exactly the release deployed by ``deploy_task_id``.

    Every job of the bundle's resolved config must exist with the expected name, tags,
    libraries, ``run_as`` and paused triggers (the deploy step pauses them; the schedule
    policy applies only after verification and tests), every pipeline with the expected
    name, tags and libraries and not running continuously, and every artifact must read back
    with the release's sha256. Fails listing each mismatch, field by field. Reads only.

    :param target: the bundle target deployed (templated)
    :param release_task_id: the task id whose XCom is the ledger's release id
    """

    template_fields: Sequence[str] = ("target", "databricks_conn_id")
    ui_color = "#e8f6ee"

    def __init__(
        self,
        *,
        target: str,
        release_task_id: str = "release",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.release_task_id = release_task_id

    def execute(self, context: Context) -> None:
        from bundle_promotion.errors import VerificationFailed
        from bundle_promotion.lifecycle.verification import verify_release

        deployment = self.deployment(context)
        release_id = int(context["ti"].xcom_pull(task_ids=self.release_task_id))
        ledger = settings.ledger()
        source = self.source()
        try:
            verify_release(
                self.workspace(),
                ledger,
                bundle_dir=source.checkout(ledger.release(release_id).commit, settings.checkouts()),
                target=self.target,
                release_id=release_id,
                job_ids={key: job.id for key, job in deployment.jobs.items()},
                pipeline_ids=deployment.pipelines,
                pause_status="PAUSED",
            )
        except VerificationFailed as failed:
            ledger.record_check(
                deployment.deployment_id,
                check="verification",
                name="installation",
                passed=False,
                detail=str(failed),
            )
            raise
        ledger.record_check(deployment.deployment_id, check="verification", name="installation", passed=True)
        self.log.info(
            "The installation in %s matches the release, job by job and artifact by artifact", self.target
        )
