"""A lost answer never creates a duplicate: creates are not idempotent, so their outcome is found out.

The emulator loses answers the way a flaky network does, after the server acted: it drops the
connection, answers 503, or answers after the client's timeout. Each mode runs many deploys of
fresh targets; a deploy that fails because a create's outcome stayed unknown is deployed again,
as the task's retry would. Afterwards every target has each of its resources exactly once, and
its state records exactly those.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import DeployResult, NativeEngine
from bundle_promotion.bundle.deploy.lock import LockOwner
from bundle_promotion.errors import DeployError, WorkspaceApiError
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

DEPLOYS = 50
CREATES = ("/jobs/create", "/api/2.0/pipelines")
CLIENT_TIMEOUT = 0.3  # seconds; the delayed answers come later than this
MOST_TRIES = 5


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook(
        "databricks_dev",
        timeout_seconds=CLIENT_TIMEOUT,  # type: ignore[arg-type]  # requests takes a float
        retry_args={"stop": stop_after_attempt(3), "wait": wait_none()},
    )


def target_bundle(folder: Path, index: int) -> ResolvedBundle:
    folder.mkdir(parents=True)
    (folder / "dlt.py").write_text("# Databricks notebook source\nprint('dlt')\n")
    (folder / "databricks.yml").write_text(
        f"bundle: {{name: lossy}}\nworkspace: {{root_path: /Shared/lossy/{index}}}\n"
        "resources:\n"
        "  jobs:\n    ingest: {name: ingest}\n    report: {name: report}\n"
        # Pipeline names are unique in a workspace; job names need not be.
        f"  pipelines:\n    sales: {{name: sales {index}, libraries: [{{notebook: {{path: ./dlt.py}}}}]}}\n"
    )
    return load_bundle(folder, "")


def deploy_until_done(engine: NativeEngine, bundle: ResolvedBundle) -> tuple[DeployResult, int]:
    """Deploy as one task does: a try that failed for want of an answer is tried again, as its owner."""
    owner = LockOwner("manual__1", "dev.deploy", "dev")
    for tries in range(1, MOST_TRIES + 1):
        try:
            return engine.deploy(bundle, owner=owner), tries
        except (DeployError, WorkspaceApiError) as error:
            unanswered = "outcome is unknown" in str(error) or getattr(error, "outcome_unknown", False)
            if not unanswered or tries == MOST_TRIES:
                raise
    raise AssertionError("unreachable")


def resources_of(hook: WorkspaceHook, bundle: ResolvedBundle) -> Counter[tuple[str, str, str]]:
    """(kind, name, id) of every job and pipeline carrying this target's deployment marker."""
    marker = f"{bundle.workspace.state_path}/metadata.json"
    found: Counter[tuple[str, str, str]] = Counter()
    for job in hook.call("GET", "2.2/jobs/list", query={"limit": 100}).get("jobs", []):
        if job["settings"].get("deployment", {}).get("metadata_file_path") == marker:
            found[("jobs", job["settings"]["name"], str(job["job_id"]))] += 1
    for status in hook.call("GET", "2.0/pipelines", query={"max_results": 100}).get("statuses", []):
        spec = hook.call("GET", f"2.0/pipelines/{status['pipeline_id']}")["spec"]
        if spec.get("deployment", {}).get("metadata_file_path") == marker:
            found[("pipelines", spec["name"], status["pipeline_id"])] += 1
    return found


def state_ids(hook: WorkspaceHook, bundle: ResolvedBundle) -> set[str]:
    state = workspace_files.read_json(hook, f"{bundle.workspace.state_path}/resources.json")
    assert isinstance(state, dict)
    return {entry["__id__"] for entry in state["state"].values()}


def assert_exactly_once_and_recorded(hook: WorkspaceHook, bundle: ResolvedBundle) -> None:
    found = resources_of(hook, bundle)
    wanted = [
        (kind, resource["name"])
        for kind in ("jobs", "pipelines")
        for resource in bundle.resources[kind].values()
    ]
    assert Counter((kind, name) for kind, name, _ in found) == Counter(wanted)
    assert state_ids(hook, bundle) == {resource_id for _, _, resource_id in found}


@pytest.mark.parametrize(
    ("mode", "seconds"),
    [("drop", 0.0), ("error", 0.0), ("delay", CLIENT_TIMEOUT + 0.15)],
    ids=["connection-dropped-after-acting", "503-after-acting", "answer-after-client-timeout"],
)
def test_every_create_whose_answer_is_lost_is_found_and_adopted(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path, mode: Any, seconds: float
) -> None:
    engine = NativeEngine(hook, unknown_outcome_grace=10)
    retried = 0
    for index in range(DEPLOYS):
        bundle = target_bundle(tmp_path / str(index), index)
        workspaces.lose_answers("dev", mode, paths=CREATES, count=1, seconds=seconds)

        result, tries = deploy_until_done(engine, bundle)
        retried += tries - 1

        assert_exactly_once_and_recorded(hook, bundle)
        assert {resource.action for resource in result.resources.values()} == {"create"}
    print(f"lost answers ({mode}): {DEPLOYS} deploys, 0 duplicates, {retried} deploys run again")


def test_writes_lost_at_random_leave_no_duplicate_and_a_state_equal_to_the_workspace(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    """15% of every write (files, lock, state, creates, permissions) loses its answer after acting."""
    engine = NativeEngine(hook, unknown_outcome_grace=10)
    workspaces.lose_answers("dev", "drop", probability=0.15, seed=7)
    retried = 0
    for index in range(DEPLOYS):
        bundle = target_bundle(tmp_path / str(index), index)

        _, tries = deploy_until_done(engine, bundle)
        redeploy, _ = deploy_until_done(engine, bundle)
        retried += tries - 1

        assert_exactly_once_and_recorded(hook, bundle)
        assert {resource.action for resource in redeploy.resources.values()} == {"skip"}
        assert workspace_files.read_bytes(hook, f"{bundle.workspace.state_path}/deploy.lock") is None
    print(f"lost answers (15% of writes): {DEPLOYS} targets, 0 duplicates, {retried} deploys run again")
