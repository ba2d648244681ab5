"""End to end: drift__<bundle> under dag.test() finds hand edits after a promotion; prod heals itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import PROJECT
from tests.e2e.test_promotion_e2e import jobs_by_name, promote, rest, task_states

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

BUNDLE = "example_drift"


def write_spec(folder: Path, repo: Path) -> Path:
    """dev reports drift only; prod heals it by redeploying."""
    spec = {
        "bundle": BUNDLE,
        "source": {"repo": str(repo)},
        "environments": [
            {"name": "dev", "target": "dev", "databricks_conn_id": "databricks_dev", "schedules": "paused"},
            {
                "name": "prod",
                "target": "prod",
                "databricks_conn_id": "databricks_prod",
                "schedules": "unpaused",
                "drift": {"heal": "redeploy"},
            },
        ],
    }
    specs = folder / "promotions"
    specs.mkdir()
    (specs / f"{BUNDLE}.yaml").write_text(yaml.safe_dump(spec))
    return specs


def check_drift(monkeypatch: pytest.MonkeyPatch, specs: Path) -> Any:
    """Parse the real DAG file over ``specs``, then run drift__<bundle> in-process, as its schedule would."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag.get_dag(f"drift__{BUNDLE}").test()


def nightly(workspaces: Any, environment: str) -> dict[str, Any]:
    job = jobs_by_name(workspaces, environment)[f"[{environment}] example_etl nightly"]
    return dict(rest(workspaces, environment, "2.2/jobs/get", job_id=job["job_id"]))


def edit_schedule(workspaces: Any, environment: str, **changes: str) -> None:
    job = nightly(workspaces, environment)
    schedule = {**job["settings"]["schedule"], **changes}
    response = requests.post(
        f"{workspaces.base_url(environment)}/api/2.2/jobs/update",
        json={"job_id": job["job_id"], "new_settings": {"schedule": schedule}},
        headers={"Authorization": f"Bearer {workspaces.token(environment)}"},
        timeout=10,
    )
    response.raise_for_status()


def test_hand_edits_are_reported_and_prod_heals_itself(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bundle_promotion.hooks.ledger import LedgerHook

    specs = write_spec(tmp_path, bundle_repo())
    assert promote(monkeypatch, specs, f"promote__{BUNDLE}", "v1.0.0").state == "success"
    edit_schedule(workspaces, "dev", pause_status="UNPAUSED")  # someone unpaused a job in dev
    edit_schedule(workspaces, "prod", quartz_cron_expression="0 0 5 * * ?")  # and moved prod's nightly run

    drift_run = check_drift(monkeypatch, specs)

    states = task_states(drift_run)
    assert drift_run.state == "success", states
    assert (states["dev.check"], states["dev.heal"]) == ("success", "skipped")
    assert (states["prod.check"], states["prod.heal"]) == ("success", "success")
    ledger = LedgerHook().get_conn()
    dev_report = ledger.latest_drift_report(BUNDLE, "dev")
    assert dev_report is not None
    assert [(f.field, f.expected, f.actual) for f in dev_report.findings] == [
        ("schedule.pause_status", "PAUSED", "UNPAUSED")
    ]
    assert nightly(workspaces, "dev")["settings"]["schedule"]["pause_status"] == "UNPAUSED"
    prod_schedule = nightly(workspaces, "prod")["settings"]["schedule"]
    assert (prod_schedule["quartz_cron_expression"], prod_schedule["pause_status"]) == (
        "0 0 2 * * ?",
        "UNPAUSED",
    )
    [heal] = ledger.drift_heals(BUNDLE, "prod")
    assert (heal.outcome, [f.field for f in heal.findings]) == ("healed", ["schedule.quartz_cron_expression"])

    again = check_drift(monkeypatch, specs)

    assert task_states(again)["prod.heal"] == "skipped"
    prod_report = ledger.latest_drift_report(BUNDLE, "prod")
    assert prod_report is not None
    assert prod_report.status == "in_sync"
