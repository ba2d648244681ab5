"""The bundle operators' `execute`, against the workspace emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bundle_promotion.errors import BundleConfigError
from bundle_promotion.lifecycle.promotion import DeployedJob, EnvironmentDeployment
from bundle_promotion.operators.bundle import (
    BundleDestroyOperator,
    BundlePlanOperator,
    BundleResourceLink,
    BundleValidateOperator,
)
from bundle_promotion.operators.deploy import BundleDeployOperator, deployment_urls
from bundle_promotion.testing.workspace import WorkspaceEmulator

BUNDLE = "bundle: {name: ops}\nworkspace: {root_path: /Shared/ops}\nresources: {jobs: {etl: {name: etl}}}\n"


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    (tmp_path / "databricks.yml").write_text(BUNDLE)
    return tmp_path


def arguments(bundle_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"bundle_dir": str(bundle_dir), "target": "", "databricks_conn_id": "databricks_staging", **extra}


def test_validate_returns_the_resolved_config(workspaces: WorkspaceEmulator, bundle_dir: Path) -> None:
    document = BundleValidateOperator(task_id="validate", **arguments(bundle_dir)).execute({})  # type: ignore[arg-type]

    assert document["resources"]["jobs"]["etl"]["name"] == "etl"
    assert document["workspace"]["current_user"]["userName"] == workspaces.user_name("staging")


def test_plan_links_the_deployed_jobs_and_the_folder(workspaces: WorkspaceEmulator, bundle_dir: Path) -> None:
    from bundle_promotion.bundle.config.load import load_bundle
    from bundle_promotion.bundle.deploy.engine import NativeEngine
    from bundle_promotion.hooks.workspace import WorkspaceHook

    deployed = NativeEngine(WorkspaceHook("databricks_staging")).deploy(load_bundle(bundle_dir, "")).resources
    operator = BundlePlanOperator(task_id="plan", resources=["jobs.etl"], **arguments(bundle_dir))

    operator.execute({})  # type: ignore[arg-type]

    base = workspaces.base_url("staging")
    links = {link.name: link.get_link(operator, ti_key=None) for link in operator.operator_extra_links}  # type: ignore[arg-type]
    assert links == {
        "Bundle folder": f"{base}/#workspace/Workspace/Shared/ops",
        "Databricks jobs.etl": f"{base}/jobs/{deployed['resources.jobs.etl'].id}",
    }


def test_validate_fails_the_task_naming_file_and_field(
    workspaces: WorkspaceEmulator, bundle_dir: Path
) -> None:
    (bundle_dir / "databricks.yml").write_text(BUNDLE + "permissions: [{level: CAN_EDIT, group_name: x}]\n")

    with pytest.raises(
        AirflowFailException, match=r"databricks\.yml: permissions\[0\]\.level: unsupported"
    ) as raised:
        BundleValidateOperator(task_id="validate", **arguments(bundle_dir)).execute({})  # type: ignore[arg-type]

    assert isinstance(raised.value.__cause__, BundleConfigError)  # final: Airflow does not retry it


class Lines:
    """A logger that keeps what it is told, formatted."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)

    warning = info


def test_plan_logs_one_line_per_resource_and_returns_the_plan(
    workspaces: WorkspaceEmulator, bundle_dir: Path
) -> None:
    operator = BundlePlanOperator(task_id="plan", **arguments(bundle_dir))
    operator._cached_logger = log = Lines()  # type: ignore[assignment]

    plan = operator.execute({})  # type: ignore[arg-type]

    fields = ["deployment", "edit_mode", "format", "max_concurrent_runs", "name", "queue"]
    assert plan["plan"] == {"resources.jobs.etl": {"action": "create", "changed_fields": fields}}
    assert f"create   resources.jobs.etl ({', '.join(fields)})" in log.lines


def test_destroy_deletes_what_the_state_records(workspaces: WorkspaceEmulator, bundle_dir: Path) -> None:
    from bundle_promotion.bundle.config.load import load_bundle
    from bundle_promotion.bundle.deploy.engine import NativeEngine
    from bundle_promotion.hooks.workspace import WorkspaceHook

    deployed = NativeEngine(WorkspaceHook("databricks_staging")).deploy(load_bundle(bundle_dir, ""))

    deleted = BundleDestroyOperator(task_id="destroy", **arguments(bundle_dir)).execute({})  # type: ignore[arg-type]

    assert deleted == {"resources.jobs.etl": deployed.resources["resources.jobs.etl"].id}


def test_templated_fields_include_the_bundle_and_the_target() -> None:
    assert {"bundle_dir", "target", "databricks_conn_id", "variables"} <= set(
        BundlePlanOperator.template_fields
    )
    assert {"target", "databricks_conn_id", "bundle_path"} <= set(BundleDeployOperator.template_fields)


def test_the_deploy_task_links_to_each_job_and_reads_the_urls_it_set() -> None:
    operator = BundleDeployOperator(
        task_id="deploy",
        bundle="ops",
        repo="/repo",
        environment="dev",
        target="dev",
        databricks_conn_id="databricks_dev",
        resources=["jobs.etl", "jobs.report"],
    )
    operator.resource_urls = {"jobs.etl": "https://host/jobs/1"}

    links = {link.name: link for link in operator.operator_extra_links}
    assert set(links) == {"Bundle folder", "Databricks jobs.etl", "Databricks jobs.report"}
    etl = links["Databricks jobs.etl"]
    assert isinstance(etl, BundleResourceLink)
    assert etl.get_link(operator, ti_key=None) == "https://host/jobs/1"  # type: ignore[arg-type]
    assert links["Databricks jobs.report"].get_link(operator, ti_key=None) == ""  # type: ignore[arg-type]


def test_the_deploy_task_links_the_targets_folder_and_each_pipeline() -> None:
    deployment = EnvironmentDeployment(
        deployment_id=1,
        jobs={"etl": DeployedJob("etl", "11", "etl")},
        pipelines={"sales": "p-7"},
        root_path="/Workspace/Shared/.bundle/ops/dev",
    )

    assert deployment_urls("https://host", EnvironmentDeployment.from_xcom(deployment.to_xcom())) == {
        "folder": "https://host/#workspace/Workspace/Shared/.bundle/ops/dev",
        "jobs.etl": "https://host/jobs/11",
        "pipelines.sales": "https://host/pipelines/p-7",
    }
