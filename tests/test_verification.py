"""Installation verification against the workspace emulator: what a deploy left, and what changed since."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion import workspace_files
from bundle_promotion.bundle_config import ResolvedBundle, load_bundle
from bundle_promotion.engine import NativeEngine
from bundle_promotion.errors import VerificationFailed
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.release import Artifact
from bundle_promotion.schedules import set_pause_status
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.verification import Mismatch, verify_installation
from tests.conftest import EXAMPLE_BUNDLE

WHEEL = "example_etl-1.0.0-py3-none-any.whl"
WHEEL_BYTES = b"the wheel the release built"
FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}


@pytest.fixture
def api(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_staging", retry_args=FAST_RETRIES)


@pytest.fixture
def bundle(tmp_path: Path) -> ResolvedBundle:
    folder = tmp_path / "example_bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder, ignore=shutil.ignore_patterns("dist", ".databricks"))
    (folder / "dist").mkdir()
    (folder / "dist" / WHEEL).write_bytes(WHEEL_BYTES)
    return load_bundle(folder, "staging")


@pytest.fixture
def artifacts() -> list[Artifact]:
    return [Artifact(WHEEL, f"dist/{WHEEL}", hashlib.sha256(WHEEL_BYTES).hexdigest())]


@pytest.fixture
def job_ids(api: WorkspaceHook, bundle: ResolvedBundle) -> dict[str, str]:
    """The example bundle deployed to staging, its triggers paused as the deploy step leaves them."""
    result = NativeEngine(api).deploy(bundle)
    ids = {r.key.rsplit(".", 1)[-1]: r.id for r in result.resources.values() if r.type == "jobs"}
    set_pause_status(api, ids.values(), "PAUSED")
    return ids


def verify(
    api: WorkspaceHook, bundle: ResolvedBundle, job_ids: dict[str, str], artifacts: list[Artifact]
) -> list[Mismatch]:
    return verify_installation(api, bundle, job_ids, artifacts, pause_status="PAUSED")


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


def test_the_failure_lists_every_mismatch_and_the_fix() -> None:
    error = VerificationFailed(
        "example v1.0.0 in target staging",
        [Mismatch("resources.jobs.etl", "name", "nightly", "nightly (hotfix)")],
    )

    assert "resources.jobs.etl: name is 'nightly (hotfix)', expected 'nightly'" in str(error)
    assert "redeploy the release" in str(error)
