"""Approvals and rejections of a release digest per environment, and the signature attempts behind them."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import select

from bundle_promotion.ledger.audit import append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.models import ApprovalRow, SignatureAttemptRow
from bundle_promotion.ledger.records import Approval, SignatureAttempt


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

    def record_signature_attempt(self, attempt: SignatureAttempt) -> None:
        with self._writes.begin() as session:
            session.add(
                SignatureAttemptRow(
                    bundle=attempt.bundle,
                    environment=attempt.environment,
                    release_digest=attempt.release_digest,
                    signer=attempt.signer,
                    succeeded=attempt.succeeded,
                    detail=attempt.detail,
                    attempted_at=attempt.attempted_at,
                )
            )
            append_event(
                session,
                actor=attempt.signer,
                action="signature.verified" if attempt.succeeded else "signature.refused",
                subject=f"{attempt.bundle}/{attempt.environment}",
                reason=attempt.detail,
                details={"release_digest": attempt.release_digest},
            )

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
