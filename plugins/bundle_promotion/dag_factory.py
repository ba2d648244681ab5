"""Render promotion specs into Airflow DAGs.

Runs at every parse of the DAG folder, so it reads local files only, touches no
network and imports no heavy client: the operators import theirs when they execute.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from airflow.sdk import DAG, Param, TaskGroup

from bundle_promotion.errors import InvalidSpecs, SpecError
from bundle_promotion.operators import (
    ApplySchedulePolicyOperator,
    BuildReleaseOperator,
    BundleDeployOperator,
    RecordDeploymentOperator,
    RunBundleJobOperator,
)
from bundle_promotion.operators.record import mark_deployment_failed
from bundle_promotion.spec import Environment, PromotionSpec, load_specs

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+/-]*$"


def promotion_dags(specs_folder: Path, *, polling_period_seconds: int = 30) -> dict[str, DAG]:
    """One DAG per valid spec, plus one that carries every bad spec's error to the DAG processor."""
    dags: dict[str, DAG] = {}
    errors: list[SpecError] = []
    for spec in load_specs(specs_folder):
        if isinstance(spec, SpecError):
            errors.append(spec)
        else:
            dags[spec.dag_id] = build_promotion_dag(spec, polling_period_seconds=polling_period_seconds)
    if errors:
        dags[SpecErrorsDag.DAG_ID] = SpecErrorsDag(errors)
    return dags


def build_promotion_dag(spec: PromotionSpec, *, polling_period_seconds: int = 30) -> DAG:
    with DAG(
        dag_id=spec.dag_id,
        schedule=None,
        max_active_runs=1,
        catchup=False,
        doc_md=_doc_md(spec),
        description=spec.description,
        tags=["bundle-promotion", spec.bundle],
        default_args={"owner": spec.owner},
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
            targets=[environment.target for environment in spec.environments],
            test_jobs=sorted({job for environment in spec.environments for job in environment.tests}),
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
        deploy = BundleDeployOperator(
            task_id="deploy",
            bundle=spec.bundle,
            repo=spec.repo_location(),
            bundle_path=spec.source.path,
            environment=environment.name,
            target=environment.target,
            databricks_conn_id=environment.databricks_conn_id,
        )
        tests = [
            RunBundleJobOperator(
                task_id=f"test_{job_key}",
                databricks_conn_id=environment.databricks_conn_id,
                job_key=job_key,
                deploy_task_id=deploy_task_id,
                polling_period_seconds=polling_period_seconds,
                on_failure_callback=mark_deployment_failed,
            )
            for job_key in environment.tests
        ]
        schedules = ApplySchedulePolicyOperator(
            task_id="schedules",
            databricks_conn_id=environment.databricks_conn_id,
            policy=environment.schedules,
            deploy_task_id=deploy_task_id,
            on_failure_callback=mark_deployment_failed,
        )
        record = RecordDeploymentOperator(
            task_id="record", deploy_task_id=deploy_task_id, on_failure_callback=mark_deployment_failed
        )
        if tests:
            deploy >> tests >> schedules
        else:
            deploy >> schedules
        schedules >> record
    return group


def _doc_md(spec: PromotionSpec) -> str:
    rows = "\n".join(
        f"| {env.name} | `{env.target}` | `{env.databricks_conn_id}` | {env.schedules} | "
        f"{', '.join(env.tests) or '—'} |"
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
