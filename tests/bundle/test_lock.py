"""The deploy lock under contention: concurrent deploys, and a lock left by a killed deploy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import DeployResult, NativeEngine
from bundle_promotion.errors import LockHeld
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

LOCK = "/Workspace/Shared/locked/state/deploy.lock"
HELD = "Another deployment may be in progress. Use --force-lock to override"
JOBS = 6
KILLED_DEPLOY = """
import sys
from pathlib import Path
from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.hooks.workspace import WorkspaceHook
NativeEngine(WorkspaceHook("databricks_staging"), max_workers=1).deploy(load_bundle(Path(sys.argv[1]), ""))
"""


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook(
        "databricks_staging", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()}
    )


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    jobs = "\n".join(f"    job_{index}: {{name: job {index}}}" for index in range(JOBS))
    (tmp_path / "databricks.yml").write_text(
        f"bundle: {{name: locked}}\nworkspace: {{root_path: /Shared/locked}}\nresources:\n  jobs:\n{jobs}\n"
    )
    return tmp_path


def job_names(hook: WorkspaceHook) -> list[str]:
    listed = hook.call("GET", "2.2/jobs/list", query={"limit": 100}).get("jobs", [])
    return sorted(job["settings"]["name"] for job in listed)


def test_two_deploys_at_once_create_each_job_once(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    start = threading.Barrier(2)
    outcomes: list[DeployResult | LockHeld] = []

    def deploy() -> None:
        bundle = load_bundle(bundle_dir, "")
        start.wait()
        try:
            outcomes.append(NativeEngine(hook).deploy(bundle))
        except LockHeld as held:
            outcomes.append(held)

    workspaces.set_latency(0.02)
    try:
        threads = [threading.Thread(target=deploy) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        workspaces.set_latency(0)

    assert job_names(hook) == sorted(f"job {index}" for index in range(JOBS))
    assert any(isinstance(outcome, DeployResult) for outcome in outcomes)
    assert all(HELD in str(outcome) for outcome in outcomes if isinstance(outcome, LockHeld))
    assert workspace_files.read_bytes(hook, LOCK) is None


def test_a_deploy_killed_midway_leaves_a_lock_that_force_lock_clears_without_duplicates(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    workspaces.set_latency(0.3)  # jobs are created one at a time, slowly enough to kill between two
    deploying = subprocess.Popen(
        [sys.executable, "-c", KILLED_DEPLOY, str(bundle_dir)], env=os.environ.copy()
    )
    try:
        _wait_for(lambda: workspace_files.read_bytes(hook, LOCK) is not None and job_names(hook), seconds=60)
        deploying.send_signal(signal.SIGKILL)
        deploying.wait()
        created_before_the_kill = len(job_names(hook))
    finally:
        workspaces.set_latency(0)
        if deploying.poll() is None:
            deploying.kill()

    assert 0 < created_before_the_kill < JOBS
    with pytest.raises(LockHeld, match=HELD):
        NativeEngine(hook).deploy(load_bundle(bundle_dir, ""))
    NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), force_lock=True)

    assert job_names(hook) == sorted(f"job {index}" for index in range(JOBS))
    assert workspace_files.read_bytes(hook, LOCK) is None


def test_a_forced_lock_is_reported_as_force_acquired(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    from bundle_promotion.bundle.deploy.lock import DeployLock

    forced = DeployLock(hook, "/Workspace/Shared/locked/state", force=True)
    held_by_someone = pytest.raises(LockHeld, match=r"deploy lock force-acquired by forcer@example\.com at ")
    with forced.held("forcer@example.com"), held_by_someone:
        NativeEngine(hook).deploy(load_bundle(bundle_dir, ""))


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(0.05)
