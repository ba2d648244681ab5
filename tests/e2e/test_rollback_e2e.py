"""End to end: a release that fails in prod is rolled back, code and data, and prod is held.

v1.0.0 goes to staging and prod. v2.0.0 changes the nightly job's cron and fails its prod
integration tests; while it is in prod it also moves the model alias and writes to the
table, as a bad release would. Every check reads the prod workspace back over REST.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import PROJECT, git

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

BUNDLE = "example_rollback"
MANUAL = "example_manual_rollback"
MODEL, ALIAS = "main.ml.churn", "champion"
TABLE = "main.sales.orders"
WAREHOUSE = "wh-prod"
V1_CRON, V2_CRON = "0 0 2 * * ?", "0 30 5 * * ?"


def write_spec(folder: Path, repo: Path, bundle: str = BUNDLE) -> Path:
    rollback = {"models": [{"name": MODEL, "alias": ALIAS}], "tables": [TABLE], "warehouse_id": WAREHOUSE}
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {
                "name": "staging",
                "target": "staging",
                "databricks_conn_id": "databricks_staging",
                "schedules": "paused",
                "tests": ["integration_tests"],
            },
            {
                "name": "prod",
                "target": "prod",
                "databricks_conn_id": "databricks_prod",
                "schedules": "unpaused",
                "tests": ["integration_tests"],
                "rollback": rollback,
            },
        ],
    }
    specs = folder / "promotions"
    specs.mkdir()
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


def tag_failing_v2(repo: Path) -> None:
    """v2.0.0: a new cron for the nightly job, and integration tests that fail in prod."""
    etl = repo / "resources" / "etl.job.yml"
    etl.write_text(etl.read_text().replace(V1_CRON, V2_CRON))
    config_file = repo / "databricks.yml"
    config = yaml.safe_load(config_file.read_text())
    config["targets"]["prod"]["resources"] = {
        "jobs": {"integration_tests": {"parameters": [{"name": "emulator_result", "default": "FAILED"}]}}
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo, "commit", "-q", "-am", "v2: new cron")
    git(repo, "tag", "-a", "v2.0.0", "-m", "release v2.0.0")


class Workspace:
    """One emulated workspace over REST."""

    def __init__(self, workspaces: Any, name: str) -> None:
        self.name = name
        self.base = f"{workspaces.base_url(name)}/api"
        self.headers = {"Authorization": f"Bearer {workspaces.token(name)}"}

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = requests.request(
            method, f"{self.base}/{path}", json=body, params=params, headers=self.headers, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def sql(self, statement: str) -> list[list[str]]:
        answer = self.call("POST", "2.0/sql/statements", {"statement": statement, "warehouse_id": WAREHOUSE})
        assert answer["status"]["state"] == "SUCCEEDED", answer
        return list(answer.get("result", {}).get("data_array", []))

    def alias_version(self) -> int:
        return int(self.call("GET", f"2.1/unity-catalog/models/{MODEL}/aliases/{ALIAS}")["version"])

    def jobs(self) -> dict[str, dict[str, Any]]:
        listing = self.call("GET", "2.2/jobs/list", limit=100, expand_tasks="true")
        return {job["settings"]["name"]: job for job in listing.get("jobs", [])}

    def seed(self) -> None:
        """A model with two versions, its alias on 1, and a table with one write."""
        self.call(
            "POST", "2.1/unity-catalog/models", {"catalog_name": "main", "schema_name": "ml", "name": "churn"}
        )
        for _ in range(2):
            self.call(
                "POST", "2.0/mlflow/unity-catalog/model-versions/create", {"name": MODEL, "source": "s"}
            )
        self.call("PUT", f"2.1/unity-catalog/models/{MODEL}/aliases/{ALIAS}", {"version_num": 1})
        self.sql(f"CREATE TABLE {TABLE} (id INT, amount DOUBLE)")
        self.sql(f"INSERT INTO {TABLE} VALUES (1, 10.0)")


def load_dags(monkeypatch: pytest.MonkeyPatch, specs: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(specs))
    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    return dagbag


def states(dag_run: Any) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        return {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}


def ledger() -> Any:
    from bundle_promotion.hooks.ledger import LedgerHook

    return LedgerHook().get_conn()


def writes(requests_seen: list[Any]) -> list[str]:
    """Calls that change a workspace; a statement that only reads is not one."""
    reads = ("DESCRIBE", "SELECT")
    return [
        f"{r.method} {r.path} {r.body}"
        for r in requests_seen
        if r.method != "GET"
        and not (r.path.endswith("sql/statements") and r.body["statement"].startswith(reads))
    ]


def test_a_release_failing_in_prod_is_rolled_back_code_and_data_and_prod_is_held(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = bundle_repo("v1.0.0")
    dag = load_dags(monkeypatch, write_spec(tmp_path, repo)).get_dag(f"promote__{BUNDLE}")
    prod = Workspace(workspaces, "prod")
    prod.seed()
    assert dag.test(run_conf={"version": "v1.0.0"}).state == "success"
    v1_jobs = prod.jobs()
    v1_rows = prod.sql(f"SELECT * FROM {TABLE}")

    tag_failing_v2(repo)
    dag = load_dags(monkeypatch, tmp_path / "promotions").get_dag(f"promote__{BUNDLE}")

    def bad_release_changes_the_data(_context: Any) -> None:
        prod.call("PUT", f"2.1/unity-catalog/models/{MODEL}/aliases/{ALIAS}", {"version_num": 2})
        prod.sql(f"INSERT INTO {TABLE} VALUES (2, -99.0)")

    dag.get_task("prod.verify").on_execute_callback = [bad_release_changes_the_data]
    dag_run = dag.test(run_conf={"version": "v2.0.0"})

    ran = states(dag_run)
    assert dag_run.state == "failed"
    assert ran["prod.test_integration_tests"] == "failed"
    assert {
        task: ran[f"prod_rollback.{task}"] for task in ("redeploy", "schedules", "hold")
    } == dict.fromkeys(("redeploy", "schedules", "hold"), "success")
    back = prod.jobs()
    assert {name: job["job_id"] for name, job in back.items()} == {
        name: job["job_id"] for name, job in v1_jobs.items()
    }
    nightly = back["[prod] example_etl nightly"]["settings"]["schedule"]
    assert (nightly["quartz_cron_expression"], nightly["pause_status"]) == (V1_CRON, "UNPAUSED")
    assert back["[prod] example_etl integration tests"]["settings"]["parameters"] == [
        {"name": "catalog", "default": "prod"}
    ]
    assert prod.alias_version() == 1
    assert prod.sql(f"SELECT * FROM {TABLE}") == v1_rows
    assert prod.sql(f"DESCRIBE HISTORY {TABLE}")[0][3:5] == ["RESTORE", '{"version": "1"}']
    held = ledger().environment_hold(BUNDLE, "prod")
    assert held is not None
    assert held.run_id == dag_run.run_id
    assert "redeploy v1.0.0 to prod" in held.reason
    assert ledger().environment_hold(BUNDLE, "staging") is None
    assert ledger().current_release(BUNDLE, "prod")[0].version == "v1.0.0"

    # Clearing the rollback tasks runs each of them again in the same run: nothing more changes.
    events_before, seen_before = len(ledger().audit_events()), len(workspaces.requests("prod"))
    for task_id in (
        "redeploy",
        "schedules",
        f"alias_{MODEL.replace('.', '_')}_{ALIAS}",
        "table_main_sales_orders",
        "hold",
    ):
        dag.get_task(f"prod_rollback.{task_id}").execute({"run_id": dag_run.run_id, "params": {}})

    assert writes(workspaces.requests("prod")[seen_before:]) == []
    assert len(ledger().audit_events()) == events_before
    assert prod.jobs() == back
    assert prod.alias_version() == 1


def nightly_cron(workspace: Workspace) -> str:
    return str(
        workspace.jobs()[f"[{workspace.name}] example_etl nightly"]["settings"]["schedule"][
            "quartz_cron_expression"
        ]
    )


def test_the_manual_rollback_dag_returns_an_environment_to_a_chosen_release(
    workspaces: Any, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = bundle_repo("v1.0.0")
    specs = write_spec(tmp_path, repo, MANUAL)
    Workspace(workspaces, "prod").seed()
    assert (
        load_dags(monkeypatch, specs).get_dag(f"promote__{MANUAL}").test(run_conf={"version": "v1.0.0"}).state
        == "success"
    )
    tag_failing_v2(repo)
    load_dags(monkeypatch, specs).get_dag(f"promote__{MANUAL}").test(run_conf={"version": "v2.0.0"})
    staging = Workspace(workspaces, "staging")
    assert nightly_cron(staging) == V2_CRON

    manual = load_dags(monkeypatch, specs).get_dag(f"rollback__{MANUAL}")
    dag_run = manual.test(run_conf={"environment": "staging", "target_version": "v1.0.0"})

    ran = states(dag_run)
    assert dag_run.state == "success", ran
    assert (ran["staging.hold"], ran["prod.requested"], ran["prod.hold"]) == ("success", "skipped", "skipped")
    assert nightly_cron(staging) == V1_CRON
    assert ledger().current_release(MANUAL, "staging")[0].version == "v1.0.0"
    assert ledger().environment_hold(MANUAL, "staging") is not None
