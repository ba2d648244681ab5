"""The ledger records releases and deployments, idempotently, in a SQLite file shared by processes."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import TypeVar

import pytest

from bundle_promotion.errors import BundlePromotionError, ReleaseError
from bundle_promotion.ledger import MIGRATIONS, FinishedState, Ledger
from bundle_promotion.ledger.records import Artifact, Release

T = TypeVar("T")
WHEEL = "example_etl-1.0.0-py3-none-any.whl"


def release(version: str = "v1.0.0", commit: str = "a" * 40, wheel_sha256: str = "b" * 64) -> Release:
    return Release(
        bundle="example_etl",
        version=version,
        commit=commit,
        artifacts=(
            Artifact(WHEEL, f"dist/{WHEEL}", wheel_sha256),
            Artifact("helpers-0.1-py3-none-any.whl", "lib/dist/helpers-0.1-py3-none-any.whl", "c" * 64),
        ),
        config_digest="d" * 64,
    )


def all_at_once(count: int, work: Callable[[], T]) -> list[T]:
    """Run ``work`` in ``count`` threads released together, each with its own connections."""
    start_together = threading.Barrier(count)

    def run(_: int) -> T:
        start_together.wait()
        return work()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def schema_versions(database: Path) -> list[int]:
    with sqlite3.connect(database) as connection:
        return [version for (version,) in connection.execute("SELECT version FROM schema_version")]


def deploy(ledger: Ledger, release_id: int, run_id: str = "manual__1", environment: str = "dev") -> int:
    return ledger.start_deployment(
        bundle="example_etl",
        environment=environment,
        target=environment,
        release_id=release_id,
        run_id=run_id,
    )


def test_migrate_brings_a_new_database_to_the_latest_schema(ledger: Ledger, database: Path) -> None:
    assert schema_versions(database) == list(range(1, len(MIGRATIONS) + 1))


def test_migrating_twice_is_a_no_op(ledger: Ledger, database: Path) -> None:
    ledger.record_release(release())

    ledger.migrate()

    assert schema_versions(database) == list(range(1, len(MIGRATIONS) + 1))
    assert ledger.release_by_version("example_etl", "v1.0.0") is not None


def test_processes_migrating_at_once_all_succeed(database: Path) -> None:
    all_at_once(4, lambda: Ledger(f"sqlite:///{database}").migrate())

    assert schema_versions(database) == list(range(1, len(MIGRATIONS) + 1))


def test_an_up_to_date_ledger_migrates_while_another_process_holds_the_write_lock(
    ledger: Ledger, database: Path
) -> None:
    """Every task process migrates; with nothing to do, none of them may queue on the lock."""
    with sqlite3.connect(database, isolation_level=None) as writer:
        writer.execute("BEGIN IMMEDIATE")  # the lock a migration takes on SQLite
        try:
            Ledger(f"sqlite:///{database}").migrate()
        finally:
            writer.execute("ROLLBACK")

    assert schema_versions(database) == list(range(1, len(MIGRATIONS) + 1))


def test_migrate_refuses_a_schema_newer_than_this_code(ledger: Ledger, database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO schema_version VALUES (99, '2030-01-01 00:00:00')")

    with pytest.raises(BundlePromotionError, match=r"schema version 99.*upgrade bundle-promotion"):
        ledger.migrate()


def test_sqlite_ledgers_use_write_ahead_logging(ledger: Ledger, database: Path) -> None:
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_recorded_release_reads_back_with_its_artifacts_in_order(ledger: Ledger) -> None:
    release_id = ledger.record_release(release())

    assert ledger.release(release_id) == release()


def test_recording_a_release_again_returns_the_same_id(ledger: Ledger) -> None:
    assert ledger.record_release(release()) == ledger.record_release(release())


def test_releases_recorded_at_once_get_one_id(database: Path, ledger: Ledger) -> None:
    ids = all_at_once(4, lambda: Ledger(f"sqlite:///{database}").record_release(release()))

    assert len(set(ids)) == 1


def test_a_version_recorded_from_another_commit_is_refused(ledger: Ledger) -> None:
    ledger.record_release(release(commit="a" * 40))

    with pytest.raises(ReleaseError, match=f"recorded from commit {'a' * 40}.*tags are immutable"):
        ledger.record_release(release(commit="e" * 40))


def test_a_commit_rebuilt_into_other_artifacts_is_refused_as_not_reproducible(ledger: Ledger) -> None:
    ledger.record_release(release(wheel_sha256="b" * 64))

    with pytest.raises(ReleaseError, match="not reproducible"):
        ledger.record_release(release(wheel_sha256="f" * 64))


def test_release_by_version_finds_the_recorded_release(ledger: Ledger) -> None:
    release_id = ledger.record_release(release())

    assert ledger.release_by_version("example_etl", "v1.0.0") == (release_id, release())


def test_an_unknown_release_id_points_at_a_ledger_not_shared_by_all_workers(ledger: Ledger) -> None:
    with pytest.raises(
        ReleaseError, match=r"no release with id 42 in the ledger at sqlite:///.*share one ledger"
    ):
        ledger.release(42)


def test_a_started_deployment_is_deploying(ledger: Ledger) -> None:
    release_id = ledger.record_release(release())

    deployment_id = deploy(ledger, release_id)

    [record] = ledger.deployments("example_etl")
    assert (record.id, record.state, record.version, record.finished_at) == (
        deployment_id,
        "deploying",
        "v1.0.0",
        None,
    )


def test_a_finished_deployment_keeps_its_outcome_and_detail(ledger: Ledger) -> None:
    deployment_id = deploy(ledger, ledger.record_release(release()))

    ledger.finish_deployment(deployment_id, "failed", detail="job etl: HTTP 400")

    [record] = ledger.deployments("example_etl")
    assert (record.state, record.detail) == ("failed", "job etl: HTTP 400")
    assert record.finished_at is not None


def test_a_retried_start_gets_the_same_deployment_back_deploying_again(ledger: Ledger) -> None:
    release_id = ledger.record_release(release())
    deployment_id = deploy(ledger, release_id)
    ledger.finish_deployment(deployment_id, "failed", detail="timeout")

    assert deploy(ledger, release_id) == deployment_id
    [record] = ledger.deployments("example_etl")
    assert (record.state, record.detail, record.finished_at) == ("deploying", None, None)


def test_a_deployment_of_an_unknown_release_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ReleaseError, match="no release with id 42"):
        deploy(ledger, 42)


def test_finishing_an_unknown_deployment_is_refused(ledger: Ledger) -> None:
    with pytest.raises(BundlePromotionError, match="no deployment with id 42"):
        ledger.finish_deployment(42, "succeeded")


def test_the_current_release_is_the_last_one_deployed_successfully(ledger: Ledger) -> None:
    outcomes: list[tuple[str, FinishedState]] = [
        ("v1.0.0", "succeeded"),
        ("v1.1.0", "succeeded"),
        ("v1.2.0", "failed"),
    ]
    for version, outcome in outcomes:
        release_id = ledger.record_release(release(version=version))
        ledger.finish_deployment(deploy(ledger, release_id, run_id=f"manual__{version}"), outcome)

    current = ledger.current_release("example_etl", "dev")

    assert current is not None
    assert current[0] == release(version="v1.1.0")
    assert current[1].run_id == "manual__v1.1.0"


def test_there_is_no_current_release_before_a_deployment_succeeds(ledger: Ledger) -> None:
    deploy(ledger, ledger.record_release(release()))

    assert ledger.current_release("example_etl", "dev") is None


def test_deployments_are_listed_newest_first(ledger: Ledger) -> None:
    first = deploy(ledger, ledger.record_release(release(version="v1.0.0")), run_id="first")
    second = deploy(ledger, ledger.record_release(release(version="v1.1.0")), run_id="second")

    assert [record.id for record in ledger.deployments("example_etl")] == [second, first]


def test_deployments_can_be_listed_for_one_environment(ledger: Ledger) -> None:
    release_id = ledger.record_release(release())
    deploy(ledger, release_id, environment="dev")
    staging = deploy(ledger, release_id, environment="staging")

    assert [record.id for record in ledger.deployments("example_etl", "staging")] == [staging]


def test_times_come_back_timezone_aware_in_utc(ledger: Ledger) -> None:
    deployment_id = deploy(ledger, ledger.record_release(release()))
    ledger.finish_deployment(deployment_id, "succeeded")

    [record] = ledger.deployments("example_etl")
    assert record.started_at.tzinfo is UTC
    assert record.finished_at is not None
    assert record.finished_at.tzinfo is UTC
