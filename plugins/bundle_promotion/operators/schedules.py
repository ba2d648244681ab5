"""Schedule control in Airflow: the policy after a promotion, and maintenance pauses with an exact restore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast, get_args

from airflow.sdk import BaseBranchOperator, BaseOperator, Context

from bundle_promotion import settings
from bundle_promotion.operators.base import FromBundleSource, OnWorkspace, PromotionOperator, actor_of
from bundle_promotion.operators.deployment_step import DeploymentStep, refused

if TYPE_CHECKING:
    from bundle_promotion.ledger.records import TriggerState
    from bundle_promotion.lifecycle.schedules import BundleResource, ResourceKind, SchedulePolicy
    from bundle_promotion.workspace.api import WorkspaceApi

# Threads pausing or resuming jobs at once, and the HTTP connections kept open for them.
MAX_WORKERS = 16


class ApplySchedulePolicyOperator(OnWorkspace, DeploymentStep):
    """Pause or unpause every trigger of the jobs deployed by ``deploy_task_id``, per ``policy``.

    It runs once the release is verified and tested: until then the deploy step keeps every
    trigger paused. While a maintenance hold is in force the triggers stay paused; the end of
    the hold applies the policy. Only triggers in the wrong state are written.

    :param bundle: the bundle's name, as in its promotion spec
    :param environment: the environment, whose maintenance hold keeps the triggers paused
    :param policy: ``paused`` or ``unpaused``: the state every trigger is left in (templated)
    """

    template_fields: Sequence[str] = ("databricks_conn_id", "policy")
    ui_color = "#eef6e8"

    def __init__(
        self,
        *,
        bundle: str,
        environment: str,
        policy: SchedulePolicy,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.environment = environment
        self.policy = policy

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        from bundle_promotion.lifecycle.promotion import apply_schedule_policy

        deployment = self.deployment(context)
        hold = settings.ledger().schedule_hold(self.bundle, self.environment)
        if hold is not None:
            self.log.warning(
                "A maintenance hold is in force since %s (%s): schedules stay paused until it ends",
                hold.since,
                hold.reason,
            )
        triggers = apply_schedule_policy(
            self.workspace(max_connections=MAX_WORKERS),
            deployment,
            self.policy,
            hold_in_force=hold is not None,
        )
        return _log_states(self, triggers)


def restore_schedules_on_failure(context: Context) -> None:
    """``on_failure_callback`` after a deploy: put back the trigger states found before it.

    The failed release's new jobs stay paused, as the deploy step left them. A task that refused
    to act touches nothing: what runs there now may be another deployment's.
    """
    from bundle_promotion.lifecycle.promotion import EnvironmentDeployment, restore_schedules

    if refused(context):
        return
    task = context["task"]
    value = context["ti"].xcom_pull(task_ids=getattr(task, "deploy_task_id", None))
    if value and isinstance(task, OnWorkspace):
        deployment = EnvironmentDeployment.from_xcom(value)
        api = task.workspace(max_connections=MAX_WORKERS)
        restored = restore_schedules(api, deployment.deployment_id, settings.ledger())
        task.log.info("Restored %d trigger(s) to their state before the deploy", len(restored))


class BundleResourcesOperator(FromBundleSource, OnWorkspace, PromotionOperator):
    """Acts on a bundle's jobs and pipelines in one environment, optionally only some of them.

    ``resource_keys`` picks jobs and pipelines alike by their bundle key (the name under
    ``resources.jobs`` or ``resources.pipelines``), and ``tags`` by their tags in the config
    (all must match); so a pipeline is left out whenever its key is not among ``resource_keys`` or
    it lacks a tag. With neither, the operator acts on every job and pipeline of the bundle.

    :param environment: the environment of the promotion spec (templated)
    :param target: the bundle target deployed there (templated)
    :param resource_keys: bundle keys of the jobs and pipelines to act on; empty for all (templated)
    :param tags: tags a job or pipeline must all carry to be acted on (templated)
    """

    template_fields: Sequence[str] = ("environment", "target", "databricks_conn_id", "resource_keys", "tags")

    def __init__(
        self,
        *,
        environment: str,
        target: str,
        resource_keys: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.environment = environment
        self.target = target
        self.resource_keys = list(resource_keys)
        self.tags = dict(tags or {})

    @property
    def whole_environment(self) -> bool:
        return not (self.resource_keys or self.tags)

    def selected_resources(self, api: WorkspaceApi) -> list[BundleResource]:
        """The bundle's deployed jobs and pipelines that the filters pick."""
        from bundle_promotion.lifecycle.promotion import deployed_resources
        from bundle_promotion.lifecycle.schedules import select_resources

        resources = deployed_resources(
            self.source(),
            environment=self.environment,
            target=self.target,
            api=api,
            ledger=settings.ledger(),
            checkouts=settings.checkouts(),
        )
        selected = select_resources(resources, keys=self.resource_keys, tags=self.tags)
        self.log.info(
            "%d of the %d job(s) and pipeline(s) of %s in %s",
            len(selected),
            len(resources),
            self.bundle,
            self.environment,
        )
        return selected


class _MaintenanceOperator(BundleResourcesOperator):
    """Pauses or resumes the selected jobs' and pipelines' schedules, and logs the states it left."""

    def execute(self, context: Context) -> dict[str, dict[str, str]]:
        api = self.workspace(max_connections=MAX_WORKERS)
        selected = self.selected_resources(api)
        triggers = self.change_schedules(
            context,
            api=api,
            ledger=settings.ledger(),
            bundle=self.bundle,
            environment=self.environment,
            job_ids=ids_of(selected, "job"),
            pipeline_ids=ids_of(selected, "pipeline"),
            actor=actor_of(context),
            max_workers=MAX_WORKERS,
        )
        return _log_states(self, triggers)

    def change_schedules(self, context: Context, **selection: Any) -> list[TriggerState]:
        """Pause or resume; ``selection`` is what both take: the workspace, the ledger, the bundle,
        the environment, the selected ids, the actor and the concurrency."""
        raise NotImplementedError


class PauseSchedulesOperator(_MaintenanceOperator):
    """Pause the bundle's schedules in an environment for maintenance, remembering what to restore.

    Schedules are the jobs' triggers and the pipelines' ``continuous`` flag (a continuous
    pipeline stops running continuously; a triggered one is left as it is).

    The states found go to the ledger before anything is paused; a retry, or a second pause,
    never records a paused state as the one to restore. Until ``ResumeSchedulesOperator``
    ends the hold, deploys leave the environment's schedules paused.

    :param reason: why, for the audit trail; by default the DAG and run (templated)
    """

    template_fields: Sequence[str] = (*BundleResourcesOperator.template_fields, "reason")
    ui_color = "#e8eef6"

    def __init__(self, *, reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reason = reason

    def change_schedules(self, context: Context, **selection: Any) -> list[TriggerState]:
        from bundle_promotion.lifecycle.schedules import pause_for_maintenance

        reason = self.reason or f"maintenance, {context['dag'].dag_id} run {context['run_id']}"
        return pause_for_maintenance(**selection, reason=reason)


class ResumeSchedulesOperator(_MaintenanceOperator):
    """End a maintenance pause: held jobs and pipelines get back exactly the states recorded when it began.

    A job deployed during the hold never had a state to restore; it gets ``policy``.

    :param policy: ``paused`` or ``unpaused`` for jobs deployed during the hold (templated)
    """

    template_fields: Sequence[str] = (*BundleResourcesOperator.template_fields, "policy")
    ui_color = "#e8eef6"

    def __init__(self, *, policy: SchedulePolicy | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.policy = policy  # templated: "paused" or "unpaused" once rendered

    def change_schedules(self, context: Context, **selection: Any) -> list[TriggerState]:
        from bundle_promotion.lifecycle.schedules import end_maintenance

        return end_maintenance(
            **selection, policy=_policy(self.policy), whole_environment=self.whole_environment
        )


class MaintenanceWindowOperator(BaseOperator):
    """Wait ``hours`` without a worker slot, then end, so the restore after it runs.

    Ending the window early: mark this task success, or clear it. A cleared task runs again
    with a higher try number and ends at once (so it takes no retries).

    :param hours: how long the window lasts, in hours (templated)
    """

    template_fields: Sequence[str] = ("hours",)
    ui_color = "#f6f0e8"

    def __init__(self, *, hours: float | str, **kwargs: Any) -> None:
        super().__init__(retries=0, **kwargs)
        self.hours = hours

    def execute(self, context: Context) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        if context["ti"].try_number > 1:
            self.log.info("Cleared during the window: ending it now")
            return
        end = datetime.now(UTC) + timedelta(hours=float(self.hours))
        self.log.info("The maintenance window ends at %s; mark this task success to end it earlier", end)
        self.defer(trigger=DateTimeTrigger(moment=end), method_name="execute_complete")

    def execute_complete(self, context: Context, event: Any = None) -> None:
        self.log.info("The maintenance window is over")


def ids_of(resources: Sequence[BundleResource], kind: ResourceKind) -> list[str]:
    return [resource.id for resource in resources if resource.kind == kind]


def _policy(rendered: str) -> SchedulePolicy:
    from bundle_promotion.lifecycle.schedules import (
        SchedulePolicy,  # the core's REST helpers: not at parse time
    )

    if rendered not in get_args(SchedulePolicy):
        raise ValueError(f"policy must be one of {get_args(SchedulePolicy)}, not {rendered!r}")
    return cast("SchedulePolicy", rendered)


def _log_states(task: BaseOperator, triggers: Sequence[TriggerState]) -> dict[str, dict[str, str]]:
    states: dict[str, dict[str, str]] = {}
    for trigger in triggers:
        task.log.info("%s %s: %s", trigger.job_name, trigger.field, trigger.pause_status)
        states.setdefault(trigger.job_name, {})[trigger.field] = trigger.pause_status
    return states


class ScheduleActionOperator(BaseBranchOperator):
    """Follow the branch of the run's ``action``: ``branches`` maps each action to its first task.

    :param action: the run's action, one of ``branches`` (templated)
    :param branches: the first task id of each action's branch
    """

    template_fields: Sequence[str] = ("action",)

    def __init__(self, *, action: str, branches: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action
        self.branches = dict(branches)

    def choose_branch(self, context: Context) -> str:
        if self.action not in self.branches:
            raise ValueError(f"action must be one of {', '.join(self.branches)}, not {self.action!r}")
        return self.branches[self.action]
