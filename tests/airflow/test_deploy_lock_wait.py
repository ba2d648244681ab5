"""The deploy task waits for another run's lock in the triggerer, and says how to break it if it must."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.errors import LockHeld
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.operators import deploy as deploy_module
from bundle_promotion.operators.deploy import BundleDeployOperator
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.triggers.lock import DeployLockTrigger
from bundle_promotion.workspace import files as workspace_files

STATE = "/Workspace/Shared/.bundle/example_etl/dev/state"
LOCK = f"{STATE}/deploy.lock"
OTHER_RUN = LockOwner("scheduled__2026-11-29", "dev.deploy", "dev")


def operator() -> BundleDeployOperator:
    return BundleDeployOperator(
        task_id="deploy",
        bundle="example_etl",
        repo="/repo",
        environment="dev",
        target="dev",
        databricks_conn_id="databricks_dev",
        lock_timeout=timedelta(minutes=5),
        polling_period_seconds=0.05,
    )


class FakeTaskInstance:
    def xcom_pull(self, task_ids: str) -> int:
        return 1


def context() -> Any:
    return {"ti": FakeTaskInstance(), "run_id": "manual__2026-11-30", "dag_run": None}


def held_elsewhere(*_args: object, **_kwargs: object) -> object:
    holder = {"ID": "x", "User": "deployer@example.com", "AcquisitionTime": "2026-11-29T23:00:00+00:00"}
    raise LockHeld("deploy lock acquired by deployer@example.com", holder, LOCK)


def test_a_lock_held_by_another_run_defers_the_task_to_the_lock_trigger(
    workspaces: WorkspaceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bundle_promotion.lifecycle.promotion.deploy_release", held_elsewhere)
    monkeypatch.setattr(deploy_module.settings, "artifact_store", lambda: None)

    with pytest.raises(TaskDeferred) as deferred:
        operator().execute(context())

    trigger = deferred.value.trigger
    assert isinstance(trigger, DeployLockTrigger)
    assert trigger.lock_path == LOCK
    assert deferred.value.method_name == "resume_after_lock"
    assert trigger.deadline - datetime.now(UTC) <= timedelta(minutes=5)


def lock_reads(workspaces: WorkspaceEmulator) -> int:
    return sum(1 for request in workspaces.requests("dev") if request.query.get("path") == LOCK)


def test_the_lock_trigger_fires_once_the_lock_is_released(workspaces: WorkspaceEmulator) -> None:
    api = WorkspaceHook("databricks_dev")
    DeployLock(api, STATE, owner=OTHER_RUN)._acquire("deployer@example.com")
    reads_before = lock_reads(workspaces)
    trigger = DeployLockTrigger(
        databricks_conn_id="databricks_dev",
        lock_path=LOCK,
        deadline=datetime.now(UTC) + timedelta(minutes=1),
        polling_period_seconds=0.05,
    )

    async def release_once_seen_held() -> Any:
        waiting = asyncio.ensure_future(anext(trigger.run()))
        while lock_reads(workspaces) < reads_before + 2:  # it found the lock held and looked again
            assert not waiting.done()
            await asyncio.sleep(0.01)
        await asyncio.to_thread(workspace_files.delete, api, LOCK)
        return await asyncio.wait_for(waiting, timeout=30)

    event = asyncio.run(release_once_seen_held())

    assert event.payload == {"status": "free"}


def test_the_lock_trigger_gives_up_at_its_deadline_with_the_holder(workspaces: WorkspaceEmulator) -> None:
    DeployLock(WorkspaceHook("databricks_dev"), STATE, owner=OTHER_RUN)._acquire("deployer@example.com")
    trigger = DeployLockTrigger(
        databricks_conn_id="databricks_dev",
        lock_path=LOCK,
        deadline=datetime.now(UTC),
        polling_period_seconds=0.05,
    )

    event = asyncio.run(anext(trigger.run()))

    assert event.payload["status"] == "timeout"
    assert event.payload["holder"]["Owner"]["run_id"] == "scheduled__2026-11-29"


def test_a_lock_still_held_at_the_deadline_fails_the_task_without_retry_saying_how_to_break_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = {
        "ID": "x",
        "User": "deployer@example.com",
        "AcquisitionTime": "2026-11-29T23:00:00+00:00",
        "Owner": {
            "run_id": "scheduled__2026-11-29",
            "task_id": "dev.deploy",
            "environment": "dev",
            "host": "w1",
        },
    }
    event = {"status": "timeout", "holder": holder, "lock_path": LOCK}
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    ledger.wait_for_lock("example_etl", "dev", run_id=context()["run_id"], lock_path=LOCK, holder=holder)
    monkeypatch.setattr(deploy_module.settings, "ledger", lambda: ledger)

    with pytest.raises(AirflowFailException) as failed:
        operator().resume_after_lock(context(), event)

    message = str(failed.value)
    assert isinstance(failed.value.__cause__, LockHeld)
    assert "run scheduled__2026-11-29, task dev.deploy (dev) on host w1" in message
    assert "Still held after 0:05:00" in message
    assert "force_lock=True" in message
    assert "--force-lock" in message
    assert ledger.lock_wait("example_etl", "dev") is None  # the deploy waits no more


def test_the_lock_trigger_serializes_what_it_needs() -> None:
    deadline = datetime(2026, 11, 30, tzinfo=UTC)
    trigger = DeployLockTrigger(
        databricks_conn_id="c", lock_path=LOCK, deadline=deadline, polling_period_seconds=5
    )

    classpath, kwargs = trigger.serialize()

    assert classpath == "bundle_promotion.triggers.lock.DeployLockTrigger"
    assert DeployLockTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_lock_the_cli_engine_found_fails_naming_the_tasks_own_fix(
    workspaces: WorkspaceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def held_by_cli(*_args: object, **_kwargs: object) -> object:
        raise LockHeld("deploy lock acquired by deployer@example.com. Use --force-lock to override")

    monkeypatch.setattr("bundle_promotion.lifecycle.promotion.deploy_release", held_by_cli)
    monkeypatch.setattr(deploy_module.settings, "artifact_store", lambda: None)

    with pytest.raises(
        LockHeld, match=r"--force-lock to override\. From Airflow: .* force_lock=True on this task"
    ):
        operator().execute(context())
