"""The board's read: each environment's current release, pending gates and hold, in a few queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text

from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Approval, GateEvaluation, GateResult
from tests.ledger.test_deployment_outcomes import applied, rolled_back
from tests.ledger.test_ledger import release


def wait_at(ledger: Ledger, environment: str, version: str, reason: str) -> str:
    """A run waits at the environment's approval gate with ``version``; returns its digest."""
    waiting = release(version=version)
    ledger.record_gate_evaluation(
        GateEvaluation(
            bundle=waiting.bundle,
            environment=environment,
            release_id=ledger.record_release(waiting),
            release_digest=waiting.digest,
            version=version,
            run_id=f"manual__{version}",
            triggered_by="dag_test",
            commit_authors=(),
            evaluated_at=datetime.now(UTC),
            results=(GateResult.waiting("approval", reason),),
        )
    )
    return waiting.digest


def approve(ledger: Ledger, environment: str, digest: str, approver: str) -> None:
    ledger.record_approval(
        Approval(
            bundle="example_etl",
            environment=environment,
            release_digest=digest,
            approver=approver,
            decision="approve",
            reason="looks right",
            given_at=datetime.now(UTC),
        )
    )


@contextmanager
def statements(ledger: Ledger) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the ledger sends in the block, with its parameters."""
    issued: list[tuple[str, Any]] = []

    def count(*args: Any) -> None:
        issued.append((str(args[2]), args[3]))

    engine = ledger._engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield issued
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_each_cell_shows_what_runs_there_now_not_what_a_rollback_undid(ledger: Ledger) -> None:
    rolled_back(ledger)  # dev: v1.1.0 ran, v1.2.0 failed and was superseded by v1.1.0 again
    [dev, prod] = ledger.board([("example_etl", "dev"), ("example_etl", "prod")])

    assert dev.current is not None
    assert (dev.current[0].version, dev.current[1].state, dev.current[1].run_id) == (
        "v1.1.0",
        "succeeded",
        "run_2",
    )
    assert prod.current is None


def test_a_waiting_release_comes_with_its_decisions_and_none_of_other_releases(ledger: Ledger) -> None:
    earlier = wait_at(ledger, "prod", "v1.0.0", "0 of 2 QC approvals")
    approve(ledger, "prod", earlier, "carol")
    digest = wait_at(ledger, "prod", "v1.1.0", "1 of 2 QC approvals (have: alice)")
    approve(ledger, "prod", digest, "alice")

    [prod] = ledger.board([("example_etl", "prod")])

    assert prod.latest_gates is not None
    assert (prod.latest_gates.version, prod.latest_gates.results[0].reason) == (
        "v1.1.0",
        "1 of 2 QC approvals (have: alice)",
    )
    assert [a.approver for a in prod.approvals] == ["alice"]


def test_a_held_environment_shows_its_hold(ledger: Ledger) -> None:
    ledger.hold_environment("example_etl", "prod", reason="rolled back", actor="system", run_id="run_2")

    [dev, prod] = ledger.board([("example_etl", "dev"), ("example_etl", "prod")])

    assert dev.hold is None
    assert prod.hold is not None
    assert (prod.hold.reason, prod.hold.run_id) == ("rolled back", "run_2")


def test_the_number_of_queries_does_not_grow_with_bundles_or_history(ledger: Ledger) -> None:
    for index in range(3):
        applied(ledger, f"v1.{index}.0", f"run_{index}")
    small = [("example_etl", "dev")]
    large = [
        *small,
        *((f"bundle_{index}", env) for index in range(150) for env in ("dev", "staging", "prod")),
    ]

    with statements(ledger) as for_one:
        ledger.board(small)
    with statements(ledger) as for_many:
        ledger.board(large)

    assert len(for_many) == len(for_one)


def test_the_current_deployment_is_found_through_its_index(ledger: Ledger, database: Path) -> None:
    applied(ledger, "v1.0.0", "run_1")
    with statements(ledger) as issued:
        ledger.board([("example_etl", "dev")])
    [(current_query, parameters)] = [
        (sql, values) for sql, values in issued if "applied_at IS NOT NULL" in sql
    ]
    with create_engine(f"sqlite:///{database}").connect() as connection:
        plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {current_query}", parameters).all()

    assert any("ix_deployments_current" in str(step) for step in plan), plan


def test_migrating_an_older_ledger_adds_the_board_indexes(ledger: Ledger, database: Path) -> None:
    from bundle_promotion.ledger.migrations import MIGRATIONS, _add_board_indexes

    board_version = MIGRATIONS.index(_add_board_indexes) + 1
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_deployments_current"))
        connection.execute(text("DELETE FROM schema_version WHERE version >= :v"), {"v": board_version})

    ledger.migrate()

    with engine.connect() as connection:
        names = (
            connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'").scalars().all()
        )
    assert "ix_deployments_current" in names
