"""The ledger claims each notification for each receiver once; only a failed delivery may be claimed again."""

from __future__ import annotations

from bundle_promotion.ledger import Ledger


def claim(ledger: Ledger, receiver: str = "webhook:ops") -> bool:
    return ledger.claim_notification(
        event_key="held:sales/prod:manual__1",
        receiver=receiver,
        event="held",
        bundle="sales",
        environment="prod",
    )


def test_an_event_is_claimed_once_per_receiver(ledger: Ledger) -> None:
    assert claim(ledger)
    assert not claim(ledger)  # still being sent by the first claimant
    ledger.record_notification_outcome(
        event_key="held:sales/prod:manual__1", receiver="webhook:ops", delivered=True
    )
    assert not claim(ledger)
    assert claim(ledger, receiver="slack")


def test_a_failed_delivery_may_be_claimed_again(ledger: Ledger) -> None:
    assert claim(ledger)
    ledger.record_notification_outcome(
        event_key="held:sales/prod:manual__1", receiver="webhook:ops", delivered=False, detail="HTTP 503"
    )
    [failed] = ledger.notification_deliveries("sales")
    assert (failed.state, failed.detail) == ("failed", "HTTP 503")

    assert claim(ledger)
    [retried] = ledger.notification_deliveries("sales")
    assert (retried.state, retried.detail) == ("sending", None)
