"""The tasks after a deploy (verify, tests, schedules, record) and what they share: the deployment
they act on, handed over by the deploy task, and the checks that it may still be acted on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.base import PromotionOperator

if TYPE_CHECKING:
    from bundle_promotion.lifecycle.promotion import EnvironmentDeployment


class DeploymentStep(PromotionOperator):
    """A task that acts on the deployment ``deploy_task_id`` made in this run.

    ``deployment()`` is the only way to that deployment, and it refuses a held environment or a
    deployment the environment no longer runs (a rollback superseded it): so a retry or a clear
    of any of these tasks converges or fails saying why, and never acts on a rolled-back release.

    :param deploy_task_id: the task id of the environment's deploy, whose XCom names the deployment
    """

    def __init__(self, *, deploy_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deploy_task_id = deploy_task_id

    def deployment(self, context: Context) -> EnvironmentDeployment:
        from bundle_promotion.lifecycle.holds import require_current

        deployment = self.handed_over(context)
        require_current(settings.ledger(), deployment.deployment_id)
        return deployment

    def handed_over(self, context: Context) -> EnvironmentDeployment:
        """The deploy's XCom as it was handed over, unchecked: only to record evidence about it."""
        from bundle_promotion.lifecycle.promotion import EnvironmentDeployment

        return EnvironmentDeployment.from_xcom(context["ti"].xcom_pull(task_ids=self.deploy_task_id))


def refused(context: Context) -> bool:
    """Whether the task failed because it refused to act: then its failure callbacks change nothing."""
    from bundle_promotion.errors import EnvironmentHeld, StaleDeployment

    error = context.get("exception")  # a refusal fails the task at once: it is the cause of the failure
    return any(
        isinstance(each, EnvironmentHeld | StaleDeployment)
        for each in (error, getattr(error, "__cause__", None))
    )
