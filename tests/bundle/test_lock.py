"""The deploy lock under contention: concurrent deploys, and a lock left by a killed deploy.

A deploy run by a task owns its lock: a retry of that task, on any worker, resumes it and
converges; another run meets the lock, with its holder named, until someone breaks it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import DeployResult, NativeEngine
from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.bundle.deploy.state import StateCache
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
# A worker deploying as a task's owner. It talks REST with plain requests, so that it starts
# without importing Airflow: thirty of them are killed, one each at a random write.
OWNED_DEPLOY = """
import sys
from pathlib import Path
import requests
from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.bundle.deploy.lock import LockOwner
from bundle_promotion.errors import WorkspaceApiError

class Api:
    def __init__(self, base_url, token):
        self.base_url, self.session = base_url, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, body=None, query=None, *, idempotent=True):
        answer = self.session.request(method, f"{self.base_url}/api/{path}", json=body, params=query)
        if not answer.ok:
            error = answer.json()
            code, message = error.get("error_code", ""), error.get("message", "")
            raise WorkspaceApiError(method, path, answer.status_code, code, message)
        return answer.json() if answer.content else {}

bundle_dir, base_url, token = sys.argv[1:4]
owner = LockOwner("scheduled__2026-11-30", "staging.deploy", "staging")
engine = NativeEngine(Api(base_url, token), max_workers=1)
engine.deploy(load_bundle(Path(bundle_dir), ""), owner=owner)
"""
OWNER = LockOwner("scheduled__2026-11-30", "staging.deploy", "staging")
KILLS = 30


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
    forced = DeployLock(hook, "/Workspace/Shared/locked/state", force=True)
    held_by_someone = pytest.raises(LockHeld, match=r"deploy lock force-acquired by forcer@example\.com at ")
    with forced.held("forcer@example.com"), held_by_someone:
        NativeEngine(hook).deploy(load_bundle(bundle_dir, ""))


def owned_bundle(folder: Path, index: int) -> Path:
    jobs = "\n".join(f"    job_{job}: {{name: job {job}}}" for job in range(JOBS))
    folder.mkdir(parents=True)
    root = f"bundle: {{name: owned}}\nworkspace: {{root_path: /Shared/owned/{index}}}\n"
    (folder / "databricks.yml").write_text(f"{root}resources:\n  jobs:\n{jobs}\n")
    return folder


def marked_jobs(hook: WorkspaceHook, state_path: str) -> list[tuple[str, str]]:
    """(name, id) of every job carrying the deployment marker of `state_path`."""
    listed = hook.call("GET", "2.2/jobs/list", query={"limit": 100}).get("jobs", [])
    marker = f"{state_path}/metadata.json"
    return sorted(
        (job["settings"]["name"], str(job["job_id"]))
        for job in listed
        if job["settings"].get("deployment", {}).get("metadata_file_path") == marker
    )


def test_a_deploy_killed_at_any_point_is_resumed_by_its_retry_on_another_worker(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    """Thirty deploys, each killed at a random write; the task's retry runs on a worker with
    another home (no local state, no log of the killed one) and must converge: each job once,
    recorded in the state, and no lock left."""
    chooser = random.Random(11)
    outcomes: Counter[str] = Counter()
    for trial in range(KILLS):
        bundle_dir = owned_bundle(tmp_path / "worker_a" / str(trial), trial)
        state_path = f"/Workspace/Shared/owned/{trial}/state"
        kill_after = chooser.randint(1, JOBS + 4)  # lock, mkdirs, creates, state, manifest, unlock
        kill_at_write(workspaces, bundle_dir, kill_after)
        left_locked = workspace_files.read_bytes(hook, f"{state_path}/deploy.lock") is not None
        outcomes["killed holding the lock" if left_locked else "killed without the lock"] += 1

        retry_home = StateCache(tmp_path / "worker_b", hook.workspace_host_url())
        NativeEngine(hook, state_cache=retry_home).deploy(load_bundle(bundle_dir, ""), owner=OWNER)

        jobs = marked_jobs(hook, state_path)
        assert [name for name, _ in jobs] == sorted(f"job {index}" for index in range(JOBS))
        state = workspace_files.read_json(hook, f"{state_path}/resources.json")
        assert isinstance(state, dict)
        assert {entry["__id__"] for entry in state["state"].values()} == {job_id for _, job_id in jobs}
        assert workspace_files.read_bytes(hook, f"{state_path}/deploy.lock") is None
    assert outcomes["killed holding the lock"] > 0
    print(f"killed deploys: {KILLS} ({dict(outcomes)}), 0 duplicates, 0 locks left after the retry")


def test_another_runs_lock_stays_held_and_names_its_holder(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    other_run = DeployLock(hook, "/Workspace/Shared/locked/state", owner=OWNER)
    this_run = LockOwner("manual__2026-11-30", "staging.deploy", "staging")

    with other_run.held("deployer@example.com"):
        with pytest.raises(LockHeld) as held:
            NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), owner=this_run)
        assert workspace_files.read_bytes(hook, LOCK) is not None

    message = str(held.value)
    assert HELD in message
    assert "run scheduled__2026-11-30, task staging.deploy (staging) on host " in message
    assert held.value.holder["Owner"]["run_id"] == "scheduled__2026-11-30"
    assert held.value.path == LOCK
    assert job_names(hook) == []


def test_a_forced_deploy_that_changes_nothing_still_releases_the_lock_it_broke(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    NativeEngine(hook).deploy(load_bundle(bundle_dir, ""))
    stale = DeployLock(hook, "/Workspace/Shared/locked/state", owner=OWNER)
    stale._acquire("gone@example.com")  # a deploy that died holding the lock

    result = NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), force_lock=True)

    assert {resource.action for resource in result.resources.values()} == {"skip"}
    assert result.broken_lock is not None
    assert result.broken_lock["User"] == "gone@example.com"
    assert workspace_files.read_bytes(hook, LOCK) is None


def test_a_retry_that_finds_its_own_lock_and_nothing_to_do_releases_it(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), owner=OWNER)
    DeployLock(hook, "/Workspace/Shared/locked/state", owner=OWNER)._acquire("deployer@example.com")

    result = NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), owner=OWNER)

    assert result.broken_lock is None
    assert workspace_files.read_bytes(hook, LOCK) is None


def kill_at_write(workspaces: WorkspaceEmulator, bundle_dir: Path, kill_after: int) -> None:
    """Deploy in a process of its own and SIGKILL it once the workspace saw `kill_after` of its writes."""
    writes_before = len(_writes(workspaces))
    arguments = [str(bundle_dir), workspaces.base_url("staging"), workspaces.token("staging")]
    deploying = subprocess.Popen([sys.executable, "-c", OWNED_DEPLOY, *arguments])
    try:
        _wait_for(
            lambda: len(_writes(workspaces)) - writes_before >= kill_after or deploying.poll() is not None,
            seconds=60,
        )
        deploying.send_signal(signal.SIGKILL)
        deploying.wait()
    finally:
        if deploying.poll() is None:
            deploying.kill()


def test_the_rollback_takes_over_the_lock_its_runs_killed_deploy_left(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    """The DAG orders a run's tasks: when the rollback runs, the run's deploy has ended."""
    DeployLock(hook, "/Workspace/Shared/locked/state", owner=OWNER)._acquire("deployer@example.com")
    redeploy = LockOwner(OWNER.run_id, "staging_rollback.redeploy", "staging")
    another_run = LockOwner("manual__2026-12-01", "staging_rollback.redeploy", "staging")

    with pytest.raises(LockHeld):
        NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), owner=another_run)
    result = NativeEngine(hook).deploy(load_bundle(bundle_dir, ""), owner=redeploy)

    assert result.broken_lock is not None
    assert result.broken_lock["Owner"]["task_id"] == "staging.deploy"
    assert job_names(hook) == sorted(f"job {index}" for index in range(JOBS))
    assert workspace_files.read_bytes(hook, LOCK) is None


def _writes(workspaces: WorkspaceEmulator) -> list[object]:
    return [request for request in workspaces.requests("staging") if request.method != "GET"]


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(0.05)
