"""The rollback's pipeline refresh never outlives its task: killed or timed out, it stops the update."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.lifecycle import data_restores
from bundle_promotion.operators.rollback import PipelineResetOperator
from bundle_promotion.testing.workspace import WorkspaceEmulator

# What Airflow's scheduler sends back to a task whose deferral ran past its timeout.
DEFERRAL_TIMED_OUT = {"next_method": "__fail__", "next_kwargs": {"error": "Trigger timeout"}}


class TaskInstance:
    """The XCom the operator pushes and pulls back after its deferral."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.values[key] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.values[key]


@pytest.fixture
def hour_long_refresh(workspaces: WorkspaceEmulator, monkeypatch: pytest.MonkeyPatch) -> WorkspaceHook:
    """The refresh the operator starts is an hour-long update of a real emulated pipeline.

    The rollback plan and the bundle's pipeline ids have their own tests; here the operator
    gets the update straight from the emulator.
    """
    api = WorkspaceHook("databricks_dev")
    body = {"name": "orders", "configuration": {"emulator.update_seconds": "3600"}}
    pipeline_id = api.call("POST", "2.0/pipelines", body=body)["pipeline_id"]

    def start(*args: Any, api: Any, **kwargs: Any) -> data_restores.PipelineUpdate:
        return data_restores.pipeline_refresh(api, pipeline_id, (), not_before_ms=0)

    monkeypatch.setattr("bundle_promotion.lifecycle.rollback.start_pipeline_refresh", start)
    monkeypatch.setattr(PipelineResetOperator, "plan", lambda self, context: None)
    return api


def deferred_reset(context: Any) -> tuple[PipelineResetOperator, Any]:
    operator = PipelineResetOperator(
        task_id="pipeline_orders",
        bundle="example",
        environment="dev",
        databricks_conn_id="databricks_dev",
        repo="https://example.com/r.git",
        target="dev",
        pipeline_key="orders",
        update_timeout=timedelta(minutes=5),
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    return operator, deferred.value.trigger


def update_state(api: WorkspaceHook, context: Any) -> str:
    started = context["ti"].values["pipeline_update"]
    return data_restores.pipeline_update(api, started["pipeline_id"], started["update_id"]).state


def test_killing_the_task_on_its_worker_stops_the_update(hour_long_refresh: WorkspaceHook) -> None:
    context: Any = {"ti": TaskInstance(), "run_id": "r"}
    operator, _ = deferred_reset(context)

    operator.on_kill()

    assert update_state(hour_long_refresh, context) == "CANCELED"


def test_killing_the_deferred_task_stops_the_update_from_the_triggerer(
    hour_long_refresh: WorkspaceHook,
) -> None:
    context: Any = {"ti": TaskInstance(), "run_id": "r"}
    _, trigger = deferred_reset(context)

    asyncio.run(trigger.on_kill())

    assert update_state(hour_long_refresh, context) == "CANCELED"


def test_an_update_past_its_timeout_is_stopped_and_the_task_fails(hour_long_refresh: WorkspaceHook) -> None:
    context: Any = {"ti": TaskInstance(), "run_id": "r"}
    operator, _ = deferred_reset(context)

    with pytest.raises(AirflowFailException, match=r"did not end within 0:05:00; stopped it"):
        operator.resume_execution(**DEFERRAL_TIMED_OUT, context=context)

    assert update_state(hour_long_refresh, context) == "CANCELED"


def test_an_update_that_ended_is_not_stopped_again(hour_long_refresh: WorkspaceHook) -> None:
    context: Any = {"ti": TaskInstance(), "run_id": "r"}
    deferred_reset(context)
    started = context["ti"].values["pipeline_update"]
    hour_long_refresh.call("POST", f"2.0/pipelines/{started['pipeline_id']}/stop")

    assert not data_restores.stop_pipeline_update(hour_long_refresh, **started)
