"""Leave an environment's job triggers as its schedule policy says."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from bundle_promotion.schedules import SchedulePolicy


class ApplySchedulePolicyOperator(BaseOperator):
    """Pause or unpause every trigger of the jobs deployed by ``deploy_task_id``.

    A deploy resets ``pause_status`` to the bundle's config, so this runs after every deploy.
    Only triggers in the wrong state are written; a retry writes nothing more.
    """

    template_fields: Sequence[str] = ("databricks_conn_id", "policy")
    ui_color = "#eef6e8"

    def __init__(
        self, *, databricks_conn_id: str, policy: SchedulePolicy, deploy_task_id: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.databricks_conn_id = databricks_conn_id
        self.policy = policy
        self.deploy_task_id = deploy_task_id

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        from bundle_promotion.hooks.workspace import WorkspaceHook
        from bundle_promotion.promotion import EnvironmentDeployment, apply_schedule_policy

        deployment = EnvironmentDeployment.from_xcom(context["ti"].xcom_pull(task_ids=self.deploy_task_id))
        api = WorkspaceHook(databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__)
        triggers = apply_schedule_policy(api, deployment, self.policy)
        states: dict[str, dict[str, str]] = {}
        for trigger in triggers:
            self.log.info("%s %s: %s", trigger.job_name, trigger.field, trigger.pause_status)
            states.setdefault(trigger.job_name, {})[trigger.field] = trigger.pause_status
        return states
