"""A deployment's outcome is a state machine: a rolled-back release never becomes the one that runs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from bundle_promotion.errors import BundlePromotionError, StaleDeployment
from bundle_promotion.ledger import Ledger
from tests.ledger.test_ledger import deploy, release

ROLLBACK = "rollback redeploy"


def applied(ledger: Ledger, version: str, run_id: str) -> int:
    """A deployment of ``version`` the engine applied: the workspace runs it, checks pending."""
    deployment_id = deploy(ledger, ledger.record_release(release(version=version)), run_id=run_id)
    ledger.mark_applied(deployment_id)
    return deployment_id


def rolled_back(ledger: Ledger) -> tuple[int, int, int]:
    """v1.1.0 succeeded; v1.2.0 applied and failed its test; the rollback redeployed v1.1.0 in that run."""
    good = applied(ledger, "v1.1.0", "run_1")
    ledger.finish_deployment(good, "succeeded")
    bad = applied(ledger, "v1.2.0", "run_2")
    ledger.finish_deployment(bad, "failed", detail="test_integration_tests failed")
    redeploy = applied(ledger, "v1.1.0", "run_2")
    ledger.finish_rollback(redeploy, detail=ROLLBACK)
    return good, bad, redeploy


def state(ledger: Ledger, deployment_id: int) -> str:
    return ledger.deployment(deployment_id).state


def test_a_rollback_supersedes_the_deployment_it_undid(ledger: Ledger) -> None:
    good, bad, redeploy = rolled_back(ledger)

    assert (state(ledger, good), state(ledger, bad), state(ledger, redeploy)) == (
        "succeeded",
        "superseded",
        "succeeded",
    )
    assert ledger.deployment(bad).superseded_by == redeploy


def test_a_superseded_deployment_can_never_succeed_and_the_error_says_what_runs_there(
    ledger: Ledger,
) -> None:
    _, bad, redeploy = rolled_back(ledger)

    with pytest.raises(StaleDeployment) as refused:
        ledger.finish_deployment(bad, "succeeded")

    message = str(refused.value)
    assert f"deployment {bad} of v1.2.0 to example_etl/dev was superseded by deployment {redeploy}" in message
    assert f"example_etl/dev runs v1.1.0 now (deployment {redeploy}, run run_2)" in message
    assert "trigger a new run" in message
    assert state(ledger, bad) == "superseded"


def test_a_superseded_deployment_cannot_be_deployed_again_in_its_run(ledger: Ledger) -> None:
    _, bad, _ = rolled_back(ledger)

    with pytest.raises(StaleDeployment, match="was superseded"):
        deploy(ledger, ledger.deployment(bad).release_id, run_id="run_2")

    assert state(ledger, bad) == "superseded"


@pytest.mark.parametrize("outcome", ["failed", "succeeded"])
def test_a_superseded_deployment_keeps_its_state(ledger: Ledger, outcome: str) -> None:
    _, bad, _ = rolled_back(ledger)

    with pytest.raises(StaleDeployment):
        ledger.finish_deployment(bad, outcome)  # type: ignore[arg-type]

    assert state(ledger, bad) == "superseded"


def test_after_a_rollback_the_current_release_is_the_one_put_back(ledger: Ledger) -> None:
    _, _, redeploy = rolled_back(ledger)

    current = ledger.current_release("example_etl", "dev")

    assert current is not None
    assert (current[0].version, current[1].id) == ("v1.1.0", redeploy)


def test_only_the_deployment_the_workspace_runs_may_succeed(ledger: Ledger) -> None:
    older = applied(ledger, "v1.1.0", "run_1")
    newer = applied(ledger, "v1.2.0", "run_2")

    with pytest.raises(StaleDeployment, match=re.escape("example_etl/dev runs v1.2.0 now")):
        ledger.finish_deployment(older, "succeeded")
    ledger.finish_deployment(newer, "succeeded")

    assert (state(ledger, older), state(ledger, newer)) == ("deployed", "succeeded")


def test_an_applied_deployment_that_failed_still_runs_there(ledger: Ledger) -> None:
    good = applied(ledger, "v1.1.0", "run_1")
    ledger.finish_deployment(good, "succeeded")
    bad = applied(ledger, "v1.2.0", "run_2")
    ledger.finish_deployment(bad, "failed", detail="verify failed")

    current = ledger.current_release("example_etl", "dev")
    good_release = ledger.last_good_release("example_etl", "dev")

    assert current is not None
    assert current[1].id == bad
    assert good_release is not None
    assert good_release[1].id == good


def test_a_deploy_that_failed_before_reaching_the_workspace_cannot_succeed(ledger: Ledger) -> None:
    failed = deploy(ledger, ledger.record_release(release()))
    ledger.finish_deployment(failed, "failed", detail="engine error")

    with pytest.raises(StaleDeployment, match="failed before it reached the workspace"):
        ledger.finish_deployment(failed, "succeeded")


def test_every_transition_is_an_audit_event(ledger: Ledger) -> None:
    rolled_back(ledger)

    assert [
        (e.action, e.details.get("version")) for e in ledger.audit_events() if e.action.startswith("d")
    ] == [
        ("deployment.started", "v1.1.0"),
        ("deployment.deployed", "v1.1.0"),
        ("deployment.succeeded", "v1.1.0"),
        ("deployment.started", "v1.2.0"),
        ("deployment.deployed", "v1.2.0"),
        ("deployment.failed", "v1.2.0"),
        ("deployment.started", "v1.1.0"),
        ("deployment.deployed", "v1.1.0"),
        ("deployment.succeeded", "v1.1.0"),
        ("deployment.superseded", "v1.2.0"),
    ]


def test_finishing_a_rollback_twice_supersedes_nothing_more(ledger: Ledger) -> None:
    _, _, redeploy = rolled_back(ledger)
    events = len(ledger.audit_events())

    assert ledger.finish_rollback(redeploy, detail=ROLLBACK) == []
    assert len(ledger.audit_events()) == events


def test_a_manual_rollback_supersedes_a_release_that_had_succeeded(ledger: Ledger) -> None:
    good = applied(ledger, "v1.0.0", "run_1")
    ledger.finish_deployment(good, "succeeded")
    newer = applied(ledger, "v2.0.0", "run_2")
    ledger.finish_deployment(newer, "succeeded")
    redeploy = applied(ledger, "v1.0.0", "manual_rollback")

    assert ledger.finish_rollback(redeploy, detail=ROLLBACK) == [newer]
    assert state(ledger, good) == "succeeded"


def test_no_transition_outside_the_state_machine(ledger: Ledger) -> None:
    succeeded = applied(ledger, "v1.0.0", "run_1")
    ledger.finish_deployment(succeeded, "succeeded")

    with pytest.raises(BundlePromotionError, match="is succeeded; it cannot become deployed"):
        ledger.mark_applied(succeeded)


def test_a_database_from_before_the_state_machine_keeps_what_runs_where(
    ledger: Ledger, database: Path
) -> None:
    release_id = ledger.record_release(release(version="v1.0.0"))
    with sqlite3.connect(database) as connection:
        connection.execute("DROP INDEX ix_deployments_current")  # a later schema version's
        for column in ("applied_at", "superseded_by"):
            connection.execute(f"ALTER TABLE deployments DROP COLUMN {column}")
        connection.execute("DELETE FROM schema_version WHERE version >= 6")
        connection.execute(
            "INSERT INTO deployments (bundle, environment, release_id, run_id, target, state, started_at, "
            "finished_at) VALUES ('example_etl', 'dev', ?, 'run_0', 'dev', 'succeeded', "
            "'2026-11-01 10:00:00', '2026-11-01 10:05:00')",
            (release_id,),
        )

    ledger.migrate()

    current = ledger.current_release("example_etl", "dev")
    assert current is not None
    assert (current[0].version, current[1].applied_at) == ("v1.0.0", current[1].finished_at)
    rolled_back(ledger)
