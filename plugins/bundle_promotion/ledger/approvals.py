"""Approvals and rejections of a release digest per environment, and the signature attempts behind them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from bundle_promotion.errors import BundlePromotionError
from bundle_promotion.ledger.audit import append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.models import ApprovalRow, AuditEventRow, SignatureAttemptRow
from bundle_promotion.ledger.records import Approval, SignatureAttempt, SignatureLockout

# Audit actions of a signer's lockout; the latest of the two says whether it is in force.
LOCKED_OUT = "signature.locked_out"
LOCKOUT_LIFTED = "signature.lockout_lifted"


class ApprovalsMixin(LedgerDatabase):
    """``Ledger`` methods for approvals and signature attempts."""

    def record_approval(self, approval: Approval) -> int:
        """Keep an approval or rejection, with its audit event; approvals are never changed."""
        with self._writes.begin() as session:
            row = _approval_row(approval)
            session.add(row)
            session.flush()
            append_event(
                session,
                actor=approval.approver,
                action=f"approval.{approval.decision}",
                subject=f"{approval.bundle}/{approval.environment}",
                reason=approval.reason,
                details=_approval_details(approval),
                record=row,
            )
            return row.id

    def approvals(self, bundle: str, environment: str) -> list[Approval]:
        """Every approval and rejection for the environment, oldest first."""
        query = (
            select(ApprovalRow)
            .where(ApprovalRow.bundle == bundle, ApprovalRow.environment == environment)
            .order_by(ApprovalRow.given_at, ApprovalRow.id)
        )
        with self._reads() as session:
            return [_to_approval(row) for row in session.scalars(query)]

    def record_signature_attempt(
        self, attempt: SignatureAttempt, lockout: SignatureLockout | None = None
    ) -> bool:
        """Keep the attempt; a failure that makes ``lockout``'s count locks the signer out, in the
        same transaction, so concurrent guesses cannot slip past the count. Whether the signer is
        locked out now."""
        with self._writes.begin() as session:
            row = SignatureAttemptRow(
                bundle=attempt.bundle,
                environment=attempt.environment,
                release_digest=attempt.release_digest,
                signer=attempt.signer,
                succeeded=attempt.succeeded,
                detail=attempt.detail,
                attempted_at=attempt.attempted_at,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                actor=attempt.signer,
                action="signature.verified" if attempt.succeeded else "signature.refused",
                subject=f"{attempt.bundle}/{attempt.environment}",
                reason=attempt.detail,
                details={"release_digest": attempt.release_digest},
                record=row,
            )
            if _locked_out(session, attempt.signer):
                return True
            if attempt.succeeded or lockout is None:
                return False
            failures = _failures_since(session, attempt.signer, attempt.attempted_at - lockout.within)
            if failures < lockout.attempts:
                return False
            append_event(
                session,
                actor=attempt.signer,
                action=LOCKED_OUT,
                subject=attempt.signer,
                reason=f"{failures} failed signature attempts within {lockout.within}: "
                "attempted unauthorised use (21 CFR 11.300(d))",
                details={"bundle": attempt.bundle, "environment": attempt.environment},
            )
            return True

    def last_signature_attempt_at(self, signer: str) -> datetime | None:
        """When ``signer`` last tried to sign, anywhere; None if never."""
        query = select(func.max(SignatureAttemptRow.attempted_at)).where(SignatureAttemptRow.signer == signer)
        with self._reads() as session:
            return session.scalar(query)

    def signature_locked_out(self, signer: str) -> bool:
        """Whether failed attempts locked ``signer`` out and no administrator has lifted it since."""
        with self._reads() as session:
            return _locked_out(session, signer)

    def signature_lockout_seq(self, signer: str) -> int | None:
        """The audit event that locked ``signer`` out, while the lockout stands; None when not locked out.

        Names one lockout: what notifications key on, so a locked signer's further tries tell no one again."""
        with self._reads() as session:
            latest = session.scalar(_lockout_events(signer).limit(1))
            return latest.seq if latest is not None and latest.action == LOCKED_OUT else None

    def lift_signature_lockout(
        self, signer: str, *, actor: str, reason: str, break_glass: bool = False
    ) -> bool:
        """An administrator lets ``signer`` sign again, as an audited action; False if not locked out.

        ``break_glass``: written straight to the ledger, not through the API; the event says so.
        """
        if not reason.strip():
            raise BundlePromotionError(f"lifting the signature lockout of {signer} needs a reason")
        with self._writes.begin() as session:
            if not _locked_out(session, signer):
                return False
            append_event(
                session,
                actor=actor,
                action=LOCKOUT_LIFTED,
                subject=signer,
                reason=reason,
                details={"break_glass": True} if break_glass else None,
            )
            return True

    def signature_attempts(self, bundle: str) -> list[SignatureAttempt]:
        """Oldest first."""
        query = (
            select(SignatureAttemptRow)
            .where(SignatureAttemptRow.bundle == bundle)
            .order_by(SignatureAttemptRow.attempted_at, SignatureAttemptRow.id)
        )
        with self._reads() as session:
            return [
                SignatureAttempt(
                    bundle=row.bundle,
                    environment=row.environment,
                    release_digest=row.release_digest,
                    signer=row.signer,
                    succeeded=row.succeeded,
                    detail=row.detail,
                    attempted_at=row.attempted_at,
                )
                for row in session.scalars(query)
            ]


def _lockout_events(signer: str) -> Select[Any]:
    return (
        select(AuditEventRow)
        .where(AuditEventRow.action.in_((LOCKED_OUT, LOCKOUT_LIFTED)), AuditEventRow.subject == signer)
        .order_by(AuditEventRow.seq.desc())
    )


def _locked_out(session: Session, signer: str) -> bool:
    latest = session.scalar(_lockout_events(signer).limit(1))
    return latest is not None and latest.action == LOCKED_OUT


def _failures_since(session: Session, signer: str, since: datetime) -> int:
    """Failed attempts of ``signer`` since ``since``, not counting those before the last lift."""
    lifted = session.scalar(_lockout_events(signer).where(AuditEventRow.action == LOCKOUT_LIFTED).limit(1))
    if lifted is not None:
        since = max(since, lifted.occurred_at)
    query = select(func.count()).where(
        SignatureAttemptRow.signer == signer,
        SignatureAttemptRow.succeeded.is_(False),
        SignatureAttemptRow.attempted_at >= since,
    )
    return session.scalar(query) or 0


def _approval_row(approval: Approval) -> ApprovalRow:
    return ApprovalRow(
        bundle=approval.bundle,
        environment=approval.environment,
        release_digest=approval.release_digest,
        approver=approval.approver,
        approver_name=approval.approver_name,
        decision=approval.decision,
        reason=approval.reason,
        given_at=approval.given_at,
        groups=canonical_json(list(approval.groups)),
        overrides_freeze=approval.overrides_freeze,
        signature=approval.signature,
        meaning=approval.meaning,
        source=approval.source,
    )


def _approval_details(approval: Approval) -> dict[str, Any]:
    """What the audit event keeps: with the signer's printed name, time and meaning (21 CFR 11.50)."""
    return {
        "release_digest": approval.release_digest,
        "approver_name": approval.approver_name,
        "given_at": approval.given_at.isoformat(),
        "groups": list(approval.groups),
        "overrides_freeze": approval.overrides_freeze,
        "signature": approval.signature,
        "meaning": approval.meaning,
        "source": approval.source,
    }


def _to_approval(row: ApprovalRow) -> Approval:
    return Approval(
        bundle=row.bundle,
        environment=row.environment,
        release_digest=row.release_digest,
        approver=row.approver,
        approver_name=row.approver_name,
        decision=cast(Any, row.decision),
        reason=row.reason,
        given_at=row.given_at,
        groups=tuple(json.loads(row.groups)),
        overrides_freeze=row.overrides_freeze,
        signature=cast(Any, row.signature),
        meaning=row.meaning,
        source=row.source,
    )
