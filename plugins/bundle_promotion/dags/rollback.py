"""Render a spec's rollback policy into tasks: the automatic rollback of a promotion DAG and the
manual ``rollback__<bundle>`` DAG. Runs at parse time: only operator classes are imported here.

Both render the same steps, in this order: redeploy the target release, restore the schedules,
move the model aliases, restore the tables, refresh the pipelines, then hold the environment.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, BaseOperator, Param, TaskGroup, TriggerRule

from bundle_promotion.operators.base import RETRIES
from bundle_promotion.operators.notifications import RollbackNotifier
from bundle_promotion.operators.rollback import (
    HoldEnvironmentOperator,
    PipelineResetOperator,
    PrepareRollbackOperator,
    RedeployReleaseOperator,
    RestoreModelAliasOperator,
    RestoreSchedulesOperator,
    RestoreTableOperator,
    RollbackRequestedOperator,
)
from bundle_promotion.spec import Environment, PromotionSpec
from bundle_promotion.spec.dag_ids import rollback_dag_id

ROLLBACK_DOC_MD = """# Roll back `{bundle}`

Puts one environment (or, in an emergency, every environment) back to a release: by default
the last one that passed verification and tests there. Redeploys that release's exact
artifacts, restores the schedules found before the rolled-back deploy, then the data restores
you choose, and holds the environment until someone clears the hold with a reason
(`bundle-promotion hold clear {bundle} <environment> --reason '...'`).
"""


def prepare_rollback(spec: PromotionSpec, environment: Environment) -> PrepareRollbackOperator:
    """The task before a deploy: refuse a held environment, record what a rollback would restore."""
    policy = environment.rollback
    return PrepareRollbackOperator(
        task_id="prepare_rollback",
        bundle=spec.bundle,
        environment=environment.name,
        databricks_conn_id=environment.databricks_conn_id,
        models=[(model.name, model.alias) for model in policy.models],
        tables=list(policy.tables),
        warehouse_id=policy.warehouse_id,
    )


def automatic_rollback(
    spec: PromotionSpec, environment: Environment, watched: list[BaseOperator]
) -> TaskGroup | None:
    """``<env>_rollback``: runs when one of ``watched`` (deploy, verify, tests) fails in this run.

    A sibling of the environment's group, not inside it: skipped on success, it must not make
    the next environment wait on it.
    """
    if not environment.rollback.automatic:
        return None
    with TaskGroup(group_id=f"{environment.name}_rollback", tooltip="undo a failed deploy") as group:
        notify = RollbackNotifier(
            bundle=spec.bundle, environment=environment.name, notifications=spec.notifications
        )
        first, _ = _rollback_steps(spec, environment, after_own_deploy=True, on_held=notify)
        first.trigger_rule = TriggerRule.ONE_FAILED
        watched >> first
    return group


def build_rollback_dag(spec: PromotionSpec) -> DAG:
    """``rollback__<bundle>``: roll an environment (or all of them, ``emergency``) back on request."""
    restores = _data_restore_keys(spec)
    with DAG(
        dag_id=rollback_dag_id(spec.bundle),
        auto_register=False,  # registered with the spec's other DAGs, or not at all (see factory)
        schedule=None,
        catchup=False,
        doc_md=ROLLBACK_DOC_MD.format(bundle=spec.bundle),
        tags=["bundle-promotion", spec.bundle, "rollback"],
        default_args={"owner": spec.owner, **RETRIES},
        params={
            "environment": Param(
                spec.environments[-1].name,
                type="string",
                enum=[env.name for env in spec.environments],
                description="The environment to roll back (ignored in an emergency).",
            ),
            "target_version": Param(
                None, type=["null", "string"], description="The release to return to; empty: last known-good."
            ),
            "data_restores": Param(
                restores,
                type="array",
                items={"type": "string", "enum": restores} if restores else {"type": "string"},
                description="Which data restores to run, by model@alias, table or pipeline key.",
            ),
            "emergency": Param(
                False, type="boolean", description="Roll back every environment of the bundle."
            ),
        },
    ) as dag:
        for environment in spec.environments:
            with TaskGroup(group_id=environment.name, tooltip=f"target {environment.target}"):
                target_version = "{{ params.target_version or '' }}"
                requested = RollbackRequestedOperator(
                    task_id="requested", target_version=target_version, **_in(spec, environment)
                )
                first, _ = _rollback_steps(spec, environment, target_version=target_version, chosen=True)
                if environment.rollback.require_approval:
                    requested >> _approval(environment) >> first
                else:
                    requested >> first
    return dag


def _rollback_steps(
    spec: PromotionSpec,
    environment: Environment,
    *,
    after_own_deploy: bool = False,
    target_version: str | None = None,
    chosen: bool = False,
    on_held: RollbackNotifier | None = None,
) -> tuple[BaseOperator, BaseOperator]:
    """The steps in order; returns the first and the last (the hold), which calls ``on_held`` once done."""
    policy = environment.rollback
    common: dict[str, Any] = {**_in(spec, environment), "after_own_deploy": after_own_deploy}
    code: dict[str, Any] = {
        **common,
        "repo": spec.repo_location(),
        "bundle_path": spec.source.path,
        "target": environment.target,
    }
    pick: dict[str, Any] = {"chosen_param": "data_restores"} if chosen else {}
    redeploy = RedeployReleaseOperator(task_id="redeploy", target_version=target_version, **code)
    schedules = RestoreSchedulesOperator(task_id="schedules", target_version=target_version, **code)
    data: list[BaseOperator] = [
        *(
            RestoreModelAliasOperator(
                task_id=f"alias_{_task_name(model.name)}_{_task_name(model.alias)}",
                model=model.name,
                alias=model.alias,
                target_version=target_version,
                **common,
                **pick,
            )
            for model in policy.models
        ),
        *(
            RestoreTableOperator(
                task_id=f"table_{_task_name(table)}",
                table=table,
                warehouse_id=str(policy.warehouse_id),
                target_version=target_version,
                **common,
                **pick,
            )
            for table in policy.tables
        ),
        *(
            PipelineResetOperator(
                task_id=f"pipeline_{_task_name(key)}",
                pipeline_key=key,
                target_version=target_version,
                **code,
                **pick,
            )
            for key in policy.pipelines
        ),
    ]
    # Holds whatever the restores did, unless the rollback never started (every step skipped).
    hold = HoldEnvironmentOperator(
        task_id="hold",
        target_version=target_version,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS if chosen else TriggerRule.NONE_SKIPPED,
        on_success_callback=on_held,
        **common,
    )
    redeploy >> schedules >> (data or hold)
    if data:
        data >> hold
    return redeploy, hold


def _in(spec: PromotionSpec, environment: Environment) -> dict[str, Any]:
    return {
        "bundle": spec.bundle,
        "environment": environment.name,
        "databricks_conn_id": environment.databricks_conn_id,
    }


def _approval(environment: Environment) -> BaseOperator:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    return ApprovalOperator(
        task_id="approval",
        subject=f"Roll back {environment.name}?",
        body="Target: {{ params.target_version or 'the last known-good release' }}. "
        "Data restores: {{ params.data_restores | join(', ') or 'none' }}.",
        fail_on_reject=True,
        retries=0,  # a rejection is a decision, not a failure to retry
    )


def _data_restore_keys(spec: PromotionSpec) -> list[str]:
    keys = {
        key
        for env in spec.environments
        for key in (
            *(f"{model.name}@{model.alias}" for model in env.rollback.models),
            *env.rollback.tables,
            *env.rollback.pipelines,
        )
    }
    return sorted(keys)


def _task_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
