"""Notifications reach the spec's receivers once per event, with the release and a link to the board,
and a receiver that fails never fails the task."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from bundle_promotion import settings
from bundle_promotion.errors import EnvironmentHeld
from bundle_promotion.ledger.records import Artifact, Release
from bundle_promotion.lifecycle.notifications import Notification
from bundle_promotion.operators.notifications import (
    GateWaitingNotifier,
    PromotedNotifier,
    RollbackNotifier,
    SpecNotifier,
    StepFailedNotifier,
)
from bundle_promotion.sensors.gate import GateSensor
from bundle_promotion.spec.notifications import Event, Notifications
from bundle_promotion.testing.webhook_sink import WebhookSink

WEBHOOK = Notifications.model_validate({"all": [{"webhook": "ops_webhook"}]})
BASE_URL = "https://airflow.example.com"


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", sink.airflow_connection_json())
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
        yield sink


def drift_found(bundle: str, key: str = "drift:1") -> Notification:
    return Notification(
        event=Event.DRIFT_FOUND,
        bundle=bundle,
        environment="prod",
        version="v1.2.0",
        digest="d" * 64,
        why="jobs.nightly: schedule.pause_status is PAUSED, the release says UNPAUSED",
        key=key,
    )


def test_a_webhook_gets_the_event_its_release_why_and_a_link_to_the_board(sink: WebhookSink) -> None:
    SpecNotifier(WEBHOOK).send(drift_found("notify_webhook"))

    [received] = sink.wait_for(1)
    board = f"{BASE_URL}/bundle-promotion/ui/?bundle=notify_webhook&env=prod"
    assert {key: received.body[key] for key in ("event", "bundle", "environment", "version", "digest")} == {
        "event": "drift_found",
        "bundle": "notify_webhook",
        "environment": "prod",
        "version": "v1.2.0",
        "digest": "d" * 64,
    }
    assert received.body["board_url"] == board
    assert received.body["text"] == (
        "[notify_webhook/prod] v1.2.0 (dddddddddddd) drift found: jobs.nightly: schedule.pause_status "
        f"is PAUSED, the release says UNPAUSED.\n{board}"
    )


def test_the_same_event_reaches_a_receiver_once(sink: WebhookSink) -> None:
    for _ in range(3):
        SpecNotifier(WEBHOOK).send(drift_found("notify_once"))
    SpecNotifier(WEBHOOK).send(drift_found("notify_once", key="drift:2"))

    assert [body["key"] for body in sink.payloads()] == [
        "drift_found:notify_once/prod:drift:1",
        "drift_found:notify_once/prod:drift:2",
    ]
    assert [d.state for d in settings.ledger().notification_deliveries("notify_once")] == ["sent", "sent"]


def test_only_the_receivers_of_the_event_hear_it(sink: WebhookSink) -> None:
    approvals_only = Notifications.model_validate({"approved": [{"webhook": "ops_webhook"}]})

    SpecNotifier(approvals_only).send(drift_found("notify_unasked"))

    assert sink.payloads() == []
    assert settings.ledger().notification_deliveries("notify_unasked") == []


def test_a_failing_receiver_is_logged_recorded_and_tried_again_by_the_next_send(
    sink: WebhookSink, caplog: pytest.LogCaptureFixture
) -> None:
    sink.answer_with(500)
    with caplog.at_level(logging.WARNING):
        SpecNotifier(WEBHOOK).send(drift_found("notify_down"))

    [delivery] = settings.ledger().notification_deliveries("notify_down")
    assert (delivery.state, delivery.detail) == ("failed", "the receiver answered HTTP 500")
    assert "the receiver answered HTTP 500" in caplog.text
    assert sink.url not in caplog.text  # a chat webhook's URL is its secret

    sink.answer_with(200)
    SpecNotifier(WEBHOOK).send(drift_found("notify_down"))

    assert len(sink.wait_for(2)) == 2
    assert [d.state for d in settings.ledger().notification_deliveries("notify_down")] == ["sent"]


def test_a_notifier_class_renders_the_message_in_its_templates(sink: WebhookSink) -> None:
    posting = Notifications.model_validate(
        {
            "drift_found": [
                {
                    "notifier": "tests.airflow.notifier_support.PostingNotifier",
                    "args": {"url": sink.url, "text": "{{ notification.bundle }}: {{ notification.why }}"},
                }
            ]
        }
    )

    SpecNotifier(posting).send(drift_found("notify_class"))

    assert sink.payloads() == [
        {"text": "notify_class: jobs.nightly: schedule.pause_status is PAUSED, the release says UNPAUSED"}
    ]


def test_a_notifier_that_cannot_be_imported_is_recorded_and_the_others_still_hear(sink: WebhookSink) -> None:
    missing_first = Notifications.model_validate(
        {"all": [{"notifier": "no_such_provider.notifications.Notifier"}, {"webhook": "ops_webhook"}]}
    )

    SpecNotifier(missing_first).send(drift_found("notify_missing"))

    assert len(sink.payloads()) == 1
    failed, sent = settings.ledger().notification_deliveries("notify_missing")
    assert (failed.state, sent.state) == ("failed", "sent")
    assert failed.detail == "cannot import the notifier: No module named 'no_such_provider'"


# The events of a promotion run, sent by task callbacks and the gate sensor.


class RunTaskInstance:
    """What the notifiers read of a task instance: the run's release id."""

    def __init__(self, release_id: int) -> None:
        self.release_id = release_id

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        assert task_ids == "release"
        return self.release_id

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def run_context(bundle: str, *, run_id: str = "manual__1", **extra: Any) -> Any:
    release = Release(bundle, "v1.2.0", "a" * 40, (Artifact("w", "dist/w", "b" * 64),), "c" * 64)
    return {"ti": RunTaskInstance(settings.ledger().record_release(release)), "run_id": run_id, **extra}


def about(bundle: str) -> dict[str, Any]:
    return {"bundle": bundle, "environment": "prod", "notifications": WEBHOOK}


@pytest.mark.parametrize("event", [Event.DEPLOY_FAILED, Event.VERIFY_FAILED, Event.TEST_FAILED])
def test_a_failed_step_is_told_once_with_its_error(sink: WebhookSink, event: Event) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator

    bundle = f"notify_{event.value}"
    context = run_context(bundle, task=EmptyOperator(task_id="step"), exception=RuntimeError("boom"))
    failed = StepFailedNotifier(event=event, **about(bundle))

    failed(context)
    failed(context)  # the task cleared, run again and failed again

    [body] = sink.payloads()
    assert (body["event"], body["version"], body["why"]) == (event.value, "v1.2.0", "step failed: boom")


def test_a_step_that_refused_a_held_environment_tells_nothing(sink: WebhookSink) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator

    context = run_context(
        "notify_refused", task=EmptyOperator(task_id="verify"), exception=EnvironmentHeld("prod is held")
    )

    StepFailedNotifier(event=Event.VERIFY_FAILED, **about("notify_refused"))(context)

    assert sink.payloads() == []


def test_the_gates_waiting_tell_who_may_approve_once_per_run(
    sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bundle_promotion.triggers import gate

    waiting = {"status": "waiting", "summary": "waiting: 0 of 1 QC approvals", "results": []}
    monkeypatch.setattr(gate, "evaluate_gates", lambda *_args: None)
    monkeypatch.setattr(gate, "event_payload", lambda _evaluation: waiting)
    monkeypatch.setattr(gate, "waiting_message", lambda *_args: "the gates wait")
    sensor = GateSensor(
        task_id="gates",
        bundle="notify_gates",
        repo="/repo",
        environment="prod",
        previous_environment="staging",
        gates=[{"approval": {"groups": [{"name": "QC", "users": ["alice"], "role": "op"}]}}],
        on_waiting=GateWaitingNotifier(
            recipients=("alice",), recipient_roles=("op",), **about("notify_gates")
        ),
    )
    context = run_context("notify_gates")

    check = SimpleNamespace(to_json=dict)
    for _ in range(2):  # the first evaluation, and the same task cleared and evaluated again
        sensor._evaluate(context, check)  # type: ignore[arg-type]

    [body] = sink.payloads()
    assert (body["event"], body["why"]) == ("gate_waiting", "0 of 1 QC approvals")
    assert body["recipients"] == {"users": ["alice"], "roles": ["op"]}
    assert "waits for approval: 0 of 1 QC approvals. To: alice, role op." in body["text"]


def test_the_automatic_rollback_tells_what_it_restored_and_the_hold_once(sink: WebhookSink) -> None:
    context = run_context("notify_rollback", run_id="manual__2")
    reason = "rolled back in run manual__2: v1.1.0 restored"
    settings.ledger().hold_environment(
        "notify_rollback", "prod", reason=reason, actor="bundle-promotion", run_id="manual__2"
    )
    rolled_back = RollbackNotifier(**about("notify_rollback"))

    rolled_back(context)
    rolled_back(context)  # the hold task cleared and run again

    assert [(body["event"], body["version"]) for body in sink.payloads()] == [
        ("rolled_back", "v1.2.0"),
        ("held", "v1.2.0"),
    ]
    assert sink.payloads()[0]["why"] == reason
    assert "bundle-promotion hold clear notify_rollback prod" in sink.payloads()[1]["why"]


def test_a_completed_production_promotion_is_told_once(sink: WebhookSink) -> None:
    context = run_context("notify_promoted")
    promoted = PromotedNotifier(**about("notify_promoted"))

    promoted(context)
    promoted(context)

    [body] = sink.payloads()
    assert (body["event"], body["environment"], body["version"]) == (
        "promoted_to_production",
        "prod",
        "v1.2.0",
    )


def test_a_ledger_out_of_reach_never_fails_the_waiting_gate(
    sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> Any:
        raise ConnectionError("the ledger database does not answer")

    context = run_context("notify_no_ledger")
    monkeypatch.setattr(settings, "ledger", unreachable)

    GateWaitingNotifier(**about("notify_no_ledger")).waiting(context, "waiting: 0 of 1 QC approvals")

    assert sink.payloads() == []


def test_the_factory_wires_each_event_to_the_task_that_tells_it() -> None:
    from bundle_promotion.dags.factory import promotion_dags
    from tests.conftest import PROJECT

    dag = promotion_dags(PROJECT / "include" / "promotions")["promote__example"]

    def callbacks(task_id: str, kind: str) -> list[Any]:
        found = getattr(dag.task_dict[task_id], f"on_{kind}_callback") or []
        return [(type(each).__name__, getattr(each, "event", None)) for each in found]

    waiting = dag.task_dict["prod.gates"].on_waiting
    assert (waiting.environment, waiting.recipients, waiting.recipient_roles) == ("prod", (), ("op",))
    assert ("StepFailedNotifier", Event.DEPLOY_FAILED) in callbacks("dev.deploy", "failure")
    assert ("StepFailedNotifier", Event.VERIFY_FAILED) in callbacks("dev.verify", "failure")
    assert ("StepFailedNotifier", Event.TEST_FAILED) in callbacks("dev.test_integration_tests", "failure")
    assert callbacks("dev_rollback.hold", "success") == [("RollbackNotifier", Event.ROLLED_BACK)]
    assert callbacks("prod.record", "success") == [("PromotedNotifier", Event.PROMOTED_TO_PRODUCTION)]
    assert callbacks("staging.record", "success") == []


def test_a_webhook_without_its_connection_is_recorded_naming_the_connection(sink: WebhookSink) -> None:
    undefined = Notifications.model_validate({"all": [{"webhook": "no_such_webhook"}]})

    SpecNotifier(undefined).send(drift_found("notify_no_connection"))

    [delivery] = settings.ledger().notification_deliveries("notify_no_connection")
    assert delivery.state == "failed"
    assert "no_such_webhook" in str(delivery.detail)


def test_drift_found_is_told_once_when_the_check_finds_something_new(
    sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from bundle_promotion.ledger.records import DriftFinding, DriftReport
    from bundle_promotion.lifecycle import drift
    from bundle_promotion.operators.drift import DriftCheckOperator

    finding = DriftFinding("resources.jobs.nightly", "schedule.pause_status", "PAUSED", "UNPAUSED")
    report = DriftReport("notify_drift", "prod", datetime.now(UTC), "v1.2.0", "d" * 64, (finding,))
    changes = iter([True, False])  # the second check finds the same drift: nothing new to tell
    monkeypatch.setattr(drift, "record_drift_check", lambda *_args, **_kwargs: (report, next(changes)))
    monkeypatch.setattr(DriftCheckOperator, "workspace", lambda self, **_kwargs: None)
    check = DriftCheckOperator(
        task_id="check",
        repo="/repo",
        target="prod",
        policy="paused",
        databricks_conn_id="databricks_prod",
        **about("notify_drift"),
    )

    for run_id in ("scheduled__1", "scheduled__2"):
        check.execute({"run_id": run_id})  # type: ignore[arg-type]

    [body] = sink.payloads()
    assert (body["event"], body["environment"], body["version"]) == ("drift_found", "prod", "v1.2.0")
    assert "schedule.pause_status is 'UNPAUSED', expected 'PAUSED'" in body["why"]
