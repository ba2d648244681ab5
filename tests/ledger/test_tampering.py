"""Tampering with the ledger behind its back, and the anchor of ``audit verify`` that catches each.

The attacker here can write the ledger database but holds neither the MAC key nor the
artifact store's witness (issue 11, section 4: the 15 reproduced tamperings, and more).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger import GENESIS_HASH, Ledger, audit_hash
from bundle_promotion.ledger.evidence import Anchor, chain_head, evidence_pack, verify
from bundle_promotion.ledger.records import (
    GateEvaluation,
    GateResult,
    ScheduleSnapshot,
    SignatureAttempt,
    TriggerState,
)
from tests.ledger.test_audit import BUNDLE, approval, promote, release

KEY = b"audit-key-kept-in-an-airflow-connection"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(database: Path) -> Ledger:
    """16 events: promotions, approvals, refused and accepted signatures, a hold set and cleared."""
    ledger = Ledger(f"sqlite:///{database}", audit_key=KEY)
    ledger.migrate()
    promote(ledger, "v0.9.0", run_id="run_0")
    promote(ledger, "v1.0.0", environment="staging")
    digest = release("v1.0.0").digest
    for signer in ("alice", "bob"):
        ledger.record_signature_attempt(attempt(digest, signer, succeeded=False))
        ledger.record_signature_attempt(attempt(digest, signer, succeeded=True))
        ledger.record_approval(approval(digest, signer))
    ledger.hold_environment(BUNDLE, "prod", reason="rolled back", actor="bundle-promotion", run_id="r9")
    ledger.clear_hold(BUNDLE, "prod", reason="fixed", actor="carol")
    promote(ledger, "v1.0.0", run_id="run_2")
    return ledger


@pytest.fixture
def witnessed(ledger: Ledger) -> list[dict[str, Any]]:
    head = chain_head(ledger)
    assert head is not None
    return [head]


def attempt(digest: str, signer: str, *, succeeded: bool) -> SignatureAttempt:
    return SignatureAttempt(
        bundle=BUNDLE,
        environment="prod",
        release_digest=digest,
        signer=signer,
        succeeded=succeeded,
        detail="approve as approval" if succeeded else "wrong password",
        attempted_at=datetime.now(UTC),
    )


def sql(database: Path, *statements: str) -> None:
    with sqlite3.connect(database) as connection:
        for statement in statements:
            connection.execute(statement)


def rehash(database: Path) -> None:
    """What an attacker without the key does after an edit: recompute every hash and link."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT seq, occurred_at, actor, action, subject, reason, details FROM audit_events ORDER BY seq"
        ).fetchall()
        connection.execute("UPDATE audit_events SET prev_hash = 'old-' || seq, hash = 'old#' || seq")
        previous = GENESIS_HASH
        for number, (_, occurred_at, actor, action, subject, reason, details) in enumerate(rows, start=1):
            moment = datetime.fromisoformat(occurred_at).replace(tzinfo=UTC)
            fresh = audit_hash(
                seq=number,
                occurred_at=moment,
                actor=actor,
                action=action,
                subject=subject,
                reason=reason,
                details_json=details,
                prev_hash=previous,
            )
            connection.execute(
                "UPDATE audit_events SET seq = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (-number, previous, fresh, rows[number - 1][0]),
            )
            previous = fresh
        connection.execute("UPDATE audit_events SET seq = -seq")


def last_seq(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT max(seq) FROM audit_events").fetchone()[0])


Tampering = Callable[[Path], None]
TAMPERINGS: dict[str, tuple[Tampering, set[Anchor]]] = {
    "edit an event's reason": (
        lambda db: sql(db, "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3"),
        {"chain", "mac"},
    ),
    "delete an event in the middle": (
        lambda db: sql(db, "DELETE FROM audit_events WHERE seq = 5"),
        {"chain"},
    ),
    "delete the last event": (
        lambda db: sql(db, f"DELETE FROM audit_events WHERE seq = {last_seq(db)}"),
        {"witness", "records"},
    ),
    "delete the last 6 events": (
        lambda db: sql(db, f"DELETE FROM audit_events WHERE seq > {last_seq(db) - 6}"),
        {"witness", "records"},
    ),
    "delete every event": (lambda db: sql(db, "DELETE FROM audit_events"), {"witness", "records"}),
    "re-hash the whole chain after an edit": (
        lambda db: (sql(db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 8"), rehash(db)),
        {"mac", "witness"},
    ),
    "re-hash the whole chain after an edit and a delete": (
        lambda db: (
            sql(db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 8"),
            sql(db, "DELETE FROM audit_events WHERE seq = 4"),  # it recorded release v1.0.0
            rehash(db),
        ),
        {"mac", "witness", "records"},
    ),
    "strip every MAC": (lambda db: sql(db, "UPDATE audit_events SET mac = NULL"), {"mac"}),
    "delete an approval row": (
        lambda db: sql(db, "DELETE FROM approvals WHERE approver = 'bob'"),
        {"records"},
    ),
    "change an approval row": (
        lambda db: sql(db, "UPDATE approvals SET approver = 'mallory' WHERE approver = 'bob'"),
        {"records"},
    ),
    "forge an approval row": (
        lambda db: sql(
            db,
            "INSERT INTO approvals (bundle, environment, release_digest, approver, approver_name, decision, "
            "reason, given_at, groups, overrides_freeze, signature, meaning, source) SELECT bundle, "
            "environment, release_digest, 'mallory', 'Mallory', decision, reason, given_at, groups, "
            "overrides_freeze, signature, meaning, source FROM approvals LIMIT 1",
        ),
        {"records"},
    ),
    "delete the refused signature attempts": (
        lambda db: sql(db, "DELETE FROM signature_attempts WHERE succeeded = 0"),
        {"records"},
    ),
    "turn a refused signature into an accepted one": (
        lambda db: sql(db, "UPDATE signature_attempts SET succeeded = 1"),
        {"records"},
    ),
    "mark a deployment succeeded that failed": (
        lambda db: sql(db, "UPDATE deployments SET state = 'failed', detail = 'tests failed' WHERE id = 1"),
        {"records"},
    ),
    "delete a deployment": (
        lambda db: sql(db, "PRAGMA foreign_keys = OFF", "DELETE FROM deployments WHERE id = 2"),
        {"records"},
    ),
    "put back a cleared hold": (
        lambda db: sql(
            db,
            "INSERT INTO environment_holds (id, bundle, environment, reason, held_by, held_at, run_id) "
            f"VALUES (1, '{BUNDLE}', 'prod', 'rolled back', 'bundle-promotion', '2026-11-02 10:00:00', 'r9')",
        ),
        {"records"},
    ),
    "replace an event's MAC": (
        lambda db: sql(db, f"UPDATE audit_events SET mac = '{'0' * 64}' WHERE seq = 2"),
        {"mac"},
    ),
}


def test_the_untouched_ledger_verifies_against_every_anchor(
    ledger: Ledger, witnessed: list[dict[str, Any]]
) -> None:
    report = verify(ledger, audit_key=KEY, witnessed=witnessed)

    assert report.intact, str(report)
    assert report.events == 16
    assert report.checked == ("chain", "records", "mac", "witness")


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=list(TAMPERINGS))
def test_every_tampering_is_caught_and_by_which_anchor(
    ledger: Ledger, witnessed: list[dict[str, Any]], database: Path, tamper: str
) -> None:
    change, anchors = TAMPERINGS[tamper]

    change(database)

    report = verify(ledger, audit_key=KEY, witnessed=witnessed)
    assert not report.intact
    assert report.caught_by() == anchors, str(report)


def test_the_report_says_which_anchor_caught_what(
    ledger: Ledger, witnessed: list[dict[str, Any]], database: Path
) -> None:
    sql(database, f"DELETE FROM audit_events WHERE seq > {last_seq(database) - 1}")

    report = str(verify(ledger, audit_key=KEY, witnessed=witnessed))

    assert "- [witness] event 16, witnessed as a chain head, is gone: the trail has 15 events" in report
    assert "- [records] deployments row 3 was changed after event 15 wrote it" in report


def test_no_evidence_pack_is_built_from_a_ledger_holding_a_forged_approval(
    ledger: Ledger, database: Path
) -> None:
    forge_an_approval = TAMPERINGS["forge an approval row"][0]
    forge_an_approval(database)

    with pytest.raises(
        ReleaseError, match=r"no evidence pack for v1\.0\.0 of example_etl: the ledger does not verify"
    ):
        evidence_pack(ledger, BUNDLE, "v1.0.0")


def test_rows_from_before_record_binding_verify_but_later_unbound_ones_do_not(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    ledger = Ledger(f"sqlite:///{database}")
    ledger.migrate()
    ledger.record_approval(approval(release("v1.0.0").digest, "alice"))
    approval_columns = (
        "bundle, environment, release_digest, approver, approver_name, decision, reason, given_at, groups, "
        "overrides_freeze, signature, meaning, source"
    )
    forge = f"INSERT INTO approvals ({approval_columns}) SELECT {approval_columns} FROM approvals LIMIT 1"
    # The ledger as schema version 6 left it: no MACs, rows bound by no event.
    sql(
        database,
        "DELETE FROM audit_events",
        "ALTER TABLE audit_events DROP COLUMN mac",
        "DELETE FROM schema_version WHERE version >= 7",
    )

    ledger.migrate()

    assert verify(ledger).intact, str(verify(ledger))
    sql(database, forge)
    assert verify(ledger).caught_by() == {"records"}


def record_gates(ledger: Ledger, *results: GateResult, release_id: int = 2) -> None:
    ledger.record_gate_evaluation(
        GateEvaluation(
            bundle=BUNDLE,
            environment="prod",
            release_id=release_id,
            release_digest=release("v1.0.0").digest,
            version="v1.0.0",
            run_id="run_2",
            triggered_by="carol",
            commit_authors=("dave",),
            evaluated_at=datetime.now(UTC),
            results=results,
        )
    )


@pytest.fixture
def gated(ledger: Ledger) -> Ledger:
    """The ledger above, plus prod's gates waiting then failing, and the schedules found before a deploy."""
    record_gates(ledger, GateResult.waiting("approvals", "waiting: 0 of 2 QC approvals"))
    record_gates(ledger, GateResult.failed("approvals", "rejected by bob: the validation report is stale"))
    found = ScheduleSnapshot((TriggerState("11", "nightly", "schedule", "UNPAUSED"),))
    ledger.record_schedule_snapshot(3, found)
    return ledger


GATE_COLUMNS = (
    "bundle, environment, release_id, run_id, triggered_by, commit_authors, evaluated_at, status, results"
)
RECORD_TAMPERINGS: dict[str, Tampering] = {
    "turn a failed gate outcome into a passed one": lambda db: sql(
        db,
        "UPDATE gate_evaluations SET status = 'passed', "
        "results = replace(replace(results, '\"failed\"', '\"passed\"'), 'rejected by bob', 'approved')",
    ),
    "delete the failed gate outcome": lambda db: sql(
        db, "DELETE FROM gate_evaluations WHERE status = 'failed'"
    ),
    "forge a passed gate outcome": lambda db: sql(
        db,
        f"INSERT INTO gate_evaluations ({GATE_COLUMNS}) SELECT bundle, environment, release_id, run_id, "
        "triggered_by, commit_authors, evaluated_at, 'passed', '[]' FROM gate_evaluations LIMIT 1",
    ),
    "point a release at another commit": lambda db: sql(db, f"UPDATE releases SET commit_sha = '{'c' * 40}'"),
    "swap an artifact's hash": lambda db: sql(db, f"UPDATE release_artifacts SET sha256 = '{'e' * 64}'"),
    "forge a release": lambda db: sql(
        db,
        "INSERT INTO releases (bundle, version, commit_sha, config_digest, digest, recorded_at) "
        f"SELECT bundle, 'v9.9.9', commit_sha, config_digest, '{'f' * 64}', recorded_at "
        "FROM releases LIMIT 1",
    ),
    "unpause a job in a schedule snapshot": lambda db: sql(
        db, "UPDATE schedule_snapshots SET triggers = replace(triggers, 'UNPAUSED', 'PAUSED')"
    ),
    "delete a schedule snapshot": lambda db: sql(db, "DELETE FROM schedule_snapshots"),
}


@pytest.mark.parametrize("tamper", RECORD_TAMPERINGS, ids=list(RECORD_TAMPERINGS))
def test_gate_outcomes_releases_and_schedule_snapshots_are_bound_to_the_chain(
    gated: Ledger, database: Path, tamper: str
) -> None:
    witnessed = [chain_head(gated)]
    assert verify(gated, audit_key=KEY, witnessed=witnessed).intact

    RECORD_TAMPERINGS[tamper](database)

    report = verify(gated, audit_key=KEY, witnessed=witnessed)
    assert report.caught_by() == {"records"}, str(report)


def test_the_report_names_the_gate_outcome_row_that_was_changed(gated: Ledger, database: Path) -> None:
    RECORD_TAMPERINGS["turn a failed gate outcome into a passed one"](database)

    report = str(verify(gated))

    assert "- [records] gate_evaluations row 1 was changed after event 17 wrote it" in report
    assert "- [records] gate_evaluations row 2 was changed after event 18 wrote it" in report


def test_rows_of_every_bound_table_from_before_binding_verify_but_later_unbound_ones_do_not(
    tmp_path: Path,
) -> None:
    database = tmp_path / "old.db"
    ledger = Ledger(f"sqlite:///{database}")
    ledger.migrate()
    release_id = promote(ledger, "v1.0.0")
    ledger.record_approval(approval(release("v1.0.0").digest, "alice"))
    record_gates(ledger, GateResult.waiting("soak", "soaking"), release_id=release_id)
    # The ledger as schema version 6 left it: no MACs, rows bound by no event.
    sql(
        database,
        "DELETE FROM audit_events",
        "ALTER TABLE audit_events DROP COLUMN mac",
        "DELETE FROM schema_version WHERE version >= 7",
    )

    ledger.migrate()

    assert verify(ledger).intact, str(verify(ledger))
    forge = f"INSERT INTO gate_evaluations ({GATE_COLUMNS}) SELECT {GATE_COLUMNS} FROM gate_evaluations"
    sql(database, forge)
    assert verify(ledger).caught_by() == {"records"}
