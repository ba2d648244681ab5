"""Rollback steps: thin adapters from Airflow's context to ``bundle_promotion.lifecycle.rollback``.

Every step reads the plan from the ledger when it runs (the last known-good release, the
deployment being undone and what was recorded before it) and converges on it, so a retry or a
clear from the UI changes nothing that is already back. In a promotion DAG the steps run only
after this run deployed into the environment (``after_own_deploy``); in the manual rollback DAG
they run on request, with an optional ``target_version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSkipException

from bundle_promotion import settings
from bundle_promotion.operators.base import OnWorkspace, PromotionOperator, actor_of

if TYPE_CHECKING:
    from bundle_promotion.lifecycle.promotion import BundleSource
    from bundle_promotion.lifecycle.rollback import RollbackPlan

ROLLBACK_UI_COLOR = "#fbe3e4"
PIPELINE_UPDATE_KEY = "pipeline_update"  # the XCom of the update a pipeline reset waits for


class _RollbackStep(OnWorkspace, PromotionOperator):
    """What every rollback step knows: the environment, its workspace and the target release.

    :param bundle: the bundle's name, as in its promotion spec
    :param environment: the environment rolled back
    :param target_version: the release to return to; by default the last known-good one (templated)
    :param after_own_deploy: skip unless this run deployed to the environment (the automatic rollback)
    :param chosen_param: the DAG param listing the data restores a person chose; None runs every one
    """

    template_fields: Sequence[str] = ("databricks_conn_id", "target_version")
    ui_color = ROLLBACK_UI_COLOR

    def __init__(
        self,
        *,
        bundle: str,
        environment: str,
        target_version: str | None = None,
        after_own_deploy: bool = False,
        chosen_param: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.environment = environment
        self.target_version = target_version
        self.after_own_deploy = after_own_deploy
        self.chosen_param = chosen_param

    restore_key: str | None = None  # what names a data restore in the manual DAG's choice

    def plan(self, context: Context) -> RollbackPlan:
        from bundle_promotion.lifecycle.rollback import deployed_in_run, plan_rollback, refuse_if_moved_on

        if self.chosen_param and self.restore_key not in context["params"][self.chosen_param]:
            raise AirflowSkipException(f"{self.restore_key} was not chosen among the data restores")
        ledger = settings.ledger()
        if self.after_own_deploy:
            if not deployed_in_run(ledger, self.bundle, self.environment, context["run_id"]):
                raise AirflowSkipException(
                    f"this run deployed nothing to {self.environment}: nothing to undo"
                )
            refuse_if_moved_on(ledger, self.bundle, self.environment, context["run_id"])
        return plan_rollback(
            ledger,
            bundle=self.bundle,
            environment=self.environment,
            run_id=context["run_id"],
            target_version=self.target_version or None,
        )


class _CodeStep(_RollbackStep):
    """A step that needs the bundle's source: it resolves the bundle for the environment's target.

    :param repo: the git repository holding the bundle: a URL, or a local path (templated)
    :param bundle_path: the bundle's folder inside the repository
    :param target: the environment's bundle target (templated)
    """

    template_fields: Sequence[str] = (*_RollbackStep.template_fields, "repo", "target")

    def __init__(self, *, repo: str, bundle_path: str = ".", target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo = repo
        self.bundle_path = bundle_path
        self.target = target

    def source(self) -> BundleSource:
        from bundle_promotion.lifecycle.promotion import BundleSource

        return BundleSource(self.bundle, self.repo, self.bundle_path)


class RollbackRequestedOperator(_RollbackStep):
    """First task of an environment in the manual DAG: skip unless this environment was asked for."""

    def execute(self, context: Context) -> None:
        params = context["params"]
        if not params.get("emergency") and params.get("environment") != self.environment:
            raise AirflowSkipException(f"{self.environment} was not asked to roll back")
        for line in self.plan(context).describe():
            self.log.warning("Rollback plan: %s", line)


class PrepareRollbackOperator(_RollbackStep):
    """Before a deploy: refuse a held environment, then record the model aliases and table versions.

    The snapshot is written once per run; a retry after the deploy keeps the first one.

    :param models: ``(model, alias)`` pairs whose versions to record
    :param tables: tables whose versions to record
    :param warehouse_id: the SQL warehouse that reads the tables' history
    """

    def __init__(
        self,
        *,
        models: Sequence[tuple[str, str]] = (),
        tables: Sequence[str] = (),
        warehouse_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.models = [tuple(model) for model in models]
        self.tables = list(tables)
        self.warehouse_id = warehouse_id

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.holds import refuse_if_held
        from bundle_promotion.lifecycle.rollback import record_data_snapshot
        from bundle_promotion.spec import ModelAlias, Rollback

        ledger = settings.ledger()
        refuse_if_held(ledger, self.bundle, self.environment)
        policy = Rollback(
            models=tuple(ModelAlias(name=name, alias=alias) for name, alias in self.models),
            tables=tuple(self.tables),
            warehouse_id=self.warehouse_id,
        )
        snapshot = record_data_snapshot(
            self.workspace(),
            ledger,
            bundle=self.bundle,
            environment=self.environment,
            run_id=context["run_id"],
            policy=policy,
            actor=actor_of(context),
        )
        for key, version in {**snapshot.model_aliases, **snapshot.table_versions}.items():
            self.log.info("Before the deploy: %s is at version %s", key, version)


class RedeployReleaseOperator(_CodeStep):
    """Redeploy the target release (default: the last known-good one) with its exact artifacts and config.

    An environment that never ran a good release is left as is, with a loud error in the log.
    """

    def execute(self, context: Context) -> dict[str, Any] | None:
        from bundle_promotion.bundle.deploy.lock import LockOwner
        from bundle_promotion.lifecycle.rollback import redeploy

        plan = self.plan(context)
        for line in plan.describe():
            self.log.warning("Rollback plan: %s", line)
        if plan.target_release_id is None:
            self.log.error(
                "NO ROLLBACK TARGET: %s/%s never ran a release that passed its tests; the code is left "
                "as it is and every schedule will be paused. Fix forward or deploy a release by hand.",
                self.bundle,
                self.environment,
            )
            return None
        deployment = redeploy(
            plan,
            self.source(),
            target=self.target,
            run_id=context["run_id"],
            api=self.workspace(),
            ledger=settings.ledger(),
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
            actor=actor_of(context),
            owner=LockOwner(context["run_id"], self.task_id, self.environment),
        )
        if deployment is None:
            self.log.info("%s was already redeployed by this run; nothing more to do", plan.target_version)
        else:
            self.log.warning("Redeployed %s to %s", plan.target_version, self.environment)
        return {"release_id": plan.target_release_id, "version": plan.target_version}


class RestoreSchedulesOperator(_CodeStep):
    """Put every schedule back as it was before the rolled-back deploy; pause all when nothing was good."""

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.rollback import restore_plan_schedules

        plan = self.plan(context)
        triggers = restore_plan_schedules(
            plan,
            self.source(),
            target=self.target,
            api=self.workspace(),
            ledger=settings.ledger(),
            checkouts=settings.checkouts(),
        )
        for trigger in triggers:
            self.log.warning("Schedule %s of %r is %s", trigger.field, trigger.job_name, trigger.pause_status)


class RestoreModelAliasOperator(_RollbackStep):
    """Move a Unity Catalog model alias back to the version recorded before the rolled-back deploy.

    :param model: the Unity Catalog model, ``catalog.schema.name``
    :param alias: the alias to point back at the recorded version
    """

    def __init__(self, *, model: str, alias: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.alias = alias
        self.restore_key = f"{model}@{alias}"

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.rollback import restore_model_alias

        self.log.warning(
            "%s", restore_model_alias(self.workspace(), self.plan(context), self.model, self.alias)
        )


class RestoreTableOperator(_RollbackStep):
    """``RESTORE TABLE … TO VERSION AS OF`` the version recorded before the deploy, checked in the history.

    :param table: the table to restore, ``catalog.schema.name``
    :param warehouse_id: the SQL warehouse that runs ``RESTORE TABLE`` (templated)
    """

    template_fields: Sequence[str] = (*_RollbackStep.template_fields, "warehouse_id")

    def __init__(self, *, table: str, warehouse_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table = table
        self.warehouse_id = warehouse_id
        self.restore_key = table

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.rollback import restore_table

        plan = self.plan(context)
        self.log.warning("%s", restore_table(self.workspace(), plan, self.warehouse_id, self.table))


class PipelineResetOperator(_CodeStep):
    """Refresh a bundle pipeline fully (or only ``tables``), wait in the triggerer, fail with its error.

    A refresh already started since the code was put back is waited for, not started again.
    Killing the task, or waiting past ``update_timeout``, stops the update it waits for.

    :param pipeline_key: the pipeline's key under ``resources.pipelines`` in the bundle
    :param tables: the tables to refresh fully; empty refreshes every table
    :param polling_period_seconds: seconds between looks at the update while deferred
    :param update_timeout: how long the update may take before it is stopped and the task fails; None waits
    """

    def __init__(
        self,
        *,
        pipeline_key: str,
        tables: Sequence[str] = (),
        polling_period_seconds: float = 30.0,
        update_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_key = pipeline_key
        self.restore_key = pipeline_key
        self.tables = tuple(tables)
        self.polling_period_seconds = polling_period_seconds
        self.update_timeout = update_timeout
        self._waiting_for: dict[str, str] | None = None  # the update on_kill stops

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.rollback import start_pipeline_refresh
        from bundle_promotion.triggers.pipeline import PipelineUpdateTrigger

        plan = self.plan(context)
        update = start_pipeline_refresh(
            plan,
            self.source(),
            pipeline_key=self.pipeline_key,
            tables=self.tables,
            target=self.target,
            run_id=context["run_id"],
            api=self.workspace(),
            ledger=settings.ledger(),
            checkouts=settings.checkouts(),
        )
        self.log.warning("Refreshing pipeline %s: update %s", self.pipeline_key, update.update_id)
        self._waiting_for = {"pipeline_id": update.pipeline_id, "update_id": update.update_id}
        context["ti"].xcom_push(key=PIPELINE_UPDATE_KEY, value=self._waiting_for)
        if update.finished:
            self._finish({"state": update.state, "update_id": update.update_id, "error": None})
            return
        self.defer(
            trigger=PipelineUpdateTrigger(
                databricks_conn_id=self.databricks_conn_id,
                pipeline_id=update.pipeline_id,
                update_id=update.update_id,
                polling_period_seconds=self.polling_period_seconds,
            ),
            method_name="execute_complete",
            timeout=self.update_timeout,
        )

    def on_kill(self) -> None:
        """Killed while refreshing on the worker: stop the update rather than leave it running."""
        if self._waiting_for is not None:
            self._stop(**self._waiting_for)

    def on_deferral_timeout(self, context: Context) -> None:
        """Past ``update_timeout``: stop the update and fail, saying so."""
        from airflow.sdk.exceptions import AirflowFailException

        waited = context["ti"].xcom_pull(task_ids=self.task_id, key=PIPELINE_UPDATE_KEY)
        self._stop(**waited)
        raise AirflowFailException(
            f"pipeline {self.pipeline_key} update {waited['update_id']} did not end within "
            f"{self.update_timeout}; stopped it"
        )

    def _stop(self, *, pipeline_id: str, update_id: str) -> None:
        from bundle_promotion.lifecycle.data_restores import stop_pipeline_update

        if stop_pipeline_update(self.workspace(), pipeline_id, update_id):
            self.log.warning("Stopped pipeline %s update %s", self.pipeline_key, update_id)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        self._finish(event)

    def _finish(self, event: dict[str, Any]) -> None:
        from bundle_promotion.errors import RestoreFailed

        if event["state"] != "COMPLETED":
            raise RestoreFailed(
                f"pipeline {self.pipeline_key} update {event['update_id']} ended {event['state']}: "
                f"{event.get('error') or 'see the pipeline event log'}"
            )
        self.log.warning("Pipeline %s refreshed (update %s)", self.pipeline_key, event["update_id"])


class HoldEnvironmentOperator(_RollbackStep):
    """Last step of a rollback: hold the environment, and say in the log what the rollback put back."""

    def execute(self, context: Context) -> None:
        from bundle_promotion.lifecycle.rollback import hold

        plan = self.plan(context)
        held = hold(settings.ledger(), plan, run_id=context["run_id"], actor=actor_of(context))
        for line in plan.describe():
            self.log.warning("Restored: %s", line)
        if held is None:
            self.log.warning(
                "A person already cleared the hold this run set on %s/%s; it is not set again",
                self.bundle,
                self.environment,
            )
            return
        self.log.error(
            "%s/%s is HELD: no promotion enters it until a person clears the hold with a reason "
            "(bundle-promotion hold clear %s %s --reason '...'). Hold: %s",
            self.bundle,
            self.environment,
            self.bundle,
            self.environment,
            held.reason,
        )
