"""Rollback core: snapshots before a deploy, the plan read from the ledger, idempotent data restores."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.errors import EnvironmentHeld, ReleaseError, RestoreFailed
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Artifact, Release
from bundle_promotion.lifecycle import data_restores
from bundle_promotion.lifecycle.holds import refuse_if_held
from bundle_promotion.lifecycle.rollback import (
    hold,
    plan_rollback,
    record_data_snapshot,
    restore_model_alias,
    restore_table,
)
from bundle_promotion.spec import ModelAlias, Rollback
from bundle_promotion.testing.workspace import WorkspaceEmulator

BUNDLE = "example"
MODEL, ALIAS = "main.ml.churn", "champion"
TABLE = "main.sales.orders"
WAREHOUSE = "wh-dev"
POLICY = Rollback(models=(ModelAlias(name=MODEL, alias=ALIAS),), tables=(TABLE,), warehouse_id=WAREHOUSE)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


@pytest.fixture
def api(workspaces: WorkspaceEmulator) -> Any:
    from bundle_promotion.hooks.workspace import WorkspaceHook

    return WorkspaceHook(databricks_conn_id="databricks_dev")


@pytest.fixture
def data(api: Any) -> Any:
    """A model with three versions, its alias on 1, and a table at version 1."""
    api.call(
        "POST",
        "2.1/unity-catalog/models",
        body={"catalog_name": "main", "schema_name": "ml", "name": "churn"},
    )
    for _ in range(3):
        api.call(
            "POST", "2.0/mlflow/unity-catalog/model-versions/create", body={"name": MODEL, "source": "s"}
        )
    data_restores.move_alias(api, MODEL, ALIAS, 1)
    data_restores.execute_sql(api, WAREHOUSE, f"CREATE TABLE {TABLE} (id INT)")
    data_restores.execute_sql(api, WAREHOUSE, f"INSERT INTO {TABLE} VALUES (1)")
    return api


def release(version: str) -> Release:
    return Release(
        BUNDLE, version, version.replace(".", "")[:1] * 40, (Artifact("w", "dist/w", "c" * 64),), "d" * 64
    )


def deployment(ledger: Ledger, version: str, run_id: str, state: str = "succeeded") -> int:
    release_id = ledger.record_release(release(version))
    deployment_id = ledger.start_deployment(
        bundle=BUNDLE, environment="dev", target="dev", release_id=release_id, run_id=run_id
    )
    if state != "deploying":
        ledger.finish_deployment(deployment_id, state)  # type: ignore[arg-type]
    return release_id


def snapshot(api: Any, ledger: Ledger, run_id: str) -> Any:
    return record_data_snapshot(api, ledger, bundle=BUNDLE, environment="dev", run_id=run_id, policy=POLICY)


def statements(workspaces: WorkspaceEmulator) -> list[str]:
    return [r.body["statement"] for r in workspaces.requests("dev") if r.path.endswith("sql/statements")]


def test_the_snapshot_records_alias_and_table_versions_and_the_previous_release(
    data: Any, ledger: Ledger
) -> None:
    v1 = deployment(ledger, "v1.0.0", "run_1")

    taken = snapshot(data, ledger, "run_2")

    assert taken.model_aliases == {f"{MODEL}@{ALIAS}": 1}
    assert taken.table_versions == {TABLE: 1}
    assert taken.previous_release_id == v1
    assert ledger.audit_events()[-1].action == "snapshot.recorded"


def test_a_second_snapshot_in_the_same_run_keeps_the_first(data: Any, ledger: Ledger) -> None:
    first = snapshot(data, ledger, "run_2")
    data_restores.move_alias(data, MODEL, ALIAS, 3)

    again = snapshot(data, ledger, "run_2")

    assert again == first


def test_an_alias_that_did_not_exist_is_recorded_as_none(api: Any, ledger: Ledger) -> None:
    api.call(
        "POST",
        "2.1/unity-catalog/models",
        body={"catalog_name": "main", "schema_name": "ml", "name": "churn"},
    )
    policy = Rollback(models=(ModelAlias(name=MODEL, alias=ALIAS),))

    taken = record_data_snapshot(api, ledger, bundle=BUNDLE, environment="dev", run_id="r", policy=policy)

    assert taken.model_aliases == {f"{MODEL}@{ALIAS}": None}


def test_the_plan_returns_to_the_last_good_release_and_undoes_the_newest_other_deployment(
    ledger: Ledger,
) -> None:
    deployment(ledger, "v1.0.0", "run_1")
    v2 = deployment(ledger, "v2.0.0", "run_2", state="failed")

    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    assert (plan.target_version, plan.rolled_back and plan.rolled_back.release_id) == ("v1.0.0", v2)
    assert plan.describe()[0] == "redeploy v1.0.0 to dev"


def test_the_plan_restores_the_data_recorded_before_the_undone_deploy(data: Any, ledger: Ledger) -> None:
    deployment(ledger, "v1.0.0", "run_1")
    snapshot(data, ledger, "run_2")
    deployment(ledger, "v2.0.0", "run_2", state="failed")

    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    assert plan.model_aliases == {f"{MODEL}@{ALIAS}": 1}
    assert plan.table_versions == {TABLE: 1}


def test_without_a_good_release_the_plan_redeploys_nothing(ledger: Ledger) -> None:
    deployment(ledger, "v1.0.0", "run_1", state="failed")

    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    assert (plan.target_release_id, plan.target_version) == (None, None)
    assert "no previous good release" in plan.describe()[0]


def test_a_target_version_must_be_in_the_ledger(ledger: Ledger) -> None:
    with pytest.raises(ReleaseError, match=re.escape("v9.9.9 of example is not in the ledger")):
        plan_rollback(ledger, bundle=BUNDLE, environment="dev", target_version="v9.9.9")


def test_a_model_alias_moves_back_once_then_stays(
    data: Any, ledger: Ledger, workspaces: WorkspaceEmulator
) -> None:
    deployment(ledger, "v1.0.0", "run_1")
    snapshot(data, ledger, "run_2")
    deployment(ledger, "v2.0.0", "run_2", state="failed")
    data_restores.move_alias(data, MODEL, ALIAS, 3)
    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    first = restore_model_alias(data, plan, MODEL, ALIAS)
    puts_before = sum(r.method == "PUT" for r in workspaces.requests("dev"))
    second = restore_model_alias(data, plan, MODEL, ALIAS)

    assert data_restores.alias_version(data, MODEL, ALIAS) == 1
    assert (first, second) == (
        f"{MODEL}@{ALIAS} moved back to version 1",
        f"{MODEL}@{ALIAS} already at version 1",
    )
    assert sum(r.method == "PUT" for r in workspaces.requests("dev")) == puts_before


def test_an_alias_created_by_the_undone_deploy_is_removed(api: Any, ledger: Ledger) -> None:
    api.call(
        "POST",
        "2.1/unity-catalog/models",
        body={"catalog_name": "main", "schema_name": "ml", "name": "churn"},
    )
    api.call("POST", "2.0/mlflow/unity-catalog/model-versions/create", body={"name": MODEL, "source": "s"})
    deployment(ledger, "v1.0.0", "run_1")
    record_data_snapshot(
        api, ledger, bundle=BUNDLE, environment="dev", run_id="run_2", policy=Rollback(models=POLICY.models)
    )
    deployment(ledger, "v2.0.0", "run_2", state="failed")
    data_restores.move_alias(api, MODEL, ALIAS, 1)

    restore_model_alias(api, plan_rollback(ledger, bundle=BUNDLE, environment="dev"), MODEL, ALIAS)

    assert data_restores.alias_version(api, MODEL, ALIAS) is None


def test_a_table_is_restored_once_and_checked_in_its_history(
    data: Any, ledger: Ledger, workspaces: WorkspaceEmulator
) -> None:
    deployment(ledger, "v1.0.0", "run_1")
    snapshot(data, ledger, "run_2")
    deployment(ledger, "v2.0.0", "run_2", state="failed")
    data_restores.execute_sql(data, WAREHOUSE, f"INSERT INTO {TABLE} VALUES (2), (3)")
    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    first = restore_table(data, plan, WAREHOUSE, TABLE)
    second = restore_table(data, plan, WAREHOUSE, TABLE)

    assert (first, second) == (f"{TABLE} restored to version 1", f"{TABLE} already at version 1")
    assert data_restores.execute_sql(data, WAREHOUSE, f"SELECT * FROM {TABLE}") == [{"id": "1"}]
    assert sum(s.startswith("RESTORE") for s in statements(workspaces)) == 1


def test_a_failed_statement_raises_with_the_warehouse_error(api: Any) -> None:
    with pytest.raises(RestoreFailed, match="TABLE_OR_VIEW_NOT_FOUND"):
        data_restores.table_version(api, WAREHOUSE, "main.sales.missing")


def test_a_full_refresh_already_started_since_is_reused(api: Any) -> None:
    pipeline_id = api.call("POST", "2.0/pipelines", body={"name": "orders"})["pipeline_id"]
    since = int(datetime.now(UTC).timestamp() * 1000) - 1

    first = data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=since)
    again = data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=since)

    assert again.update_id == first.update_id
    assert first.full_refresh


def test_a_refresh_of_selected_tables_is_not_mistaken_for_a_full_one(api: Any) -> None:
    pipeline_id = api.call("POST", "2.0/pipelines", body={"name": "orders"})["pipeline_id"]
    since = int(datetime.now(UTC).timestamp() * 1000) - 1
    full = data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=since)

    selected = data_restores.pipeline_refresh(api, pipeline_id, ("orders_clean",), not_before_ms=since)

    assert selected.update_id != full.update_id
    assert selected.refresh_selection == ("orders_clean",)


def test_a_failed_update_reports_its_error_event(api: Any) -> None:
    body = {
        "name": "orders",
        "configuration": {"emulator.update_result": "FAILED", "emulator.update_error": "boom"},
    }
    pipeline_id = api.call("POST", "2.0/pipelines", body=body)["pipeline_id"]
    update = data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=0)
    deadline = time.monotonic() + 5
    while not update.finished and time.monotonic() < deadline:
        update = data_restores.pipeline_update(api, pipeline_id, update.update_id)

    assert update.state == "FAILED"
    assert data_restores.pipeline_update_error(api, pipeline_id, update.update_id) == "boom"


def test_a_held_environment_refuses_promotions_and_says_how_to_clear_it(ledger: Ledger) -> None:
    deployment(ledger, "v1.0.0", "run_1")
    deployment(ledger, "v2.0.0", "run_2", state="failed")
    hold(ledger, plan_rollback(ledger, bundle=BUNDLE, environment="dev"), run_id="run_2")

    with pytest.raises(EnvironmentHeld, match=re.escape("redeploy v1.0.0 to dev")) as held:
        refuse_if_held(ledger, BUNDLE, "dev")

    assert "bundle-promotion hold clear example dev --reason" in str(held.value)


def test_a_cleared_environment_accepts_promotions_again(ledger: Ledger) -> None:
    ledger.hold_environment(BUNDLE, "dev", reason="rolled back", actor="bundle-promotion")
    ledger.clear_hold(BUNDLE, "dev", reason="fixed", actor="alice")

    refuse_if_held(ledger, BUNDLE, "dev")


def test_rolling_back_to_the_release_already_running_undoes_nothing(ledger: Ledger) -> None:
    deployment(ledger, "v0.9.0", "run_0")
    deployment(ledger, "v1.0.0", "run_1")

    plan = plan_rollback(ledger, bundle=BUNDLE, environment="dev")

    assert (plan.target_version, plan.rolled_back) == ("v1.0.0", None)


def test_the_pipeline_trigger_fires_with_the_failed_update_and_its_error(api: Any) -> None:
    from bundle_promotion.triggers.pipeline import PipelineUpdateTrigger

    body = {
        "name": "orders",
        "configuration": {"emulator.update_result": "FAILED", "emulator.update_error": "boom"},
    }
    pipeline_id = api.call("POST", "2.0/pipelines", body=body)["pipeline_id"]
    update = data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=0)
    trigger = PipelineUpdateTrigger(
        databricks_conn_id="databricks_dev",
        pipeline_id=pipeline_id,
        update_id=update.update_id,
        polling_period_seconds=0.05,
    )

    async def first_event() -> Any:
        return await anext(aiter(trigger.run()))

    event = asyncio.run(asyncio.wait_for(first_event(), timeout=10))

    assert event.payload == {"state": "FAILED", "update_id": update.update_id, "error": "boom"}


def spec(**prod_rollback: Any) -> Any:
    from bundle_promotion.spec import PromotionSpec

    environments = [
        {"name": name, "target": name, "databricks_conn_id": f"databricks_{name}", "schedules": "paused"}
        for name in ("staging", "prod")
    ]
    environments[1] |= {"tests": ["integration_tests"], "rollback": prod_rollback}
    return PromotionSpec.model_validate(
        {
            "bundle": BUNDLE,
            "source": {"repo": "https://github.com/acme/etl.git"},
            "environments": environments,
        }
    )


def test_the_automatic_rollback_runs_when_deploy_verify_or_tests_fail() -> None:
    from bundle_promotion.dags.factory import build_promotion_dag

    dag = build_promotion_dag(
        spec(tables=[TABLE], warehouse_id=WAREHOUSE, models=[{"name": MODEL, "alias": ALIAS}])
    )

    redeploy = dag.get_task("prod_rollback.redeploy")
    assert redeploy.trigger_rule == "one_failed"
    assert redeploy.upstream_task_ids == {
        "prod.deploy",
        "prod.verify",
        "prod.test_integration_tests",
        "prod.schedules",
    }
    assert dag.get_task("prod_rollback.hold").upstream_task_ids == {
        "prod_rollback.alias_main_ml_churn_champion",
        "prod_rollback.table_main_sales_orders",
    }
    assert dag.get_task("prod.deploy").upstream_task_ids == {"prod.prepare_rollback"}


def test_no_rollback_group_when_the_environment_opts_out() -> None:
    from bundle_promotion.dags.factory import build_promotion_dag

    dag = build_promotion_dag(spec(automatic=False))

    assert "prod_rollback" not in dag.task_group.children
    assert "staging_rollback" in dag.task_group.children


def test_the_manual_rollback_dag_asks_for_approval_where_the_spec_says_so() -> None:
    from bundle_promotion.dags.rollback import build_rollback_dag

    dag = build_rollback_dag(spec(require_approval=True, tables=[TABLE], warehouse_id=WAREHOUSE))

    assert set(dag.params) == {"environment", "target_version", "data_restores", "emergency"}
    assert dag.params["data_restores"] == [TABLE]
    assert dag.get_task("prod.redeploy").upstream_task_ids == {"prod.approval"}
    assert dag.get_task("staging.redeploy").upstream_task_ids == {"staging.requested"}
