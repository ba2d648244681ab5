"""The spec's notifications section: receivers per event, and errors that name the file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_promotion.spec import load_spec
from bundle_promotion.spec.notifications import Event
from tests.spec.test_spec import VALID, spec_error, write_spec

SLACK = "airflow.providers.slack.notifications.slack.SlackNotifier"


def with_notifications(section: str) -> str:
    return VALID + "notifications:\n" + section


def test_receivers_are_named_per_event_and_all_hear_every_event(tmp_path: Path) -> None:
    spec = load_spec(
        write_spec(
            tmp_path,
            with_notifications(
                "  all:\n    - webhook: ops_webhook\n"
                "  gate_waiting:\n"
                f"    - notifier: {SLACK}\n"
                "      args: {slack_conn_id: slack, text: '{{ notification.text }}'}\n"
                "    - webhook: ops_webhook\n"
            ),
        )
    )

    waiting = spec.notifications.receivers(Event.GATE_WAITING)
    assert [(entry.webhook, entry.notifier) for entry in waiting] == [("ops_webhook", None), (None, SLACK)]
    assert [entry.webhook for entry in spec.notifications.receivers(Event.HELD)] == ["ops_webhook"]


def test_a_spec_without_notifications_tells_no_one(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, VALID))

    assert all(spec.notifications.receivers(event) == () for event in Event)


def test_every_event_has_its_field() -> None:
    from bundle_promotion.spec.notifications import Notifications

    assert {event.value for event in Event} <= set(Notifications.model_fields)


@pytest.mark.parametrize(
    ("section", "field", "fragment"),
    [
        pytest.param(
            "  gate_waits:\n    - webhook: ops\n",
            "notifications.gate_waits",
            "unknown key 'gate_waits'; did you mean 'gate_waiting'?",
            id="unknown-event",
        ),
        pytest.param(
            f"  held:\n    - webhook: ops\n      notifier: {SLACK}\n",
            "notifications.held[0]",
            "give exactly one of notifier (an import path, with args) or webhook (an HTTP connection id)",
            id="both-receivers",
        ),
        pytest.param(
            "  held:\n    - args: {channel: ops}\n",
            "notifications.held[0]",
            "give exactly one of notifier",
            id="no-receiver",
        ),
        pytest.param(
            "  approved:\n    - notifier: SlackNotifier\n",
            "notifications.approved[0].notifier",
            f"must be the import path of a notifier class, like {SLACK}; got 'SlackNotifier'",
            id="not-an-import-path",
        ),
        pytest.param(
            "  approved:\n    - webhook: ops\n      args: {channel: ops}\n",
            "notifications.approved[0].args",
            "args go to a notifier class; a webhook takes only endpoint",
            id="args-for-a-webhook",
        ),
        pytest.param(
            f"  approved:\n    - notifier: {SLACK}\n      endpoint: /hook\n",
            "notifications.approved[0].endpoint",
            "endpoint belongs to a webhook",
            id="endpoint-for-a-notifier",
        ),
    ],
)
def test_a_bad_receiver_names_the_file_the_field_and_the_fix(
    tmp_path: Path, section: str, field: str, fragment: str
) -> None:
    error = spec_error(tmp_path, with_notifications(section))

    assert error.file == str(tmp_path / "sales.yaml")
    assert error.field == field
    assert fragment in error.problem
