"""The quiet-window wait: its trigger polls the emulator over HTTP until no run is active."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk import BaseSensorOperator
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.errors import SchedulesNotQuiet
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.lifecycle.schedules import BundleResource
from bundle_promotion.sensors.quiet import WaitForQuietSensor
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.triggers.quiet import QuietTrigger

POLL_SECONDS = 0.2


@pytest.fixture
def api(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_prod", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()})


def start_run(api: WorkspaceHook, name: str, seconds: float) -> tuple[str, int]:
    job_id = str(api.call("POST", "2.2/jobs/create", body={"name": name})["job_id"])
    run = api.call(
        "POST",
        "2.2/jobs/run-now",
        body={"job_id": int(job_id), "job_parameters": {"emulator_run_seconds": str(seconds)}},
    )
    return job_id, int(run["run_id"])


def first_event(trigger: QuietTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first())


def start_update(api: WorkspaceHook, name: str, seconds: float) -> tuple[str, str]:
    body = {"name": name, "configuration": {"emulator.update_seconds": str(seconds)}}
    pipeline_id = str(api.call("POST", "2.0/pipelines", body=body)["pipeline_id"])
    update = api.call("POST", f"2.0/pipelines/{pipeline_id}/updates", body={})
    return pipeline_id, str(update["update_id"])


def quiet_trigger(job_ids: list[str], timeout: float, pipeline_ids: tuple[str, ...] = ()) -> QuietTrigger:
    return QuietTrigger(
        databricks_conn_id="databricks_prod",
        job_ids=job_ids,
        pipeline_ids=pipeline_ids,
        deadline=datetime.now(UTC) + timedelta(seconds=timeout),
        polling_period_seconds=POLL_SECONDS,
    )


def test_the_trigger_waits_for_a_running_job_and_fires_once_it_ends(api: WorkspaceHook) -> None:
    job_id, run_id = start_run(api, "nightly", seconds=1.5)
    started = time.monotonic()

    event = first_event(quiet_trigger([job_id], timeout=30))

    assert event == {"status": "quiet"}
    assert time.monotonic() - started >= 1.0
    run = api.call("GET", "2.2/jobs/runs/get", query={"run_id": run_id})
    assert run["state"]["life_cycle_state"] == "TERMINATED"


def test_the_trigger_fires_at_once_when_nothing_runs(api: WorkspaceHook) -> None:
    job_id = str(api.call("POST", "2.2/jobs/create", body={"name": "idle"})["job_id"])

    assert first_event(quiet_trigger([job_id], timeout=30)) == {"status": "quiet"}


def test_the_trigger_times_out_listing_what_still_runs(api: WorkspaceHook) -> None:
    job_id, run_id = start_run(api, "marathon", seconds=600)

    event = first_event(quiet_trigger([job_id], timeout=0.5))

    assert event["status"] == "timeout"
    [running] = event["running"]
    assert f"marathon run {run_id} (RUNNING)" in running
    api.call("POST", "2.2/jobs/runs/cancel", body={"run_id": run_id})


def test_the_trigger_waits_for_a_running_pipeline_update_and_fires_once_it_ends(api: WorkspaceHook) -> None:
    pipeline_id, update_id = start_update(api, "orders stream", seconds=1.5)
    started = time.monotonic()

    event = first_event(quiet_trigger([], timeout=30, pipeline_ids=(pipeline_id,)))

    assert event == {"status": "quiet"}
    assert time.monotonic() - started >= 1.0
    update = api.call("GET", f"2.0/pipelines/{pipeline_id}/updates/{update_id}")["update"]
    assert update["state"] == "COMPLETED"


def test_the_timeout_lists_a_running_pipeline_update_with_its_page(
    api: WorkspaceHook, workspaces: WorkspaceEmulator
) -> None:
    pipeline_id, update_id = start_update(api, "orders backfill", seconds=600)

    event = first_event(quiet_trigger([], timeout=0.5, pipeline_ids=(pipeline_id,)))

    page = f"{workspaces.base_url('prod')}/pipelines/{pipeline_id}/updates/{update_id}"
    assert event == {
        "status": "timeout",
        "running": [f"orders backfill update {update_id} (RUNNING): {page}"],
    }
    api.call("POST", f"2.0/pipelines/{pipeline_id}/stop")


def test_the_trigger_round_trips_through_its_serialized_form() -> None:
    trigger = quiet_trigger(["1", "2"], timeout=60, pipeline_ids=("p-1",))

    classpath, kwargs = trigger.serialize()

    assert classpath == "bundle_promotion.triggers.quiet.QuietTrigger"
    assert QuietTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_timeout_fails_the_sensor_naming_each_run_still_going() -> None:
    sensor = quiet_sensor(timeout=timedelta(minutes=1))
    running = ["[prod] nightly run 7 (RUNNING): http://workspace/#job/1/run/7"]

    with pytest.raises(SchedulesNotQuiet, match=r"still running after 0:01:00: \[prod\] nightly run 7"):
        sensor.execute_complete({}, {"status": "timeout", "running": running})  # type: ignore[arg-type]


def quiet_sensor(**options: Any) -> WaitForQuietSensor:
    return WaitForQuietSensor(
        task_id="quiet",
        bundle="example",
        repo="/repo",
        environment="prod",
        target="prod",
        databricks_conn_id="databricks_prod",
        **options,
    )


def test_it_is_an_airflow_sensor_deferrable_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(quiet_sensor(), BaseSensorOperator)
    assert quiet_sensor(deferrable=True).deferrable
    assert quiet_sensor(polling_period_seconds=5).poke_interval == 5
    assert quiet_sensor(timeout=timedelta(minutes=2)).timeout == 120


def test_poking_it_is_done_only_once_nothing_runs(
    api: WorkspaceHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, run_id = start_run(api, "nightly", seconds=600)
    sensor = quiet_sensor()
    nightly = BundleResource("nightly", job_id, "nightly", {}, kind="job")
    monkeypatch.setattr(sensor, "selected_resources", lambda _api: [nightly])

    while_running = sensor.poke({})  # type: ignore[arg-type]
    api.call("POST", "2.2/jobs/runs/cancel", body={"run_id": run_id})

    assert while_running is False
    assert sensor.poke({}) is True  # type: ignore[arg-type]
