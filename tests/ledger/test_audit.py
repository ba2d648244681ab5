"""The audit trail: every ledger write appends a hash-chained event; tampering is found; evidence packs."""

from __future__ import annotations

import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bundle_promotion.cli import main
from bundle_promotion.errors import BundlePromotionError, IdentityRefused
from bundle_promotion.ledger import GENESIS_HASH, Ledger
from bundle_promotion.ledger.evidence import chain_head, evidence_pack, export, to_markdown, verify
from bundle_promotion.ledger.records import Approval, Artifact, Release
from bundle_promotion.release.store import ArtifactStore

BUNDLE = "example_etl"


def release(version: str = "v1.0.0", commit: str = "a" * 40) -> Release:
    wheel = f"example_etl-{version.lstrip('v')}-py3-none-any.whl"
    return Release(
        bundle=BUNDLE,
        version=version,
        commit=commit,
        artifacts=(Artifact(wheel, f"dist/{wheel}", "b" * 64),),
        config_digest="d" * 64,
    )


def approval(digest: str, approver: str, environment: str = "prod", **fields: object) -> Approval:
    values: dict[str, object] = {
        "bundle": BUNDLE,
        "environment": environment,
        "release_digest": digest,
        "approver": approver,
        "approver_name": approver.title(),
        "decision": "approve",
        "reason": f"{approver} checked the validation report",
        "given_at": datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        "signature": "part11",
        "meaning": "approval",
    } | fields
    return Approval(**values)  # type: ignore[arg-type]


def promote(ledger: Ledger, version: str = "v1.0.0", environment: str = "prod", run_id: str = "run_1") -> int:
    release_id = ledger.record_release(release(version))
    deployment = ledger.start_deployment(
        bundle=BUNDLE, environment=environment, target=environment, release_id=release_id, run_id=run_id
    )
    ledger.finish_deployment(deployment, "succeeded")
    return release_id


def sql(database: Path, statement: str, *parameters: object) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(statement, parameters)


def test_each_write_appends_an_event_linked_to_the_one_before(ledger: Ledger) -> None:
    promote(ledger)

    events = ledger.audit_events()

    assert [e.action for e in events] == ["release.recorded", "deployment.started", "deployment.succeeded"]
    assert [e.prev_hash for e in events] == [GENESIS_HASH, events[0].hash, events[1].hash]
    assert verify(ledger).intact


def test_a_retried_write_that_changes_nothing_appends_no_event(ledger: Ledger) -> None:
    promote(ledger)
    before = len(ledger.audit_events())

    ledger.record_release(release())
    ledger.finish_deployment(ledger.deployments(BUNDLE)[0].id, "succeeded")

    assert len(ledger.audit_events()) == before


def test_a_write_that_fails_leaves_no_event(ledger: Ledger) -> None:
    with pytest.raises(BundlePromotionError):
        ledger.finish_deployment(404, "failed")
    with pytest.raises(BundlePromotionError):
        ledger.clear_hold(BUNDLE, "prod", reason=" ", actor="alice")

    assert ledger.audit_events() == []


def test_concurrent_writers_extend_one_chain_without_forking(database: Path, ledger: Ledger) -> None:
    start_together = threading.Barrier(6)

    def write(index: int) -> None:
        own = Ledger(f"sqlite:///{database}")
        start_together.wait()
        for n in range(5):
            own.record_event(
                actor=f"writer-{index}", action="test.event", subject=f"{BUNDLE}/dev", details={"n": n}
            )

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(6)))

    events = ledger.audit_events()
    assert [e.seq for e in events] == list(range(1, 31))
    assert verify(ledger).intact


def test_editing_one_row_is_found_and_named(database: Path, ledger: Ledger) -> None:
    promote(ledger)
    sql(database, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")

    report = verify(ledger)

    assert (report.intact, report.broken_seq) == (False, 2)
    assert "deployment.started" in str(report)


def test_rewriting_a_row_with_a_fresh_hash_breaks_the_next_link(database: Path, ledger: Ledger) -> None:
    promote(ledger)
    forged = ledger.audit_events()[0]
    forged_hash = type(forged)(**{**forged.__dict__, "actor": "mallory"}).expected_hash()
    sql(database, "UPDATE audit_events SET actor = 'mallory', hash = ? WHERE seq = 1", forged_hash)

    assert verify(ledger).broken_seq == 2


def test_deleting_a_row_is_found_at_the_gap(database: Path, ledger: Ledger) -> None:
    promote(ledger)
    sql(database, "DELETE FROM audit_events WHERE seq = 2")

    report = verify(ledger)

    assert report.broken_seq == 3
    assert "deleted" in str(report)


def test_holds_are_set_once_and_cleared_with_a_reason_into_the_trail(ledger: Ledger) -> None:
    first = ledger.hold_environment(
        BUNDLE, "prod", reason="rolled back", actor="bundle-promotion", run_id="r1"
    )
    again = ledger.hold_environment(BUNDLE, "prod", reason="second", actor="bundle-promotion", run_id="r2")
    cleared = ledger.clear_hold(BUNDLE, "prod", reason="fixed forward in v1.0.2", actor="alice")

    assert again == first
    assert cleared == first
    assert ledger.environment_hold(BUNDLE, "prod") is None
    events = ledger.audit_events()
    assert [(e.action, e.actor, e.reason) for e in events] == [
        ("hold.set", "bundle-promotion", "rolled back"),
        ("hold.cleared", "alice", "fixed forward in v1.0.2"),
    ]


def test_a_hold_is_cleared_under_the_clearers_one_identity(ledger: Ledger) -> None:
    ledger.hold_environment(BUNDLE, "prod", reason="rolled back", actor="bundle-promotion", run_id="r1")

    with pytest.raises(IdentityRefused, match="mixes scripts"):
        ledger.clear_hold(BUNDLE, "prod", reason="fixed", actor="\u0430lice")
    ledger.clear_hold(BUNDLE, "prod", reason="fixed", actor="Alice")

    assert [(e.action, e.actor) for e in ledger.audit_events()][-1] == ("hold.cleared", "alice")


def test_the_evidence_pack_lists_every_approval_of_the_release_with_its_manifest(ledger: Ledger) -> None:
    promote(ledger, "v1.0.0")
    digest = release("v1.0.0").digest
    ledger.record_approval(approval(digest, "alice", environment="staging", meaning="review"))
    ledger.record_approval(approval(digest, "bob"))
    ledger.record_approval(approval(release("v0.9.0").digest, "carol"))

    pack = evidence_pack(ledger, BUNDLE, "v1.0.0", environments=["staging", "prod"])

    assert [(a["signed_by"], a["environment"], a["meaning"]) for a in pack["approvals"]] == [
        ("alice", "staging", "review"),
        ("bob", "prod", "approval"),
    ]
    assert {a["release_digest"] for a in pack["approvals"]} == {digest}
    assert pack["approvals"][1]["signed_at"] == "2026-11-02T09:30:00+00:00"
    assert pack["approvals"][1]["printed_name"] == "Bob"


def test_the_evidence_pack_has_the_deploy_history_of_each_environment(ledger: Ledger) -> None:
    promote(ledger, "v1.0.0", run_id="run_1")
    promote(ledger, "v1.1.0", run_id="run_2")

    pack = evidence_pack(ledger, BUNDLE, "v1.0.0", environments=["prod"])

    assert [(d["version"], d["this_release"]) for d in pack["deployments"]["prod"]] == [
        ("v1.1.0", False),
        ("v1.0.0", True),
    ]
    assert pack["release"]["digest"] == release("v1.0.0").digest
    assert [e["action"] for e in pack["audit_events"]] == [
        "release.recorded",
        "deployment.started",
        "deployment.succeeded",
    ]


def test_the_markdown_shows_each_signature_with_who_when_meaning_and_digest(ledger: Ledger) -> None:
    promote(ledger)
    digest = release().digest
    ledger.record_approval(approval(digest, "bob"))

    markdown = to_markdown(evidence_pack(ledger, BUNDLE, "v1.0.0", notes="Adds the churn model."))

    row = next(line for line in markdown.splitlines() if "Bob (bob)" in line)
    assert "2026-11-02T09:30:00+00:00" in row
    assert "| approval |" in row
    assert digest in row
    assert "Adds the churn model." in markdown


def test_export_writes_the_pack_as_json_and_markdown(ledger: Ledger, tmp_path: Path) -> None:
    promote(ledger)
    pack = evidence_pack(ledger, BUNDLE, "v1.0.0")

    json_path, markdown_path = export(pack, tmp_path / "out")

    assert json.loads(json_path.read_text())["release"]["version"] == "v1.0.0"
    assert markdown_path.read_text().startswith(f"# Evidence pack: {BUNDLE} v1.0.0")


def test_audit_verify_on_the_command_line_names_the_broken_event(
    database: Path, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    promote(ledger)
    url = f"sqlite:///{database}"
    assert main(["audit", "verify", "--ledger", url]) == 0

    sql(database, "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 3")

    assert main(["audit", "verify", "--ledger", url]) == 1
    assert "[chain] event 3: its content does not match its hash" in capsys.readouterr().err


def test_audit_verify_on_the_command_line_checks_the_mac_and_the_witnessed_head(
    database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUNDLE_PROMOTION_AUDIT_KEY", json.dumps({"conn_type": "generic", "password": "k3y"})
    )
    keyed = Ledger(f"sqlite:///{database}", audit_key=b"k3y")
    keyed.migrate()
    promote(keyed)
    store = ArtifactStore(tmp_path / "store")
    store.witness_audit_head(chain_head(keyed) or {})
    command = ["audit", "verify", "--ledger", f"sqlite:///{database}", "--store", str(tmp_path / "store")]
    assert main(command) == 0
    assert "(anchors: chain, records, mac, witness)" in capsys.readouterr().out

    sql(database, "DELETE FROM audit_events WHERE seq = 3")

    assert main(command) == 1
    assert "- [witness] event 3, witnessed as a chain head, is gone" in capsys.readouterr().err


def test_audit_export_on_the_command_line_writes_both_files(
    database: Path, ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    promote(ledger)
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "etl.yaml").write_text(
        f"bundle: {BUNDLE}\nsource: {{repo: https://github.com/acme/etl.git}}\nenvironments:\n"
        "  - {name: prod, target: prod, databricks_conn_id: databricks_prod, schedules: paused}\n"
    )

    code = main(
        [
            "audit",
            "export",
            "--release",
            "v1.0.0",
            "--specs",
            str(specs),
            "--out",
            str(tmp_path / "out"),
            "--ledger",
            f"sqlite:///{database}",
        ]
    )

    assert code == 0
    written = capsys.readouterr().out.split()
    assert [Path(path).name for path in written] == [
        f"evidence-{BUNDLE}-v1.0.0.json",
        f"evidence-{BUNDLE}-v1.0.0.md",
    ]


def test_hold_break_glass_on_the_command_line_records_who_why_and_that_it_was_break_glass(
    database: Path, ledger: Ledger
) -> None:
    ledger.hold_environment(BUNDLE, "prod", reason="rolled back", actor="bundle-promotion")

    code = main(
        [
            "hold",
            "break-glass",
            BUNDLE,
            "prod",
            "--reason",
            "root cause fixed",
            "--actor",
            "alice",
            "--ledger",
            f"sqlite:///{database}",
        ]
    )

    assert code == 0
    assert ledger.environment_hold(BUNDLE, "prod") is None
    last = ledger.audit_events()[-1]
    assert (last.action, last.actor, last.reason) == ("hold.broken_glass", "alice", "root cause fixed")


def test_signature_break_glass_lifts_a_lockout_in_the_ledger_recorded_as_break_glass(
    database: Path, ledger: Ledger
) -> None:
    ledger.record_event(actor="alice", action="signature.locked_out", subject="alice", reason="3 failures")
    assert ledger.signature_locked_out("alice")

    ledger_url = f"sqlite:///{database}"
    code = main(
        [
            "signature",
            "break-glass",
            "Alice",
            "--reason",
            "checked in person",
            "--actor",
            "admin",
            "--ledger",
            ledger_url,
        ]
    )

    assert code == 0
    assert not ledger.signature_locked_out("alice")
    last = ledger.audit_events()[-1]
    assert (last.action, last.actor, last.subject, last.reason, last.details) == (
        "signature.lockout_lifted",
        "admin",
        "alice",
        "checked in person",
        {"break_glass": True},
    )


def test_the_evidence_pack_says_what_each_environment_runs_after_a_rollback(ledger: Ledger) -> None:
    good_release = promote(ledger, "v1.0.0", run_id="run_1")
    bad_release = ledger.record_release(release("v1.1.0"))
    bad = ledger.start_deployment(
        bundle=BUNDLE, environment="prod", target="prod", release_id=bad_release, run_id="run_2"
    )
    ledger.mark_applied(bad)
    ledger.finish_deployment(bad, "failed", detail="tests failed")
    redeploy = ledger.start_deployment(
        bundle=BUNDLE,
        environment="prod",
        target="prod",
        release_id=good_release,
        run_id="run_2",
    )
    ledger.mark_applied(redeploy)
    ledger.finish_rollback(redeploy, detail="rollback redeploy")

    pack = evidence_pack(ledger, BUNDLE, "v1.1.0", environments=["prod"])

    assert pack["runs_now"]["prod"]["version"] == "v1.0.0"
    assert pack["runs_now"]["prod"]["this_release"] is False
    assert [(d["version"], d["state"]) for d in pack["deployments"]["prod"]][:2] == [
        ("v1.0.0", "succeeded"),
        ("v1.1.0", "superseded"),
    ]
    assert "| prod | v1.0.0 | succeeded |" in to_markdown(pack)
