"""Notification deliveries: each event told to each receiver once, across retries and clears."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError

from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.models import NotificationDeliveryRow, now

DeliveryState = Literal["sending", "sent", "failed"]


@dataclass(frozen=True)
class NotificationDelivery:
    """One event (by its idempotency key) told to one receiver, and how that went."""

    event_key: str
    receiver: str
    event: str
    bundle: str
    environment: str
    state: DeliveryState
    detail: str | None
    attempted_at: datetime


class NotificationDeliveriesMixin(LedgerDatabase):
    """``Ledger`` methods for notification deliveries."""

    def claim_notification(
        self, *, event_key: str, receiver: str, event: str, bundle: str, environment: str
    ) -> bool:
        """Whether the caller should send: the event never went to this receiver, or its last try failed.

        The claim comes first, so a second process (a retry, a cleared task) finds it and stays
        silent: a receiver hears an event at most once, unless the send failed.
        """
        try:
            with self._writes.begin() as session:
                row = session.scalar(_delivery_query(event_key, receiver))
                if row is None:
                    session.add(
                        NotificationDeliveryRow(
                            event_key=event_key,
                            receiver=receiver,
                            event=event,
                            bundle=bundle,
                            environment=environment,
                            state="sending",
                            attempted_at=now(),
                        )
                    )
                    return True
                if row.state != "failed":
                    return False
                row.state, row.detail, row.attempted_at = "sending", None, now()
                return True
        except IntegrityError:  # another process claimed it at the same moment
            return False

    def record_notification_outcome(
        self, *, event_key: str, receiver: str, delivered: bool, detail: str | None = None
    ) -> None:
        with self._writes.begin() as session:
            session.execute(
                update(NotificationDeliveryRow)
                .filter_by(event_key=event_key, receiver=receiver)
                .values(state="sent" if delivered else "failed", detail=detail, attempted_at=now())
            )

    def notification_deliveries(self, bundle: str) -> list[NotificationDelivery]:
        """The bundle's deliveries, oldest first."""
        query = select(NotificationDeliveryRow).filter_by(bundle=bundle).order_by(NotificationDeliveryRow.id)
        with self._reads() as session:
            return [_to_delivery(row) for row in session.scalars(query)]


def _delivery_query(event_key: str, receiver: str) -> Select[NotificationDeliveryRow]:
    return select(NotificationDeliveryRow).filter_by(event_key=event_key, receiver=receiver)


def _to_delivery(row: NotificationDeliveryRow) -> NotificationDelivery:
    return NotificationDelivery(
        event_key=row.event_key,
        receiver=row.receiver,
        event=row.event,
        bundle=row.bundle,
        environment=row.environment,
        state=row.state,  # type: ignore[arg-type]
        detail=row.detail,
        attempted_at=row.attempted_at,
    )
