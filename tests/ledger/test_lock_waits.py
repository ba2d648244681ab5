"""A deploy waiting on another deployment's lock is on record, with the lock and its holder, until it ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.evidence import verify

LOCK = "/Workspace/Shared/.bundle/sales/prod/state/deploy.lock"
TAKEN = datetime.now(UTC) - timedelta(hours=3)
HOLDER: dict[str, Any] = {
    "ID": "9d4c",
    "User": "deployer@example.com",
    "AcquisitionTime": TAKEN.isoformat(),
    "IsForced": False,
    "Owner": {"run_id": "scheduled__1", "task_id": "prod.deploy", "environment": "prod", "host": "w1"},
}


def wait(ledger: Ledger, run_id: str = "manual__2", holder: dict[str, Any] = HOLDER) -> None:
    ledger.wait_for_lock("sales", "prod", run_id=run_id, lock_path=LOCK, holder=holder)


def actions(ledger: Ledger) -> list[str]:
    return [event.action for event in ledger.audit_events()]


def test_a_wait_records_the_lock_its_holder_and_since_when(ledger: Ledger) -> None:
    wait(ledger)

    found = ledger.lock_wait("sales", "prod")

    assert found is not None
    assert (found.run_id, found.lock_path, found.holder, found.lock_id) == ("manual__2", LOCK, HOLDER, "9d4c")
    assert found.held_since == TAKEN
    assert ledger.lock_wait("sales", "dev") is None
    assert actions(ledger) == ["deploy_lock.waiting"]


def test_finding_the_same_lock_again_records_nothing_new(ledger: Ledger) -> None:
    wait(ledger)
    wait(ledger)

    assert actions(ledger) == ["deploy_lock.waiting"]


def test_a_lock_that_changed_hands_replaces_the_wait(ledger: Ledger) -> None:
    wait(ledger)
    wait(ledger, holder={**HOLDER, "ID": "77aa", "User": "cli@example.com"})

    found = ledger.lock_wait("sales", "prod")

    assert found is not None
    assert found.holder["User"] == "cli@example.com"
    assert actions(ledger) == ["deploy_lock.waiting", "deploy_lock.wait_ended", "deploy_lock.waiting"]


def test_the_wait_ends_for_its_own_run_only(ledger: Ledger) -> None:
    wait(ledger)

    ledger.end_lock_wait("sales", "prod", run_id="manual__other")
    still = ledger.lock_wait("sales", "prod")
    ledger.end_lock_wait("sales", "prod", run_id="manual__2")

    assert still is not None
    assert ledger.lock_wait("sales", "prod") is None
    assert actions(ledger) == ["deploy_lock.waiting", "deploy_lock.wait_ended"]


def test_a_broken_lock_is_audited_with_actor_holder_age_and_reason(ledger: Ledger) -> None:
    wait(ledger)
    waited = ledger.lock_wait("sales", "prod")
    assert waited is not None

    held_before = (datetime.now(UTC) - TAKEN).total_seconds()
    ledger.record_lock_broken(waited, actor="Alice", reason="the worker of scheduled__1 is gone")
    held_after = (datetime.now(UTC) - TAKEN).total_seconds()

    [event] = [e for e in ledger.audit_events() if e.action == "deploy_lock.broken"]
    assert (event.actor, event.subject, event.reason) == (
        "alice",
        "sales/prod",
        "the worker of scheduled__1 is gone",
    )
    assert event.details["holder"] == HOLDER
    assert round(held_before) <= event.details["held_for_seconds"] <= round(held_after)
    assert ledger.lock_wait("sales", "prod") is None
    assert verify(ledger).intact, str(verify(ledger))


def test_the_board_shows_the_wait_in_its_cell(ledger: Ledger) -> None:
    wait(ledger)

    prod, dev = ledger.board([("sales", "prod"), ("sales", "dev")])

    assert prod.lock_wait is not None
    assert prod.lock_wait.holder == HOLDER
    assert dev.lock_wait is None
