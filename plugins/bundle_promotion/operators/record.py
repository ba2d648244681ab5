"""Record that an environment now runs the release."""

from __future__ import annotations

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.deployment_mirror import GitHubDeploymentMirror
from bundle_promotion.operators.deployment_step import DeploymentStep, refused


class RecordDeploymentOperator(DeploymentStep):
    """Mark the deployment made by ``deploy_task_id`` as succeeded in the ledger.

    Only while the environment runs it and is not held: a release a rollback superseded never succeeds.
    """

    ui_color = "#f3e8fb"

    def execute(self, context: Context) -> None:
        deployment = self.deployment(context)
        settings.ledger().finish_deployment(deployment.deployment_id, "succeeded")
        self.log.info("Deployment %s recorded as succeeded", deployment.deployment_id)
        if mirror := GitHubDeploymentMirror.from_xcom(context["ti"].xcom_pull(task_ids=self.deploy_task_id)):
            mirror.succeeded(context)


def mark_deployment_failed(context: Context) -> None:
    """``on_failure_callback`` for the tasks after a deploy: the ledger must not show it as running.

    A task that refused to act (held environment, superseded deployment) leaves the outcome as it is.
    """
    from bundle_promotion.lifecycle.promotion import EnvironmentDeployment

    if refused(context):
        return
    task = context["task"]
    deploy_task_id = getattr(task, "deploy_task_id", None)
    value = context["ti"].xcom_pull(task_ids=deploy_task_id) if deploy_task_id else None
    if value:
        deployment = EnvironmentDeployment.from_xcom(value)
        detail = f"{task.task_id} failed: {context.get('exception')}"
        settings.ledger().finish_deployment(deployment.deployment_id, "failed", detail=detail)
        if mirror := GitHubDeploymentMirror.from_xcom(value):
            mirror.failed(context, detail)
