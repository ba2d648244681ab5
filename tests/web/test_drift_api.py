"""The drift API for the board: the newest report per environment, and the Heal action as the token's user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import DriftFinding, DriftHeal, DriftReport
from tests.conftest import PROJECT
from tests.web.test_approvals_api import client, ledger, token

__all__ = ["client", "ledger"]  # the approvals API's fixtures, shared

pytestmark = pytest.mark.usefixtures("airflow_db")

DRIFT = "/bundle-promotion/dags/promote__sales/drift"
HEAL = "/bundle-promotion/dags/promote__sales/environments/{}/drift/heal"
PAUSED_BY_HAND = DriftFinding("resources.jobs.etl", "schedule.pause_status", "UNPAUSED", "PAUSED")


def report(environment: str, *findings: DriftFinding) -> DriftReport:
    return DriftReport("sales", environment, datetime.now(UTC), "v1.0.0", "d" * 64, findings)


@pytest.fixture
def drift_dag_loaded(client: Any) -> None:
    """drift__sales in Airflow's database, as the DAG processor leaves it, so a run can be triggered."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=PROJECT / "dags" / "promotions.py", bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)


@pytest.mark.usefixtures("drift_dag_loaded")
def test_the_newest_report_of_each_environment_with_its_fields_and_last_heal(
    client: Any, ledger: Ledger
) -> None:
    ledger.record_drift_report(report("prod"), actor="bundle-promotion")
    ledger.record_drift_report(report("prod", PAUSED_BY_HAND), actor="bundle-promotion")
    ledger.record_drift_report(report("dev"), actor="bundle-promotion")
    ledger.record_drift_heal(
        DriftHeal("sales", "prod", "redeploy", "refused", "held", "alice", datetime.now(UTC), "v1.0.0")
    )

    response = client.get(DRIFT, headers=token("vera", role="viewer"))

    assert response.status_code == 200, response.text
    views = {view["environment"]: view for view in response.json()}
    assert views["dev"]["status"] == "in_sync"
    assert views["prod"]["status"] == "drifted"
    assert views["prod"]["findings"] == [
        {
            "resource": "resources.jobs.etl",
            "field": "schedule.pause_status",
            "expected": "UNPAUSED",
            "actual": "PAUSED",
        }
    ]
    assert (views["prod"]["last_heal"]["outcome"], views["prod"]["last_heal"]["actor"]) == (
        "refused",
        "alice",
    )
    assert (
        client.get("/bundle-promotion/drift", headers=token("vera", role="viewer")).json() == response.json()
    )


def test_a_viewer_may_not_heal(client: Any) -> None:
    response = client.post(
        HEAL.format("prod"), json={"reason": "paused by hand"}, headers=token("vera", "viewer")
    )

    assert response.status_code == 403


@pytest.mark.usefixtures("drift_dag_loaded")
def test_heal_triggers_a_drift_run_for_the_environment_as_the_user_and_audits_the_request(
    client: Any, ledger: Ledger
) -> None:
    response = client.post(
        HEAL.format("prod"), json={"reason": "paused by hand at 2 a.m."}, headers=token("alice")
    )

    assert response.status_code == 202, response.text
    requested = response.json()
    assert (requested["dag_id"], requested["mode"]) == ("drift__sales", "redeploy")
    run = _dag_run(requested["dag_id"], requested["run_id"])
    assert run.conf == {"heal_environment": "prod", "heal_mode": "redeploy"}
    assert run.triggering_user_name == "alice"
    event = ledger.audit_events()[-1]
    assert (event.action, event.actor, event.subject, event.reason) == (
        "drift.heal_requested",
        "alice",
        "sales/prod",
        "paused by hand at 2 a.m.",
    )


def _dag_run(dag_id: str, run_id: str) -> Any:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id, run_id=run_id).one()
        session.expunge(run)
        return run


def test_an_unknown_environment_is_not_found(client: Any) -> None:
    response = client.post(HEAL.format("qa"), json={"reason": "r"}, headers=token("alice"))

    assert response.status_code == 404
    assert "sales has no environment qa" in response.json()["detail"]
