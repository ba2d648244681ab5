"""End to end: a promotion's notifications reach a webhook once, even when its tasks are cleared and rerun.

v1.1.0 is promoted through dev into staging, the production environment: one "promoted to
production". v1.2.0's dev tests fail: the test failure, the automatic rollback and the hold
are told. Clearing the production record and the rollback's hold, and running them again the
way the UI's Clear does, tells nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.testing.webhook_sink import WebhookSink
from tests.e2e.test_clear_after_rollback_e2e import (
    clear_and_resume,
    load_dag,
    tag_v120_failing_in_dev,
    task_states,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

BUNDLE = "example_notified"


def write_spec(folder: Path, repo: Path) -> Path:
    spec = {
        "bundle": BUNDLE,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {
                "name": "dev",
                "target": "dev",
                "databricks_conn_id": "databricks_dev",
                "schedules": "unpaused",
                "tests": ["integration_tests"],
            },
            {
                "name": "staging",
                "target": "staging",
                "databricks_conn_id": "databricks_staging",
                "schedules": "paused",
                "production": True,
                "tests": [{"job": "integration_tests", "non_destructive": True}],
            },
        ],
        "notifications": {"all": [{"webhook": "ops_webhook"}]},
    }
    specs = folder / "promotions"
    specs.mkdir()
    (specs / f"{BUNDLE}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", sink.airflow_connection_json())
        yield sink


def told(sink: WebhookSink) -> list[tuple[str, str, str]]:
    return [(body["event"], body["environment"], body["version"]) for body in sink.payloads()]


def test_each_event_of_a_promotion_is_told_once_across_clears(
    workspaces: Any,
    bundle_repo: Callable[..., Path],
    sink: WebhookSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = bundle_repo("v1.1.0")
    specs = write_spec(tmp_path, repo)
    promoted = load_dag(monkeypatch, specs, BUNDLE).test(run_conf={"version": "v1.1.0"})
    assert promoted.state == "success"
    assert told(sink) == [("promoted_to_production", "staging", "v1.1.0")]

    dag = load_dag(monkeypatch, specs, BUNDLE)
    assert clear_and_resume(dag, promoted.run_id, ["staging.record"]) == "success"
    assert task_states(dag.dag_id, promoted.run_id)["staging.record"] == "success"
    assert len(sink.payloads()) == 1

    tag_v120_failing_in_dev(repo)
    dag = load_dag(monkeypatch, specs, BUNDLE)
    failed = dag.test(run_conf={"version": "v1.2.0"})
    assert failed.state == "failed"
    assert told(sink)[1:] == [
        ("test_failed", "dev", "v1.2.0"),
        ("rolled_back", "dev", "v1.2.0"),
        ("held", "dev", "v1.2.0"),
    ]
    test_failed, rolled_back, held = sink.payloads()[1:]
    assert test_failed["why"].startswith("dev.test_integration_tests failed: job integration_tests run ")
    assert "v1.1.0" in rolled_back["why"]
    assert f"bundle-promotion hold clear {BUNDLE} dev" in held["why"]
    assert all(body["board_url"].endswith(f"/ui/?bundle={BUNDLE}&env=dev") for body in (test_failed, held))

    clear_and_resume(dag, failed.run_id, ["dev_rollback.hold"])
    assert task_states(dag.dag_id, failed.run_id)["dev_rollback.hold"] == "success"
    assert len(sink.payloads()) == 4
