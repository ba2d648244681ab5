"""Breaking a stale deploy lock from the board: who may, exactly which lock, and the deploy that proceeds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.errors import LockHeld
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.lifecycle.promotion import BundleSource, cut_release, deploy_release
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.triggers.lock import DeployLockTrigger
from bundle_promotion.workspace import files as workspace_files
from tests.web.test_approvals_api import token
from tests.web.test_board_api import board_of, cell

pytestmark = pytest.mark.usefixtures("airflow_db")

STATE = "/Workspace/Shared/.bundle/example_etl/prod/state"
LOCK = f"{STATE}/deploy.lock"
BREAK = "/bundle-promotion/board/bundles/sales/environments/prod/lock/break"
DEAD_RUN = LockOwner("scheduled__2026-11-29", "prod.deploy", "prod")
WAITING_RUN = LockOwner("manual__2026-11-30", "prod.deploy", "prod")


def take_lock(owner: LockOwner = DEAD_RUN) -> dict[str, Any]:
    """The lock of ``owner`` in prod's workspace, as its file reads."""
    api = WorkspaceHook("databricks_prod")
    DeployLock(api, STATE, owner=owner)._acquire("deployer@example.com")
    holder = workspace_files.read_json(api, LOCK)
    assert isinstance(holder, dict)
    return holder


def waits_on(ledger: Ledger, holder: dict[str, Any]) -> None:
    ledger.wait_for_lock("sales", "prod", run_id=WAITING_RUN.run_id, lock_path=LOCK, holder=holder)


def test_the_cell_shows_who_holds_the_lock_since_when_and_who_may_break_it(
    client: Any, ledger: Ledger
) -> None:
    taken = datetime.now(UTC) - timedelta(hours=2)
    holder = {"ID": "9d4c", "User": "deployer@example.com", "AcquisitionTime": taken.isoformat()}
    waits_on(ledger, {**holder, "Owner": {**DEAD_RUN.__dict__, "host": "w1"}})

    alice = cell(board_of(client, "alice"), "prod")
    carol = cell(board_of(client, "carol"), "prod")

    assert alice["lock_wait"]["holder"] == (
        "deployer@example.com for run scheduled__2026-11-29, task prod.deploy (prod) on host w1"
    )
    assert datetime.fromisoformat(alice["lock_wait"]["held_since"]) == taken
    assert (alice["lock_wait"]["lock_id"], alice["lock_wait"]["run_id"]) == ("9d4c", WAITING_RUN.run_id)
    assert alice["actions"]["break_lock"] == {"allowed": True, "reason": None}
    assert carol["actions"]["break_lock"] == {
        "allowed": False,
        "reason": "only prod's hold_clearers may break its deploy lock (QC (alice, bob, dag_test))",
    }
    assert cell(board_of(client, "alice"), "dev")["actions"]["break_lock"] == {
        "allowed": False,
        "reason": "no deploy to dev waits on a lock",
    }


def test_a_viewer_may_not_break_a_lock(client: Any, ledger: Ledger, workspaces: WorkspaceEmulator) -> None:
    holder = take_lock()
    waits_on(ledger, holder)

    response = client.post(
        BREAK, json={"lock_id": holder["ID"], "reason": "stale"}, headers=token("vera", "viewer")
    )

    assert response.status_code == 403
    assert response.json()["detail"] == "your role may not change runs of promote__sales"
    assert workspace_files.read_json(WorkspaceHook("databricks_prod"), LOCK) == holder


def test_a_lock_that_changed_hands_since_is_not_broken(
    client: Any, ledger: Ledger, workspaces: WorkspaceEmulator
) -> None:
    waits_on(ledger, {"ID": "the-lock-the-board-showed", "User": "deployer@example.com"})
    newer = take_lock(LockOwner("scheduled__2026-11-30", "prod.deploy", "prod"))

    response = client.post(
        BREAK, json={"lock_id": "the-lock-the-board-showed", "reason": "stale"}, headers=token("alice")
    )

    assert response.status_code == 409
    assert "is now held by deployer@example.com for run scheduled__2026-11-30" in response.json()["detail"]
    assert workspace_files.read_json(WorkspaceHook("databricks_prod"), LOCK) == newer
    assert "deploy_lock.broken" not in [event.action for event in ledger.audit_events()]


def test_a_break_names_the_lock_it_means(client: Any, ledger: Ledger, workspaces: WorkspaceEmulator) -> None:
    holder = take_lock()
    waits_on(ledger, holder)

    response = client.post(BREAK, json={"lock_id": "another", "reason": "stale"}, headers=token("alice"))

    assert response.status_code == 409
    assert workspace_files.read_json(WorkspaceHook("databricks_prod"), LOCK) == holder


def test_a_name_that_could_pass_for_anothers_breaks_nothing(
    client: Any, ledger: Ledger, workspaces: WorkspaceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_VAL", workspaces.airflow_connection_uri("staging"))
    api = WorkspaceHook("databricks_val")
    DeployLock(api, STATE, owner=DEAD_RUN)._acquire("deployer@example.com")
    holder = workspace_files.read_json(api, LOCK)
    ledger.wait_for_lock("sales", "validation", run_id=WAITING_RUN.run_id, lock_path=LOCK, holder=holder)

    response = client.post(  # role op may break validation's locks; a Cyrillic a is no alice
        "/bundle-promotion/board/bundles/sales/environments/validation/lock/break",
        json={"lock_id": holder["ID"], "reason": "stale"},
        headers=token("\u0430lice"),
    )

    assert response.status_code == 403
    assert "mixes scripts" in response.json()["detail"]
    assert workspace_files.read_json(api, LOCK) == holder


@pytest.fixture
def released(
    workspaces: WorkspaceEmulator, bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> tuple[BundleSource, int, ArtifactStore]:
    source = BundleSource("sales", str(bundle_repo()))
    store = ArtifactStore(tmp_path / "store")  # type: ignore[arg-type]  # a Path is a storage path here
    release_id = cut_release(
        source,
        "v1.0.0",
        targets=["prod"],
        test_jobs=[],
        ledger=ledger,
        store=store,
        checkouts=tmp_path / "checkouts",
    )
    return source, release_id, store


def test_a_deploy_waiting_on_a_dead_runs_lock_proceeds_once_alice_breaks_it(
    client: Any,
    ledger: Ledger,
    workspaces: WorkspaceEmulator,
    released: tuple[BundleSource, int, ArtifactStore],
    tmp_path: Path,
) -> None:
    source, release_id, store = released
    api = WorkspaceHook("databricks_prod")

    def deploy() -> object:
        return deploy_release(
            source,
            release_id,
            environment="prod",
            target="prod",
            run_id=WAITING_RUN.run_id,
            api=api,
            ledger=ledger,
            store=store,
            checkouts=tmp_path / "checkouts",
            owner=WAITING_RUN,
        )

    holder = take_lock()
    with pytest.raises(LockHeld):
        deploy()
    waited = ledger.lock_wait("sales", "prod")
    assert waited is not None
    assert waited.holder == holder
    trigger = DeployLockTrigger(
        databricks_conn_id="databricks_prod",
        lock_path=waited.lock_path,
        deadline=datetime.now(UTC) + timedelta(minutes=1),
        polling_period_seconds=0.05,
    )

    def lock_reads() -> int:
        return sum(1 for request in workspaces.requests("prod") if request.query.get("path") == LOCK)

    async def break_while_the_deploy_waits() -> Any:
        seen = lock_reads()
        waiting = asyncio.ensure_future(anext(trigger.run()))
        while lock_reads() < seen + 1:  # the trigger found the lock held
            assert not waiting.done()
            await asyncio.sleep(0.01)
        response = await asyncio.to_thread(
            client.post,
            BREAK,
            json={"lock_id": holder["ID"], "reason": "its worker died"},
            headers=token("alice"),
        )
        assert response.status_code == 200, response.text
        return await asyncio.wait_for(waiting, timeout=30)

    event = asyncio.run(break_while_the_deploy_waits())
    deploy()

    assert event.payload == {"status": "free"}
    assert ledger.lock_wait("sales", "prod") is None
    [broken] = [e for e in ledger.audit_events() if e.action == "deploy_lock.broken"]
    assert (broken.actor, broken.reason, broken.details["holder"]) == ("alice", "its worker died", holder)
    assert broken.details["held_for_seconds"] >= 0
    assert workspace_files.read_json(api, LOCK) is None  # the deploy released its own lock


@contextmanager
def a_promotion_run(run_id: str, state: str) -> Iterator[None]:
    """A run of promote__sales in Airflow's database, in ``state``, removed afterwards."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    with create_session() as session:
        session.add(
            DagRun(
                dag_id="promote__sales",
                run_id=run_id,
                run_type=DagRunType.MANUAL,
                state=state,
                run_after=datetime.now(UTC),
            )
        )
    try:
        yield
    finally:
        with create_session() as session:
            session.query(DagRun).filter_by(dag_id="promote__sales", run_id=run_id).delete()


@pytest.mark.parametrize(("run_state", "shown"), [("running", True), ("failed", False), ("success", False)])
def test_a_wait_left_by_a_run_that_ended_is_not_shown(
    client: Any, ledger: Ledger, run_state: str, shown: bool
) -> None:
    """A worker killed while the deploy was deferred leaves its wait in the ledger; once Airflow
    ends the run, nothing waits on that lock and the board offers no break."""
    waits_on(ledger, {"ID": "9d4c", "User": "deployer@example.com", "Owner": DEAD_RUN.__dict__})

    with a_promotion_run(WAITING_RUN.run_id, run_state):
        prod = cell(board_of(client, "alice"), "prod")

    assert (prod["lock_wait"] is not None) is shown
    assert prod["actions"]["break_lock"]["allowed"] is shown
