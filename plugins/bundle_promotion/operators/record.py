"""Record that an environment now runs the release."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.base import PromotionOperator
from bundle_promotion.operators.github_deployments import GitHubDeploymentMirror


class RecordDeploymentOperator(PromotionOperator):
    """Mark the deployment made by ``deploy_task_id`` as succeeded in the ledger."""

    ui_color = "#f3e8fb"

    def __init__(self, *, deploy_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deploy_task_id = deploy_task_id

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.promotion import EnvironmentDeployment

        deployed = context["ti"].xcom_pull(task_ids=self.deploy_task_id)
        deployment = EnvironmentDeployment.from_xcom(deployed)
        settings.ledger().finish_deployment(deployment.deployment_id, "succeeded")
        self.log.info("Deployment %s recorded as succeeded", deployment.deployment_id)
        if mirror := GitHubDeploymentMirror.from_xcom(deployed):
            mirror.succeeded(context)


def mark_deployment_failed(context: Context) -> None:
    """``on_failure_callback`` for the tasks after a deploy: the ledger must not show it as running."""
    from bundle_promotion.lifecycle.promotion import EnvironmentDeployment

    task = context["task"]
    deploy_task_id = getattr(task, "deploy_task_id", None)
    value = context["ti"].xcom_pull(task_ids=deploy_task_id) if deploy_task_id else None
    if value:
        deployment = EnvironmentDeployment.from_xcom(value)
        detail = f"{task.task_id} failed: {context.get('exception')}"
        settings.ledger().finish_deployment(deployment.deployment_id, "failed", detail=detail)
        if mirror := GitHubDeploymentMirror.from_xcom(value):
            mirror.failed(context, detail)
