"""Notifications through the spec's receivers: Airflow notifiers by import path, or HTTP webhooks.

``SpecNotifier`` is the one implementation of ``lifecycle.notifications.Notifier``: the
promotion's tasks, the approvals API and the drift check all send through it. Each receiver
hears an event once: the delivery is claimed in the ledger under the event's idempotency key
before it is sent, so a retried or cleared task stays silent. A receiver that fails is logged
and recorded in the ledger, and never fails the task: the promotion matters more than its news.

The ``*Notifier`` classes are Airflow ``BaseNotifier``s the DAG factory sets as task callbacks;
they read the run's release from the ledger when they fire. Receivers are imported only then,
never while a DAG is parsed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier, Context

from bundle_promotion import settings
from bundle_promotion.lifecycle.notifications import Notification
from bundle_promotion.spec.notifications import Event, Notifications, NotifierEntry

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_SECONDS = 10


class SpecNotifier:
    """Sends a notification to the receivers ``notifications`` names for its event; never raises.

    :param notifications: the spec's notifications section
    :param context: the task's Airflow context, which notifier classes render their templates with
    """

    def __init__(self, notifications: Notifications, context: Mapping[str, Any] | None = None) -> None:
        self.notifications = notifications
        self.context = context or {}

    def send(self, notification: Notification) -> None:
        receivers = self.notifications.receivers(notification.event)
        if not receivers:
            return
        try:
            payload = notification.payload(settings.board_url(notification.bundle, notification.environment))
            for receiver in receivers:
                self._send_once(notification, receiver, payload)
        except Exception:
            log.exception("Could not notify of %s; the promotion goes on", notification.event_key)

    def _send_once(
        self, notification: Notification, receiver: NotifierEntry, payload: dict[str, Any]
    ) -> None:
        ledger = settings.ledger()
        claim = {"event_key": notification.event_key, "receiver": receiver.identity()}
        if not ledger.claim_notification(
            **claim,
            event=notification.event.value,
            bundle=notification.bundle,
            environment=notification.environment,
        ):
            log.info("%s already heard of %s; not sent again", claim["receiver"], notification.event_key)
            return
        try:
            _deliver(receiver, payload, self.context)
        except Exception as error:
            detail = _failure_detail(error)
            log.warning("Notifying %s of %s failed: %s", claim["receiver"], notification.event_key, detail)
            ledger.record_notification_outcome(**claim, delivered=False, detail=detail)
        else:
            log.info("Notified %s of %s", claim["receiver"], notification.event_key)
            ledger.record_notification_outcome(**claim, delivered=True)


def _deliver(receiver: NotifierEntry, payload: dict[str, Any], context: Mapping[str, Any]) -> None:
    if receiver.webhook is not None:
        from airflow.providers.http.hooks.http import HttpHook

        # The hook brings the connection's auth and headers; posting through its session ourselves
        # keeps the URL, which for chat webhooks is the secret, out of the logs.
        hook = HttpHook(method="POST", http_conn_id=receiver.webhook)
        session = hook.get_conn()
        response = session.post(
            hook.url_from_endpoint(receiver.endpoint), json=payload, timeout=WEBHOOK_TIMEOUT_SECONDS
        )
        response.raise_for_status()
        return
    from airflow.sdk.module_loading import import_string

    notifier = import_string(str(receiver.notifier))(**receiver.args)
    notifier({**context, "notification": payload})


def _failure_detail(error: Exception) -> str:
    """What the ledger and the log keep of a failed delivery: never the message of an HTTP error,
    which quotes the URL, nor a notifier's, which may quote its token."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return f"the receiver answered HTTP {status}"
    if isinstance(error, ImportError):
        return f"cannot import the notifier: {error}"
    from airflow.sdk.exceptions import AirflowNotFoundException

    if isinstance(error, AirflowNotFoundException):  # names the missing connection, nothing secret
        return str(error)
    return f"{type(error).__name__} (its message is not kept: it may quote the receiver's URL or token)"


class PromotionEventNotifier(BaseNotifier):
    """A task callback that tells the spec's receivers one event of an environment of this run.

    The event's key is the run (and the task, for a failed step), so a retried or cleared task
    never tells it twice.

    :param event: what happened
    :param bundle: the bundle's name
    :param environment: the environment it happened in
    :param notifications: the spec's notifications section
    :param release_task_id: the task whose XCom is the run's release id in the ledger
    """

    def __init__(
        self,
        *,
        event: Event,
        bundle: str,
        environment: str,
        notifications: Notifications,
        release_task_id: str = "release",
    ) -> None:
        super().__init__()
        self.event = event
        self.bundle = bundle
        self.environment = environment
        self.notifications = notifications
        self.release_task_id = release_task_id

    def notify(self, context: Context) -> None:
        if (why := self.why(context)) is not None:
            self.announce(context, why)

    def why(self, context: Context) -> str | None:
        """What the message says happened; None: nothing to tell."""
        raise NotImplementedError

    def key(self, context: Context) -> str:
        """The occurrence: once per run."""
        return str(context["run_id"])

    def announce(self, context: Context, why: str, *, event: Event | None = None, **extra: Any) -> None:
        """Send ``event`` (by default this notifier's) with the run's release; ``extra`` goes to
        ``Notification``, for example its recipients."""
        event = event or self.event
        try:
            version, digest = self._release(context)
        except Exception:  # the ledger out of reach: the news matters less than the task
            log.exception("Could not read the release to notify %s of %s", self.environment, event.value)
            return
        notification = Notification(
            event=event,
            bundle=self.bundle,
            environment=self.environment,
            version=version,
            digest=digest,
            why=why,
            key=self.key(context),
            details={"run_id": context["run_id"]},
            **extra,
        )
        SpecNotifier(self.notifications, context).send(notification)

    def _release(self, context: Context) -> tuple[str | None, str | None]:
        release_id = context["ti"].xcom_pull(task_ids=self.release_task_id)
        if release_id is None:
            return None, None
        release = settings.ledger().release(int(release_id))
        return release.version, release.digest


class GateWaitingNotifier(PromotionEventNotifier):
    """Called by the gate sensor when the environment's gates wait: tells the people who may approve.

    :param recipients: Airflow user ids who may approve
    :param recipient_roles: Airflow roles whose members may approve
    """

    def __init__(
        self, *, recipients: tuple[str, ...] = (), recipient_roles: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(event=Event.GATE_WAITING, **kwargs)
        self.recipients = recipients
        self.recipient_roles = recipient_roles

    def waiting(self, context: Context, summary: str) -> None:
        why = summary.removeprefix("waiting: ")  # the headline already says it waits
        self.announce(context, why, recipients=self.recipients, recipient_roles=self.recipient_roles)


class StepFailedNotifier(PromotionEventNotifier):
    """``on_failure_callback`` of deploy, verify and the tests: the step failed for good.

    A step that refused to act (a held environment, a superseded deployment) failed nothing new.
    """

    def why(self, context: Context) -> str | None:
        from bundle_promotion.operators.deployment_step import refused

        if refused(context):
            return None
        return f"{context['task'].task_id} failed: {context.get('exception')}"

    def key(self, context: Context) -> str:
        """Once per run and step."""
        return f"{super().key(context)}:{context['task'].task_id}"


class RollbackNotifier(PromotionEventNotifier):
    """``on_success_callback`` of the automatic rollback's hold: what was put back, and the hold."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(event=Event.ROLLED_BACK, **kwargs)

    def notify(self, context: Context) -> None:
        hold = settings.ledger().environment_hold(self.bundle, self.environment)
        if hold is None or hold.run_id != context["run_id"]:
            return  # a person already cleared this run's hold: old news
        self.announce(context, hold.reason)
        self.announce(
            context,
            f"no promotion enters {self.environment} until a person clears the hold with a reason "
            f"(bundle-promotion hold clear {self.bundle} {self.environment} --reason '...')",
            event=Event.HELD,
        )


class PromotedNotifier(PromotionEventNotifier):
    """``on_success_callback`` of a production environment's ``record``: the promotion is complete."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(event=Event.PROMOTED_TO_PRODUCTION, **kwargs)

    def why(self, context: Context) -> str | None:
        return f"{self.environment} runs it, verified and tested, since run {context['run_id']}"
