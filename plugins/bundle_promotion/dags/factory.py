"""Render promotion specs into Airflow DAGs.

Runs at every parse of the DAG folder, so it reads local files only, touches no
network and imports no heavy client: the operators import theirs when they execute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup

from bundle_promotion.dags.rollback import automatic_rollback, build_rollback_dag, prepare_rollback
from bundle_promotion.errors import InvalidSpecs, SpecError
from bundle_promotion.operators import (
    ApplySchedulePolicyOperator,
    BuildReleaseOperator,
    BundleDeployOperator,
    RecordDeploymentOperator,
    RunBundleJobOperator,
)
from bundle_promotion.operators.base import RETRIES
from bundle_promotion.operators.drift import (
    HEAL_ENVIRONMENT_PARAM,
    HEAL_MODE_PARAM,
    DriftCheckOperator,
    DriftHealOperator,
)
from bundle_promotion.operators.notifications import GateWaitingNotifier, PromotedNotifier, StepFailedNotifier
from bundle_promotion.operators.record import mark_deployment_failed
from bundle_promotion.operators.schedules import (
    MaintenanceWindowOperator,
    PauseSchedulesOperator,
    ResumeSchedulesOperator,
    ScheduleActionOperator,
    restore_schedules_on_failure,
)
from bundle_promotion.operators.verify import VerifyInstallationOperator
from bundle_promotion.sensors.gate import GateSensor
from bundle_promotion.sensors.quiet import WaitForQuietSensor
from bundle_promotion.spec import Environment, PromotionSpec, load_specs
from bundle_promotion.spec.dag_ids import drift_dag_id, rendered_bundle, rollback_dag_id, schedules_dag_id
from bundle_promotion.spec.notifications import Event

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+/-]*$"


def promotion_dags(
    specs_folder: Path, *, polling_period_seconds: int = 30, dag_id: str | None = None
) -> dict[str, DAG]:
    """One DAG per valid spec, plus one that carries every bad spec's error to the DAG processor.

    With ``dag_id`` (Airflow's parsing context, set when a worker or the triggerer parses for one
    task), only the spec rendering that DAG is validated and only that DAG built, so a task's
    start-up does not grow with the number of specs.
    """
    only = dag_id if dag_id and rendered_bundle(dag_id) else None
    dags: dict[str, DAG] = {}
    errors: list[SpecError] = []
    for spec in load_specs(specs_folder, bundle=rendered_bundle(only) if only else None):
        if isinstance(spec, SpecError):
            errors.append(spec)
            continue
        try:
            rendered = _spec_dags(spec, polling_period_seconds, only)
        except Exception as error:  # whatever one spec raises, the other specs' DAGs still load
            errors.append(SpecError(str(spec.spec_file), "", f"cannot be rendered into DAGs: {error}"))
            continue
        dags.update({dag.dag_id: dag for dag in rendered})
    if errors:
        dags[SpecErrorsDag.DAG_ID] = SpecErrorsDag(errors)
    return dags


def _spec_dags(spec: PromotionSpec, polling_period_seconds: int, only: str | None) -> list[DAG]:
    builders: dict[str, Callable[[], DAG]] = {
        spec.dag_id: lambda: build_promotion_dag(spec, polling_period_seconds=polling_period_seconds),
        schedules_dag_id(spec.bundle): lambda: build_schedules_dag(spec),
        rollback_dag_id(spec.bundle): lambda: build_rollback_dag(spec),
        drift_dag_id(spec.bundle): lambda: build_drift_dag(spec),
    }
    return [build() for dag_id, build in builders.items() if only in (None, dag_id)]


def build_promotion_dag(spec: PromotionSpec, *, polling_period_seconds: int = 30) -> DAG:
    with DAG(
        dag_id=spec.dag_id,
        auto_register=False,  # only promotion_dags' result is registered: a spec renders whole or not at all
        schedule=None,
        max_active_runs=1,
        catchup=False,
        doc_md=_doc_md(spec),
        description=spec.description,
        tags=["bundle-promotion", spec.bundle],
        default_args={"owner": spec.owner, **RETRIES},
        params={
            "version": Param(
                type="string",
                pattern=VERSION_PATTERN,
                description="The release tag to promote, for example v1.2.0.",
            )
        },
    ) as dag:
        release = BuildReleaseOperator(
            task_id="release",
            bundle=spec.bundle,
            repo=spec.repo_location(),
            bundle_path=spec.source.path,
            version="{{ params.version }}",
            targets=[env.target for env in spec.environments],
            test_jobs=sorted({suite.job for environment in spec.environments for suite in environment.tests}),
        )
        previous: BuildReleaseOperator | TaskGroup = release
        for environment in spec.environments:
            group = _environment_group(spec, environment, polling_period_seconds)
            previous >> group
            previous = group
    return dag


def _environment_group(
    spec: PromotionSpec, environment: Environment, polling_period_seconds: int
) -> TaskGroup:
    with TaskGroup(group_id=environment.name, tooltip=f"target {environment.target}") as group:
        deploy_task_id = f"{environment.name}.deploy"
        gates = _gate_sensor(spec, environment)
        about: dict[str, Any] = {
            "bundle": spec.bundle,
            "environment": environment.name,
            "notifications": spec.notifications,
        }
        deploy = BundleDeployOperator(
            task_id="deploy",
            bundle=spec.bundle,
            repo=spec.repo_location(),
            bundle_path=spec.source.path,
            environment=environment.name,
            target=environment.target,
            databricks_conn_id=environment.databricks_conn_id,
            engine=spec.engine,
            resources=_bundle_resources(spec),
            on_failure_callback=StepFailedNotifier(event=Event.DEPLOY_FAILED, **about),
            **_github_deployments(spec),
        )
        # Until verify and the tests pass, the deploy step keeps every trigger paused; a failure
        # puts back the states found before the deploy.
        after_deploy_failure = [mark_deployment_failed, restore_schedules_on_failure]
        verify = VerifyInstallationOperator(
            task_id="verify",
            bundle=spec.bundle,
            repo=spec.repo_location(),
            bundle_path=spec.source.path,
            target=environment.target,
            databricks_conn_id=environment.databricks_conn_id,
            deploy_task_id=deploy_task_id,
            on_failure_callback=[
                *after_deploy_failure,
                StepFailedNotifier(event=Event.VERIFY_FAILED, **about),
            ],
        )
        tests = [
            RunBundleJobOperator(
                task_id=f"test_{suite.job}",
                databricks_conn_id=environment.databricks_conn_id,
                job_key=suite.job,
                deploy_task_id=deploy_task_id,
                job_parameters=dict(suite.params),
                run_timeout=timedelta(seconds=suite.timeout),
                polling_period_seconds=polling_period_seconds,
                on_failure_callback=[
                    *after_deploy_failure,
                    StepFailedNotifier(event=Event.TEST_FAILED, **about),
                ],
            )
            for suite in environment.tests
        ]
        schedules = ApplySchedulePolicyOperator(
            task_id="schedules",
            bundle=spec.bundle,
            environment=environment.name,
            databricks_conn_id=environment.databricks_conn_id,
            policy=environment.schedules,
            deploy_task_id=deploy_task_id,
            on_failure_callback=after_deploy_failure,
        )
        record = RecordDeploymentOperator(
            task_id="record",
            deploy_task_id=deploy_task_id,
            on_failure_callback=mark_deployment_failed,
            on_success_callback=PromotedNotifier(**about)
            if environment in spec.production_environments()
            else None,
        )
        deploy >> verify
        if tests:
            verify >> tests >> schedules
        else:
            verify >> schedules
        schedules >> record
        prepare = prepare_rollback(spec, environment)
        prepare >> deploy
        if gates is not None:
            gates >> prepare
    automatic_rollback(spec, environment, watched=[deploy, verify, *tests, schedules])
    return group


def _gate_sensor(spec: PromotionSpec, environment: Environment) -> GateSensor | None:
    """The ``gates`` task that holds the release before the environment, when it has gates."""
    if not environment.gates:
        return None
    index = spec.environments.index(environment)
    github = spec.github
    return GateSensor(
        task_id="gates",
        # The grid shows this name: a deferred "gates" task reads as what the release waits for.
        task_display_name=f"gates: {', '.join(gate.kind for gate in environment.gates)}",
        bundle=spec.bundle,
        environment=environment.name,
        previous_environment=spec.environments[index - 1].name if index else None,
        repo=spec.repo_location(),
        bundle_path=spec.source.path,
        gates=[gate.model_dump(mode="json", exclude_none=True) for gate in environment.gates],
        approvals_from_reviews=bool(github and github.approvals_from_reviews),
        github_repo=github.repo if github else None,
        github_conn_id=github.github_conn_id if github else None,
        deferrable=True,  # a gate may wait for days: never in a worker slot
        on_waiting=_approvers_notifier(spec, environment),
    )


def _approvers_notifier(spec: PromotionSpec, environment: Environment) -> GateWaitingNotifier:
    """Tells the people of the environment's approval groups that its gates wait."""
    groups = [group for gate in environment.gates if gate.approval for group in gate.approval.groups]
    return GateWaitingNotifier(
        bundle=spec.bundle,
        environment=environment.name,
        notifications=spec.notifications,
        recipients=tuple(dict.fromkeys(user for group in groups for user in group.users)),
        recipient_roles=tuple(dict.fromkeys(group.role for group in groups if group.role)),
    )


def _github_deployments(spec: PromotionSpec) -> dict[str, Any]:
    """Where the deploy mirrors itself as a GitHub deployment, if anywhere."""
    if spec.github is None or not spec.github.record_deployments:
        return {}
    return {"github_repo": spec.github.repo, "github_conn_id": spec.github.github_conn_id}


def build_schedules_dag(spec: PromotionSpec) -> DAG:
    """``schedules__<bundle>``: pause, resume, or a maintenance window that restores what it paused."""
    environments = {
        env.name: {
            "target": env.target,
            "databricks_conn_id": env.databricks_conn_id,
            "policy": env.schedules,
        }
        for env in spec.environments
    }
    with DAG(
        dag_id=schedules_dag_id(spec.bundle),
        auto_register=False,  # see build_promotion_dag
        schedule=None,
        catchup=False,
        doc_md=SCHEDULES_DOC_MD.format(bundle=spec.bundle),
        tags=["bundle-promotion", spec.bundle],
        default_args={"owner": spec.owner, **RETRIES},
        user_defined_macros={"environments": environments},
        params={
            "environment": Param(type="string", enum=list(environments), description="Where to act."),
            "action": Param(type="string", enum=["pause", "resume", "window"], description="What to do."),
            "hours": Param(2, type="number", minimum=0, description="How long a window lasts."),
        },
    ) as dag:
        bundle_in_environment: dict[str, Any] = {
            "bundle": spec.bundle,
            "repo": spec.repo_location(),
            "bundle_path": spec.source.path,
            "environment": "{{ params.environment }}",
            "target": "{{ environments[params.environment].target }}",
            "databricks_conn_id": "{{ environments[params.environment].databricks_conn_id }}",
        }
        policy = "{{ environments[params.environment].policy }}"
        action = ScheduleActionOperator(
            task_id="action",
            action="{{ params.action }}",
            branches={"pause": "pause", "resume": "resume", "window": "window.pause"},
        )
        pause = PauseSchedulesOperator(task_id="pause", **bundle_in_environment)
        resume = ResumeSchedulesOperator(task_id="resume", policy=policy, **bundle_in_environment)
        with TaskGroup(group_id="window", tooltip="pause, wait for quiet, wait the hours, restore"):
            window_pause = PauseSchedulesOperator(task_id="pause", **bundle_in_environment)
            quiet = WaitForQuietSensor(task_id="quiet", deferrable=True, **bundle_in_environment)
            wait = MaintenanceWindowOperator(task_id="wait", hours="{{ params.hours }}")
            # Restores whatever happened in between (a failed wait, "mark success"), unless skipped.
            restore = ResumeSchedulesOperator(
                task_id="restore", policy=policy, trigger_rule="none_skipped", **bundle_in_environment
            )
            window_pause >> quiet >> wait >> restore
        action >> [pause, resume, window_pause]
    return dag


def build_drift_dag(spec: PromotionSpec) -> DAG:
    """``drift__<bundle>``: each environment checked against its release; healed where the spec says."""
    with DAG(
        dag_id=drift_dag_id(spec.bundle),
        auto_register=False,  # see build_promotion_dag
        schedule=spec.drift.schedule,
        max_active_runs=1,
        catchup=False,
        doc_md=DRIFT_DOC_MD.format(bundle=spec.bundle),
        tags=["bundle-promotion", spec.bundle],
        default_args={"owner": spec.owner, **RETRIES},
        params={
            HEAL_ENVIRONMENT_PARAM: Param(
                None,
                type=["null", "string"],
                enum=[None, *(env.name for env in spec.environments)],
                description="Heal this environment in this run, whatever its spec's drift.heal says.",
            ),
            HEAL_MODE_PARAM: Param(
                None,
                type=["null", "string"],
                enum=[None, "redeploy", "schedules_only"],
                description="How to heal it; default: its spec's drift.heal, else redeploy.",
            ),
        },
    ) as dag:
        for environment in spec.environments:
            with TaskGroup(group_id=environment.name, tooltip=f"target {environment.target}"):
                in_environment: dict[str, Any] = {
                    "bundle": spec.bundle,
                    "repo": spec.repo_location(),
                    "bundle_path": spec.source.path,
                    "environment": environment.name,
                    "target": environment.target,
                    "databricks_conn_id": environment.databricks_conn_id,
                    "policy": environment.schedules,
                    "notifications": spec.notifications,
                }
                mode = environment.drift.heal or None
                check = DriftCheckOperator(task_id="check", **in_environment)
                check >> DriftHealOperator(task_id="heal", mode=mode, **in_environment)
    return dag


DRIFT_DOC_MD = """# Drift of `{bundle}`

Each environment's `check` compares the workspace with the release the ledger says runs there:
every job's, pipeline's and permission set's settings as the release deployed them, every
trigger's pause state against the schedule policy (paused during a maintenance hold), and each
artifact's bytes. It only reads, and records the report in the ledger for the board and
`bundle-promotion drift check {bundle}`.

Each environment's `heal` runs when its spec sets `drift: {{heal: redeploy | schedules_only}}`,
or when the run's `heal_environment` param names it (the board's Heal action): it deploys the
running release again, or re-asserts the schedule policy, acting for whoever triggered the run.
A held environment, or one a promotion is deploying, is not healed; the task is skipped with the
reason.
"""


SCHEDULES_DOC_MD = """# Schedules of `{bundle}`

Trigger with `environment`, `action` and `hours`:

- `pause`: record every trigger's state in the ledger, then pause them all. Until a resume,
  deploys to that environment leave its schedules paused.
- `resume`: put back exactly the recorded states; jobs deployed meanwhile get the environment's policy.
- `window`: pause, wait until no job runs, wait `hours`, then resume. Mark `window.wait`
  success, or clear it, to end the window early.
"""


def _doc_md(spec: PromotionSpec) -> str:
    rows = "\n".join(
        f"| {env.name} | `{env.target}` | `{env.databricks_conn_id}` | {env.schedules} | "
        f"{', '.join(suite.job for suite in env.tests) or '—'} |"
        for env in spec.environments
    )
    return (
        f"# Promote `{spec.bundle}`\n\n{spec.description or ''}\n\n"
        f"Source: `{spec.source.repo}` (bundle at `{spec.source.path}`), spec `{spec.spec_file.name}`.\n\n"
        'Trigger with `{"version": "<tag>"}`: the release is built once, then deployed, tested and '
        "recorded in each environment in order.\n\n"
        "| environment | target | connection | schedules | tests |\n|---|---|---|---|---|\n"
        f"{rows}\n"
    )


class SpecErrorsDag(DAG):
    """Carries bad specs to the DAG processor as one import error, while the good specs still load.

    The DAG processor calls ``validate()`` before it keeps a DAG; raising there records the
    message as an import error of the DAG file without losing the other DAGs of that file.
    """

    DAG_ID = "bundle_promotion_spec_errors"

    def __init__(self, errors: Sequence[SpecError]) -> None:
        super().__init__(dag_id=self.DAG_ID, schedule=None)
        self.spec_errors = list(errors)

    def validate(self) -> None:
        raise InvalidSpecs(self.spec_errors)


def _bundle_resources(spec: PromotionSpec) -> list[str]:
    """The bundle's jobs and pipelines (``jobs.etl``), for the deploy task's links; none when the
    source is not a local checkout."""
    outline = spec.bundle_outline()
    if outline is None:
        return []
    return [
        *(f"jobs.{key}" for key in outline.job_keys),
        *(f"pipelines.{key}" for key in outline.pipeline_keys),
    ]
