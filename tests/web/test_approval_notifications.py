"""The approvals API tells the spec's receivers of approvals, rejections and signature lockouts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bundle_promotion.ledger import Ledger
from bundle_promotion.testing.webhook_sink import WebhookSink
from tests.web.test_approvals_api import APPROVALS, SPEC, body, client, ledger, token, waiting_in_prod

__all__ = ["client", "ledger", "waiting_in_prod"]  # the approvals API's fixtures, used here

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def spec() -> dict[str, Any]:
    return {**SPEC, "notifications": {"all": [{"webhook": "ops_webhook"}]}}


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    with WebhookSink() as sink:
        monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", sink.airflow_connection_json())
        yield sink


@pytest.mark.parametrize(("decision", "event"), [("approve", "approved"), ("reject", "rejected")])
def test_a_decision_is_told_with_the_release_and_who_gave_it(
    client: Any, waiting_in_prod: str, sink: WebhookSink, decision: str, event: str
) -> None:
    response = client.post(
        APPROVALS.format("prod"), json=body(waiting_in_prod, decision=decision), headers=token("alice")
    )

    assert response.status_code == 201, response.text
    [told] = sink.payloads()
    assert (told["event"], told["environment"], told["version"], told["digest"]) == (
        event,
        "prod",
        "v1.0.0",
        waiting_in_prod,
    )
    assert told["why"] == "alice (QC): staging run checked"
    assert told["board_url"].endswith("/bundle-promotion/ui/?bundle=sales&env=prod")


def test_a_refused_approval_tells_no_one(client: Any, waiting_in_prod: str, sink: WebhookSink) -> None:
    response = client.post(APPROVALS.format("prod"), json=body(waiting_in_prod), headers=token("dag_test"))

    assert response.status_code == 403
    assert sink.payloads() == []


def test_a_signature_lockout_is_told_once_however_often_the_signer_tries(
    client: Any, ledger: Ledger, waiting_in_prod: str, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SIGNATURE_ATTEMPT_INTERVAL", "0")
    wrong = body(waiting_in_prod, meaning="approval", password="guess")

    for _ in range(5):  # the default lockout is 3 failures; the 4th and 5th tries find it locked
        response = client.post(APPROVALS.format("validation"), json=wrong, headers=token("alice"))
        assert response.status_code == 403

    [told] = sink.payloads()
    assert (told["event"], told["environment"], told["details"]) == (
        "signature_lockout",
        "validation",
        {"signer": "alice"},
    )
    assert "bundle-promotion signature unlock alice" in told["why"]
    assert "guess" not in str(told)
