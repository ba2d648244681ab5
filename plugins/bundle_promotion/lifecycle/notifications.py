"""What a notification says, and the one interface every part of bundle-promotion tells it through.

The core decides that something happened (a gate waits, a deploy failed, drift was found) and
builds a ``Notification``; a ``Notifier`` delivers it. The Airflow layer's implementation
(``operators.notifications.SpecNotifier``) sends it to the receivers the spec names for the
event, once per idempotency ``key``, and never raises: a failing receiver is logged and recorded
in the ledger, and the promotion goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bundle_promotion.spec.notifications import Event

_HEADLINES = {
    Event.GATE_WAITING: "waits for approval",
    Event.APPROVED: "approved",
    Event.REJECTED: "rejected",
    Event.SIGNATURE_LOCKOUT: "signature locked out",
    Event.DEPLOY_FAILED: "deploy failed",
    Event.VERIFY_FAILED: "verification failed",
    Event.TEST_FAILED: "tests failed",
    Event.ROLLED_BACK: "rolled back",
    Event.HELD: "held",
    Event.DRIFT_FOUND: "drift found",
    Event.DRIFT_HEALED: "drift healed",
    Event.PROMOTED_TO_PRODUCTION: "promoted to production",
}


@dataclass(frozen=True)
class Notification:
    """One event of one environment, as every receiver gets it.

    ``key`` names the occurrence among the environment's events of its kind: the same occurrence
    told again (a retried task, a cleared one) has the same key and reaches no receiver twice.
    Build it from what identifies the occurrence, such as the run id, never from a clock.
    ``recipients`` are the people the
    event is for (the approvers of a waiting gate), as Airflow user ids and roles.
    """

    event: Event
    bundle: str
    environment: str
    version: str | None
    digest: str | None
    why: str
    key: str
    recipients: tuple[str, ...] = ()
    recipient_roles: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_key(self) -> str:
        """The idempotency key of the event, unique across bundles, environments and events."""
        return f"{self.event.value}:{self.bundle}/{self.environment}:{self.key}"

    def text(self, board_url: str) -> str:
        """The message in one line and a link, for chat receivers."""
        release = f"{self.version} ({self.digest[:12]})" if self.version and self.digest else self.version
        people = [*self.recipients, *(f"role {role}" for role in self.recipient_roles)]
        to = f" To: {', '.join(people)}." if people else ""
        return (
            f"[{self.bundle}/{self.environment}] {release or 'no release'} {_HEADLINES[self.event]}: "
            f"{self.why}.{to}\n{board_url}"
        )

    def payload(self, board_url: str) -> dict[str, Any]:
        """The message as JSON: what a webhook receives, and ``notification`` in a notifier's templates."""
        return {
            "text": self.text(board_url),
            "event": self.event.value,
            "bundle": self.bundle,
            "environment": self.environment,
            "version": self.version,
            "digest": self.digest,
            "why": self.why,
            "board_url": board_url,
            "recipients": {"users": list(self.recipients), "roles": list(self.recipient_roles)},
            "key": self.event_key,
            "details": dict(self.details),
        }


class Notifier(Protocol):
    """Tells the receivers of a notification's event; never raises."""

    def send(self, notification: Notification) -> None: ...
