"""What a waiting gate tells its task log: the release, each gate's need, who may approve, the board."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bundle_promotion import settings
from bundle_promotion.ledger.records import GateEvaluation, GateResult
from bundle_promotion.sensors.gate import GateSensor
from bundle_promotion.triggers.gate import waiting_message

DIGEST = "3f" * 32
QC = {"approval": {"groups": [{"name": "QC", "min": 2, "users": ["alice", "bob", "carol"], "role": "op"}]}}


def waiting(*results: GateResult) -> GateEvaluation:
    return GateEvaluation(
        bundle="sales",
        environment="prod",
        release_id=1,
        release_digest=DIGEST,
        version="v1.2.0",
        run_id="manual__1",
        triggered_by="carol",
        commit_authors=("Bob Builder", "bob@acme.example"),
        evaluated_at=datetime.now(UTC),
        results=results or (GateResult.waiting("approval", "0 of 2 QC approvals"),),
    )


@pytest.fixture(autouse=True)
def base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.acme.example/")
    monkeypatch.delenv("AIRFLOW__BUNDLE_PROMOTION__IDENTITIES_CONN_ID", raising=False)


def test_the_board_url_is_under_airflows_base_url() -> None:
    assert settings.board_url("sales & co", "prod") == (
        "https://airflow.acme.example/bundle-promotion/ui/?bundle=sales+%26+co&env=prod"
    )


def test_without_a_base_url_the_board_url_is_the_api_servers_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")

    assert (
        settings.board_url("sales", "prod")
        == "http://localhost:8080/bundle-promotion/ui/?bundle=sales&env=prod"
    )


def test_a_waiting_gate_names_the_release_each_need_who_may_approve_and_the_board() -> None:
    evaluation = waiting(
        GateResult.passed("previous_environment", "staging runs v1.2.0"),
        GateResult.waiting("approval", "0 of 2 QC approvals"),
    )

    message = waiting_message(evaluation, {"gates": [{"previous_environment": {}}, QC]})

    assert message.splitlines() == [
        f"Gates of prod hold v1.2.0 of sales (release digest {DIGEST}):",
        "  previous_environment: passed: staging runs v1.2.0",
        "  approval: waiting: 0 of 2 QC approvals",
        "  who may approve: QC: 2 of alice or role op; "
        "not bob (authored a commit of this release), carol (triggered this run)",
        "  release board: https://airflow.acme.example/bundle-promotion/ui/?bundle=sales&env=prod",
    ]


def test_without_an_approval_gate_no_one_is_named() -> None:
    message = waiting_message(
        waiting(GateResult.waiting("soak", "1h to go")), {"gates": [{"soak": {"duration": "2h"}}]}
    )

    assert "who may approve" not in message
    assert "  soak: waiting: 1h to go" in message


class TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def test_a_poking_gate_logs_the_wait_once_per_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import bundle_promotion.triggers.gate as trigger_module

    sensor = GateSensor(
        task_id="gates",
        bundle="sales",
        repo="/repo",
        environment="prod",
        previous_environment=None,
        gates=[QC],
        deferrable=False,
    )
    looks = iter(["0 of 2 QC approvals", "0 of 2 QC approvals", "1 of 2 QC approvals (have: alice)"])
    monkeypatch.setattr(sensor, "_check", lambda _context: None)
    monkeypatch.setattr(
        trigger_module,
        "evaluate_gates",
        lambda *_: waiting(GateResult.waiting("approval", next(looks))),
    )

    class Check:
        def to_json(self) -> dict[str, Any]:
            return {"gates": [QC]}

    for _ in range(3):
        sensor._evaluate({"ti": TaskInstance()}, Check())  # type: ignore[arg-type]

    logged = capsys.readouterr().out.split("Gates of prod hold")[1:]
    assert len(logged) == 2
    assert "approval: waiting: 1 of 2 QC approvals (have: alice)" in logged[1]


def test_a_deferred_gate_logs_the_wait_once_per_change_then_the_outcome(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    import bundle_promotion.triggers.gate as trigger_module
    from bundle_promotion.triggers.gate import GateTrigger

    looks = iter(
        [
            waiting(),
            waiting(),
            waiting(GateResult.waiting("approval", "1 of 2 QC approvals (have: alice)")),
            waiting(GateResult.passed("approval", "2 of 2 QC approvals (have: alice, dave)")),
        ]
    )
    trigger = GateTrigger(check={"gates": [QC]}, polling_period_seconds=0)
    monkeypatch.setattr(trigger, "_evaluate", lambda: next(looks))

    async def no_wait(_seconds: float) -> None:
        return None

    monkeypatch.setattr(trigger_module.asyncio, "sleep", no_wait)

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(events())

    assert event.payload["status"] == "passed"
    out = capsys.readouterr().out
    assert out.count("Gates of prod hold v1.2.0 of sales") == 2
    assert "Gates of prod: passed: 2 of 2 QC approvals (have: alice, dave)" in out
