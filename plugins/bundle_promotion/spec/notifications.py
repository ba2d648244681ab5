"""The spec's notifications section: who hears of which event, through Airflow notifiers or webhooks."""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from bundle_promotion.spec.base import NonEmptyStr, _Frozen, _rule

# module.path.ClassName: at least one dot, every part a Python identifier.
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


class Event(StrEnum):
    """What a notification tells; each is a field of the spec's ``notifications`` section."""

    GATE_WAITING = "gate_waiting"
    APPROVED = "approved"
    REJECTED = "rejected"
    SIGNATURE_LOCKOUT = "signature_lockout"
    DEPLOY_FAILED = "deploy_failed"
    VERIFY_FAILED = "verify_failed"
    TEST_FAILED = "test_failed"
    ROLLED_BACK = "rolled_back"
    HELD = "held"
    DRIFT_FOUND = "drift_found"
    DRIFT_HEALED = "drift_healed"
    PROMOTED_TO_PRODUCTION = "promoted_to_production"


class NotifierEntry(_Frozen):
    """One receiver: an Airflow notifier class with its arguments, or a webhook behind an HTTP connection."""

    notifier: str | None = Field(
        default=None,
        description="Import path of an Airflow BaseNotifier subclass, for example "
        "airflow.providers.slack.notifications.slack.SlackNotifier; imported only when it sends.",
    )
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="The notifier's arguments; templated, with the message as {{ notification.text }} "
        "and its fields as {{ notification.bundle }}, {{ notification.version }}, ...",
    )
    webhook: NonEmptyStr | None = Field(
        default=None,
        description="An Airflow HTTP connection id: the message is POSTed to it as JSON "
        "(a text field, as Slack and Teams incoming webhooks read it, and every field of the event).",
    )
    endpoint: str = Field(default="", description="A path appended to the webhook connection's URL.")

    @field_validator("notifier")
    @classmethod
    def _import_path(cls, notifier: str | None) -> str | None:
        if notifier is not None and not _IMPORT_PATH.match(notifier):
            raise _rule(
                "must be the import path of a notifier class, like "
                f"airflow.providers.slack.notifications.slack.SlackNotifier; got '{notifier}'"
            )
        return notifier

    @model_validator(mode="after")
    def _one_receiver(self) -> NotifierEntry:
        if (self.notifier is None) == (self.webhook is None):
            raise _rule(
                "give exactly one of notifier (an import path, with args) or webhook (an HTTP connection id)"
            )
        if self.webhook is not None and self.args:
            raise _rule("args go to a notifier class; a webhook takes only endpoint", at=("args",))
        if self.notifier is not None and self.endpoint:
            raise _rule("endpoint belongs to a webhook; pass a notifier's settings in args", at=("endpoint",))
        return self

    def identity(self) -> str:
        """Names this receiver in the ledger, the same across parses of the same spec."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        name = self.notifier or f"webhook:{self.webhook}"
        return f"{name}#{hashlib.sha256(text.encode()).hexdigest()[:12]}"


_Receivers = tuple[NotifierEntry, ...]


def _receivers(description: str) -> Any:
    return Field(default=(), description=description)


class Notifications(_Frozen):
    """Who is told of what. ``all`` hears every event; each other field one event."""

    all: _Receivers = _receivers("Receivers of every event below.")
    gate_waiting: _Receivers = _receivers(
        "An environment's gates start waiting; the message names who may approve."
    )
    approved: _Receivers = _receivers("Someone approved a release for an environment.")
    rejected: _Receivers = _receivers("Someone rejected a release for an environment.")
    signature_lockout: _Receivers = _receivers("Failed Part 11 signatures locked a signer out.")
    deploy_failed: _Receivers = _receivers("A deploy failed for good (after its retries).")
    verify_failed: _Receivers = _receivers("Installation verification failed.")
    test_failed: _Receivers = _receivers("A test suite failed.")
    rolled_back: _Receivers = _receivers("The automatic rollback put the last known-good release back.")
    held: _Receivers = _receivers("The rollback held the environment until a person clears the hold.")
    drift_found: _Receivers = _receivers("What runs in an environment differs from its release.")
    drift_healed: _Receivers = _receivers("Drift was healed: the release or its schedules re-asserted.")
    promoted_to_production: _Receivers = _receivers(
        "A release completed its promotion into production: the environments marked production: true, "
        "or the last one when none is."
    )

    def receivers(self, event: Event) -> _Receivers:
        """Who hears ``event``: ``all``, then the event's own, each receiver once."""
        unique = {entry.identity(): entry for entry in (*self.all, *getattr(self, event.value))}
        return tuple(unique.values())
