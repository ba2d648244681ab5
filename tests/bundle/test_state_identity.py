"""A deploy state belongs to one bundle deployment: its workspace state path and lineage.

Many bundles share a workspace, a connection, a target name and a worker's home; none may
ever take over another's resources through a local copy of state.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.bundle.deploy.state import DeploymentState, StateCache, reconcile
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator

BUNDLES = 6
JOBS_EACH = 2


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_dev", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()})


def write_bundle(folder: Path, name: str) -> Path:
    jobs = "\n".join(f"    job_{index}: {{name: {name} job {index}}}" for index in range(JOBS_EACH))
    folder.mkdir(parents=True)
    (folder / "databricks.yml").write_text(
        f"bundle: {{name: {name}}}\n"
        f"targets:\n  dev: {{workspace: {{root_path: /Shared/.bundle/{name}/dev}}}}\n"
        f"resources:\n  jobs:\n{jobs}\n"
    )
    return folder


def jobs_by_bundle(hook: WorkspaceHook) -> dict[str, set[str]]:
    """Each bundle's job names as the workspace has them, by the bundle's deployment marker."""
    listed = hook.call("GET", "2.2/jobs/list", query={"limit": 100}).get("jobs", [])
    found: dict[str, set[str]] = {}
    for job in listed:
        marker = job["settings"]["deployment"]["metadata_file_path"]
        found.setdefault(marker.split("/")[-4], set()).add(job["settings"]["name"])
    return found


def test_bundles_deployed_at_once_through_one_connection_and_home_each_keep_their_own_jobs(
    hook: WorkspaceHook, tmp_path: Path
) -> None:
    names = [f"etl_{index:02}" for index in range(BUNDLES)]
    bundles = [write_bundle(tmp_path / "checkouts" / name, name) for name in names]
    cache = StateCache(tmp_path / "worker_home" / "states", hook.workspace_host_url())
    start = threading.Barrier(BUNDLES)
    failures: list[BaseException] = []

    def deploy(bundle_dir: Path) -> None:
        bundle = load_bundle(bundle_dir, "dev")
        start.wait()
        try:
            NativeEngine(hook, state_cache=cache).deploy(bundle)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=deploy, args=(bundle,)) for bundle in bundles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for bundle_dir in bundles:  # and once more, one after another, as later promotions do
        NativeEngine(hook, state_cache=cache).deploy(load_bundle(bundle_dir, "dev"))

    assert failures == []
    assert jobs_by_bundle(hook) == {name: {f"{name} job {i}" for i in range(JOBS_EACH)} for name in names}


def test_a_new_bundle_never_adopts_a_local_state_copy_another_bundle_left_at_the_same_place(
    hook: WorkspaceHook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DATABRICKS_BUNDLE_TMP` puts every bundle's local copy in one folder, as a cache keyed by
    connection and target did; the second bundle must not take the first one's jobs."""
    monkeypatch.setenv("DATABRICKS_BUNDLE_TMP", str(tmp_path / "shared"))
    first, second = write_bundle(tmp_path / "a", "first"), write_bundle(tmp_path / "b", "second")

    first_jobs = NativeEngine(hook).deploy(load_bundle(first, "dev")).resources
    second_jobs = NativeEngine(hook).deploy(load_bundle(second, "dev")).resources

    assert {r.action for r in second_jobs.values()} == {"create"}
    assert {r.id for r in first_jobs.values()}.isdisjoint({r.id for r in second_jobs.values()})
    assert jobs_by_bundle(hook)["first"] == {"first job 0", "first job 1"}


def test_the_cache_keeps_one_folder_per_workspace_and_state_path(tmp_path: Path) -> None:
    cache = StateCache(tmp_path, "https://adb-1.azuredatabricks.net")
    other_host = StateCache(tmp_path, "https://adb-2.azuredatabricks.net")

    assert cache.folder("/Workspace/a/state") == cache.folder("/Workspace/a/state")
    assert cache.folder("/Workspace/a/state") != cache.folder("/Workspace/b/state")
    assert cache.folder("/Workspace/a/state") != other_host.folder("/Workspace/a/state")
    assert cache.folder("/Workspace/a/state").is_relative_to(tmp_path)


@pytest.mark.parametrize(
    ("local", "remote", "wins"),
    [
        (DeploymentState("l-1", 7), DeploymentState("l-1", 5), "local"),
        (DeploymentState("l-1", 4), DeploymentState("l-1", 5), "remote"),
        (DeploymentState("l-1", 7), DeploymentState("l-2", 5), "remote"),
        (DeploymentState("l-1", 7), DeploymentState.new(), "remote"),
        (None, DeploymentState("l-1", 5), "remote"),
    ],
    ids=["later-serial-same-lineage", "older-serial", "other-lineage", "no-remote-state", "no-local-copy"],
)
def test_a_local_copy_counts_only_as_a_later_serial_of_the_workspace_lineage(
    local: DeploymentState | None, remote: DeploymentState, wins: str
) -> None:
    assert reconcile(local, remote) is (local if wins == "local" else remote)
