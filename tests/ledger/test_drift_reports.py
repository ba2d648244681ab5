"""Hourly drift checks keep, per finding, the check that first found it and the newest: the ledger
grows with changes, not with the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import DriftFinding, DriftReport

START = datetime(2026, 11, 30, tzinfo=UTC)
PAUSED = DriftFinding("resources.jobs.etl", "schedule.pause_status", "UNPAUSED", "PAUSED")


def check(ledger: Ledger, hour: int, *findings: DriftFinding, environment: str = "prod") -> bool:
    report = DriftReport("sales", environment, START + timedelta(hours=hour), "v1.0.0", "d" * 64, findings)
    return ledger.record_drift_report(report, actor="drift__sales")


def kept(database: Path, environment: str = "prod") -> list[tuple[int, str]]:
    """The hour and status of every report kept for the environment, oldest first."""
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT checked_at, status FROM drift_reports WHERE environment = :env ORDER BY id"),
            {"env": environment},
        ).all()
    engine.dispose()
    return [
        (int((datetime.fromisoformat(str(at)).replace(tzinfo=UTC) - START) / timedelta(hours=1)), status)
        for at, status in rows
    ]


def test_a_finding_keeps_its_first_and_its_newest_check(ledger: Ledger, database: Path) -> None:
    changes = [check(ledger, hour) for hour in range(5)]
    changes += [check(ledger, hour, PAUSED) for hour in range(5, 8)]
    changes += [check(ledger, 8)]

    assert changes == [True, False, False, False, False, True, False, False, True]
    assert kept(database) == [(0, "in_sync"), (4, "in_sync"), (5, "drifted"), (7, "drifted"), (8, "in_sync")]
    latest = ledger.latest_drift_report("sales", "prod")
    assert latest is not None
    assert latest.checked_at == START + timedelta(hours=8)


def test_each_environment_keeps_its_own_reports(ledger: Ledger, database: Path) -> None:
    for hour in range(3):
        check(ledger, hour, environment="prod")
        check(ledger, hour, PAUSED, environment="dev")

    assert kept(database, "prod") == [(0, "in_sync"), (2, "in_sync")]
    assert kept(database, "dev") == [(0, "drifted"), (2, "drifted")]
