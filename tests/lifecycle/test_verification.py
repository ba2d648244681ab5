"""Installation verification against the workspace emulator: what a deploy left, and what changed since."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.errors import VerificationFailed
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger.records import Artifact
from bundle_promotion.lifecycle.schedules import set_pause_status, set_pipeline_status
from bundle_promotion.lifecycle.verification import Mismatch, verify_installation
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files
from tests.conftest import EXAMPLE_BUNDLE

WHEEL = "example_etl-1.0.0-py3-none-any.whl"
WHEEL_BYTES = b"the wheel the release built"
FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}
STREAM = {
    "resources": {
        "pipelines": {
            "stream": {
                "name": "[${bundle.target}] orders stream",
                "continuous": True,
                "tags": {"team": "sales"},
            }
        }
    }
}


@pytest.fixture
def api(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_staging", retry_args=FAST_RETRIES)


@pytest.fixture
def bundle(tmp_path: Path) -> ResolvedBundle:
    folder = tmp_path / "example_bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder, ignore=shutil.ignore_patterns("dist", ".databricks"))
    (folder / "dist").mkdir()
    (folder / "dist" / WHEEL).write_bytes(WHEEL_BYTES)
    (folder / "resources" / "stream.pipeline.yml").write_text(yaml.safe_dump(STREAM))
    return load_bundle(folder, "staging")


@pytest.fixture
def artifacts() -> list[Artifact]:
    return [Artifact(WHEEL, f"dist/{WHEEL}", hashlib.sha256(WHEEL_BYTES).hexdigest())]


@pytest.fixture
def deployed_ids(api: WorkspaceHook, bundle: ResolvedBundle) -> dict[str, dict[str, str]]:
    """The example bundle and a pipeline deployed to staging, paused as the deploy step leaves them:
    their ids by kind and key."""
    result = NativeEngine(api).deploy(bundle)
    ids: dict[str, dict[str, str]] = {"jobs": {}, "pipelines": {}}
    for resource in result.resources.values():
        ids[resource.type][resource.key.rsplit(".", 1)[-1]] = resource.id
    set_pause_status(api, ids["jobs"].values(), "PAUSED")
    set_pipeline_status(api, ids["pipelines"].values(), "PAUSED")
    return ids


@pytest.fixture
def job_ids(deployed_ids: dict[str, dict[str, str]]) -> dict[str, str]:
    return deployed_ids["jobs"]


@pytest.fixture
def pipeline_ids(deployed_ids: dict[str, dict[str, str]]) -> dict[str, str]:
    return deployed_ids["pipelines"]


def verify(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> list[Mismatch]:
    """What the installation check finds, given the pipelines as the target's state records them."""
    pipeline_ids = {
        r.key.rsplit(".", 1)[-1]: r.id
        for r in NativeEngine(api).deployed(bundle).values()
        if r.type == "pipelines"
    }
    return verify_installation(
        api, bundle, job_ids, artifacts, pause_status="PAUSED", pipeline_ids=pipeline_ids
    )


def test_a_fresh_deploy_verifies_clean(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> None:
    assert verify(api, bundle, job_ids, artifacts) == []


def test_a_job_edited_by_hand_is_reported_field_by_field(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> None:
    api.call(
        "POST",
        "2.2/jobs/update",
        body={"job_id": int(job_ids["etl"]), "new_settings": {"name": "etl (hotfix)", "tags": {}}},
    )

    mismatches = verify(api, bundle, job_ids, artifacts)

    assert [(m.resource, m.field, m.actual) for m in mismatches] == [
        ("resources.jobs.etl", "name", "etl (hotfix)"),
        ("resources.jobs.etl", "tags", {}),
    ]


def test_a_wheel_whose_bytes_differ_is_reported_with_both_digests(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> None:
    uploaded = f"{bundle.workspace.artifact_path}/.internal/{WHEEL}"
    workspace_files.write_bytes(api, uploaded, b"a wheel rebuilt somewhere else")

    [mismatch] = verify(api, bundle, job_ids, artifacts)

    assert (mismatch.resource, mismatch.field) == (uploaded, "sha256")
    assert mismatch.expected == artifacts[0].sha256
    assert mismatch.actual == hashlib.sha256(b"a wheel rebuilt somewhere else").hexdigest()


def test_an_unpaused_schedule_is_a_mismatch_while_the_release_is_unverified(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> None:
    set_pause_status(api, [job_ids["etl"]], "UNPAUSED")

    [mismatch] = verify(api, bundle, job_ids, artifacts)

    assert (mismatch.field, mismatch.expected, mismatch.actual) == (
        "schedule.pause_status",
        "PAUSED",
        "UNPAUSED",
    )


def test_a_deleted_job_and_a_swapped_library_are_both_reported(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> None:
    api.call("POST", "2.2/jobs/delete", body={"job_id": int(job_ids["integration_tests"])})
    settings = api.call("GET", "2.2/jobs/get", query={"job_id": int(job_ids["etl"])})["settings"]
    environments = settings["environments"]
    environments[0]["spec"]["dependencies"] = ["example-etl==0.9"]
    api.call(
        "POST",
        "2.2/jobs/update",
        body={"job_id": int(job_ids["etl"]), "new_settings": {"environments": environments}},
    )

    mismatches = verify(api, bundle, job_ids, artifacts)

    assert sorted((m.resource, m.field) for m in mismatches) == [
        ("resources.jobs.etl", "libraries"),
        ("resources.jobs.integration_tests", "job_id"),
    ]


def test_a_renamed_pipeline_is_reported(
    api: WorkspaceHook,
    bundle: ResolvedBundle,
    job_ids: dict[str, str],
    pipeline_ids: dict[str, str],
    artifacts: list[Artifact],
) -> None:
    stream = pipeline_ids["stream"]
    spec = api.call("GET", f"2.0/pipelines/{stream}")["spec"]
    api.call("PUT", f"2.0/pipelines/{stream}", body={**spec, "name": "orders stream (hotfix)"})

    [mismatch] = verify(api, bundle, job_ids, artifacts)

    assert (mismatch.resource, mismatch.field, mismatch.expected, mismatch.actual) == (
        "resources.pipelines.stream",
        "name",
        "[staging] orders stream",
        "orders stream (hotfix)",
    )


def test_a_deleted_pipeline_is_reported(
    api: WorkspaceHook,
    bundle: ResolvedBundle,
    job_ids: dict[str, str],
    pipeline_ids: dict[str, str],
    artifacts: list[Artifact],
) -> None:
    api.call("DELETE", f"2.0/pipelines/{pipeline_ids['stream']}")

    [mismatch] = verify(api, bundle, job_ids, artifacts)

    assert (mismatch.resource, mismatch.field, mismatch.actual) == (
        "resources.pipelines.stream",
        "pipeline_id",
        None,
    )


def test_the_failure_lists_every_mismatch_and_the_fix() -> None:
    error = VerificationFailed(
        "example v1.0.0 in target staging",
        [Mismatch("resources.jobs.etl", "name", "nightly", "nightly (hotfix)")],
    )

    assert "resources.jobs.etl: name is 'nightly (hotfix)', expected 'nightly'" in str(error)
    assert "redeploy the release" in str(error)
