"""A promotion's deploy and the target's lock: its own lock resumed, another's broken only on purpose."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.errors import EnvironmentHeld, LockHeld
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.lifecycle.promotion import BundleSource, cut_release, deploy_release
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

DEV_STATE = "/Workspace/Shared/.bundle/example_etl/dev/state"
OWNER = LockOwner("manual__2026-11-30", "dev.deploy", "dev")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


@pytest.fixture
def released(
    workspaces: WorkspaceEmulator, bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> tuple[BundleSource, int, ArtifactStore]:
    source = BundleSource("example_etl", str(bundle_repo()))
    store = ArtifactStore(tmp_path / "store")  # type: ignore[arg-type]  # a Path is a storage path here
    release_id = cut_release(
        source,
        "v1.0.0",
        targets=["dev"],
        test_jobs=[],
        ledger=ledger,
        store=store,
        checkouts=tmp_path / "checkouts",
    )
    return source, release_id, store


def deploy(
    released: tuple[BundleSource, int, ArtifactStore], ledger: Ledger, tmp_path: Path, **options: object
) -> object:
    source, release_id, store = released
    return deploy_release(
        source,
        release_id,
        environment="dev",
        target="dev",
        run_id=OWNER.run_id,
        api=WorkspaceHook("databricks_dev"),
        ledger=ledger,
        store=store,
        checkouts=tmp_path / "checkouts",
        **options,  # type: ignore[arg-type]
    )


def test_breaking_another_runs_lock_is_recorded_in_the_audit_trail(
    released: tuple[BundleSource, int, ArtifactStore], ledger: Ledger, tmp_path: Path
) -> None:
    api = WorkspaceHook("databricks_dev")
    dead_run = LockOwner("scheduled__2026-11-29", "dev.deploy", "dev")
    DeployLock(api, DEV_STATE, owner=dead_run)._acquire("deployer@example.com")

    with pytest.raises(LockHeld, match=r"run scheduled__2026-11-29, task dev\.deploy"):
        deploy(released, ledger, tmp_path, owner=OWNER)
    deploy(released, ledger, tmp_path, owner=OWNER, force_lock=True, actor="alice")

    broken = [event for event in ledger.audit_events() if event.action == "deploy_lock.broken"]
    assert len(broken) == 1
    assert broken[0].actor == "alice"
    assert broken[0].subject == "example_etl/dev"
    assert broken[0].details["lock"]["Owner"]["run_id"] == "scheduled__2026-11-29"
    assert workspace_files.read_bytes(api, f"{DEV_STATE}/deploy.lock") is None


def test_a_retry_resuming_its_own_lock_breaks_nothing(
    released: tuple[BundleSource, int, ArtifactStore], ledger: Ledger, tmp_path: Path
) -> None:
    api = WorkspaceHook("databricks_dev")
    DeployLock(api, DEV_STATE, owner=OWNER)._acquire("deployer@example.com")  # left by a killed try

    deploy(released, ledger, tmp_path, owner=OWNER)

    assert [event.action for event in ledger.audit_events() if event.action.startswith("deploy_lock")] == []
    assert workspace_files.read_bytes(api, f"{DEV_STATE}/deploy.lock") is None


def test_a_deploy_records_the_lock_it_waits_on_until_it_gets_it(
    released: tuple[BundleSource, int, ArtifactStore], ledger: Ledger, tmp_path: Path
) -> None:
    api = WorkspaceHook("databricks_dev")
    DeployLock(api, DEV_STATE, owner=LockOwner("scheduled__2026-11-29", "dev.deploy", "dev"))._acquire(
        "deployer@example.com"
    )

    with pytest.raises(LockHeld):
        deploy(released, ledger, tmp_path, owner=OWNER)
    waited = ledger.lock_wait("example_etl", "dev")
    workspace_files.delete(api, f"{DEV_STATE}/deploy.lock")  # the other deployment ends
    deploy(released, ledger, tmp_path, owner=OWNER)

    assert waited is not None
    assert (waited.run_id, waited.lock_path) == (OWNER.run_id, f"{DEV_STATE}/deploy.lock")
    assert waited.holder["Owner"]["run_id"] == "scheduled__2026-11-29"
    assert ledger.lock_wait("example_etl", "dev") is None
    assert [e.action for e in ledger.audit_events() if e.action.startswith("deploy_lock")] == [
        "deploy_lock.waiting",
        "deploy_lock.wait_ended",
    ]


def test_a_waiting_deploy_that_ends_otherwise_waits_no_more(
    released: tuple[BundleSource, int, ArtifactStore], ledger: Ledger, tmp_path: Path
) -> None:
    api = WorkspaceHook("databricks_dev")
    DeployLock(api, DEV_STATE, owner=LockOwner("scheduled__2026-11-29", "dev.deploy", "dev"))._acquire(
        "deployer@example.com"
    )
    with pytest.raises(LockHeld):
        deploy(released, ledger, tmp_path, owner=OWNER)
    ledger.hold_environment("example_etl", "dev", reason="rolled back", actor="system")

    with pytest.raises(EnvironmentHeld):
        deploy(released, ledger, tmp_path, owner=OWNER)

    assert ledger.lock_wait("example_etl", "dev") is None
