"""`bundle-promotion drift check`: each environment against its release, as text or one JSON document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bundle_promotion.cli import main
from bundle_promotion.lifecycle.schedules import set_pause_status
from tests.lifecycle.test_drift import ETL, Environment, dev

__all__ = ["dev"]  # the drift tests' promoted dev environment, shared


@pytest.fixture
def drift_check(dev: Environment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command's arguments up to the bundle, with a spec of dev and the fixture's ledger and store."""
    specs = tmp_path / "promotions"
    specs.mkdir()
    spec = {
        "bundle": "example_etl",
        "source": {"repo": dev.source.repo},
        "environments": [
            {
                "name": name,
                "target": name,
                "databricks_conn_id": f"databricks_{name}",
                "schedules": "unpaused",
            }
            for name in ("dev", "staging")
        ],
    }
    (specs / "example.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__ARTIFACT_STORE", (tmp_path / "store").as_uri())
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__CHECKOUT_FOLDER", str(dev.checkouts))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    return ["drift", "check", "--specs", str(specs), "--ledger", ledger_url, "example_etl"]


def test_an_environment_in_sync_exits_0_and_says_so(
    drift_check: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*drift_check]) == 0
    assert capsys.readouterr().out == "dev: in sync with v1.0.0\nstaging: nothing deployed yet\n"


def test_drift_exits_1_with_one_json_document_naming_each_field(
    dev: Environment, drift_check: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")

    assert main([*drift_check, "dev", "-o", "json"]) == 1

    [report] = json.loads(capsys.readouterr().out)
    assert (report["environment"], report["status"]) == ("dev", "drifted")
    assert report["findings"] == [
        {"resource": ETL, "field": "schedule.pause_status", "expected": "UNPAUSED", "actual": "PAUSED"}
    ]
    assert dev.ledger.latest_drift_report("example_etl", "dev") is not None


def test_an_unknown_environment_exits_2_naming_the_known_ones(
    drift_check: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*drift_check, "qa"]) == 2
    assert "example_etl has no environment qa; it has dev, staging" in capsys.readouterr().err
