"""The gate task is an Airflow sensor: deferred it waits in the triggerer, poking it evaluates once."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk import BaseSensorOperator

from bundle_promotion.errors import GateFailed
from bundle_promotion.sensors.gate import GateSensor


def gate_sensor(**options: Any) -> GateSensor:
    return GateSensor(
        task_id="gates",
        bundle="example",
        repo="/repo",
        environment="prod",
        previous_environment="staging",
        gates=[{"approval": {"groups": [{"name": "QC", "min": 1}]}}],
        **options,
    )


def evaluated_as(sensor: GateSensor, monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    payload = {"status": status, "summary": f"{status}: 1 of 1 QC approvals", "results": []}
    monkeypatch.setattr(sensor, "_check", lambda _context: None)
    monkeypatch.setattr(sensor, "_evaluate", lambda _context, _check: payload)


class TaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_it_is_an_airflow_sensor_with_the_configured_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")

    assert isinstance(gate_sensor(), BaseSensorOperator)
    assert gate_sensor().deferrable
    assert not gate_sensor(deferrable=False).deferrable


@pytest.mark.parametrize(("status", "done"), [("waiting", False), ("passed", True)])
def test_a_poke_is_one_evaluation(monkeypatch: pytest.MonkeyPatch, status: str, done: bool) -> None:
    sensor = gate_sensor(deferrable=False)
    evaluated_as(sensor, monkeypatch, status)

    poked = sensor.poke({"ti": TaskInstance()})  # type: ignore[arg-type]

    assert poked.is_done is done
    assert (poked.xcom_value or {}).get("status") == (status if done else None)


def test_a_poke_that_finds_a_failed_gate_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = gate_sensor(deferrable=False)
    evaluated_as(sensor, monkeypatch, "failed")

    with pytest.raises(GateFailed, match="prod: failed: 1 of 1 QC approvals"):
        sensor.poke({"ti": TaskInstance()})  # type: ignore[arg-type]
