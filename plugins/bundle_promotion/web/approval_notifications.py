"""What the approvals API tells the spec's receivers: a decision given, a signer locked out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bundle_promotion.identity import person_or_none
from bundle_promotion.lifecycle.notifications import Notification
from bundle_promotion.operators.notifications import SpecNotifier
from bundle_promotion.spec.notifications import Event

if TYPE_CHECKING:
    from bundle_promotion.gates.approvals import ApprovalRequest
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.ledger.records import Approval
    from bundle_promotion.spec import PromotionSpec

_DECISIONS = {"approve": Event.APPROVED, "reject": Event.REJECTED}


def announce_decision(spec: PromotionSpec, approval: Approval, version: str | None) -> None:
    """An approval or a rejection; a withdrawn rejection is no news."""
    event = _DECISIONS.get(approval.decision)
    if event is None:
        return
    groups = ", ".join(approval.groups)
    SpecNotifier(spec.notifications).send(
        Notification(
            event=event,
            bundle=approval.bundle,
            environment=approval.environment,
            version=version,
            digest=approval.release_digest,
            why=f"{approval.approver} ({groups}): {approval.reason}",
            key=f"{approval.release_digest}:{approval.approver}:{approval.given_at.isoformat()}",
            details={"approver": approval.approver, "groups": list(approval.groups)},
        )
    )


def announce_lockout(
    spec: PromotionSpec, ledger: Ledger, request: ApprovalRequest, version: str | None
) -> None:
    """A refused signature that locked its signer out; the lockout is told once, however often they retry."""
    signer = person_or_none(request.approver)
    lockout = ledger.signature_lockout_seq(signer) if signer else None
    if lockout is None:
        return
    SpecNotifier(spec.notifications).send(
        Notification(
            event=Event.SIGNATURE_LOCKOUT,
            bundle=request.bundle,
            environment=request.environment,
            version=version,
            digest=request.release_digest,
            why=f"{signer} is locked out of signing after repeated failed signatures (21 CFR 11.300(d)); "
            f"an administrator lifts it with `bundle-promotion signature unlock {signer} --reason ...`",
            key=f"{signer}:{lockout}",
            details={"signer": signer},
        )
    )
