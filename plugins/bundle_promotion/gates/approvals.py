"""Human approvals: who may approve a release for an environment, and when enough have.

A policy per environment names groups, each needing ``min`` distinct people, listed by
name or by Airflow role. An approval counts only for the exact release digest it names,
until it expires, when it carries a reason, and when its author is neither the person
who triggered the run nor an author of the release's commits. A rejection under the same
rules fails the gate. With ``signature: part11`` (21 CFR 11) every approval also records
the meaning of the signature, and the signer re-entered their password to give it.

People are compared by their one identity (``bundle_promotion.identity``): the auth
manager's user id, normalised once; a name that could impersonate counts for no one.
Approvals live in the ledger; other sources (GitHub reviews) plug in as
``ApprovalSource`` callables, and a GitHub login counts only as the user it is mapped to.
Never imports Airflow: the API checks passwords through a ``PasswordCheck`` the Airflow
layer provides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bundle_promotion.errors import ApprovalRefused, RejectionStands
from bundle_promotion.gates.contract import GateContext
from bundle_promotion.identity import IdentityMap, canonical_identity, folded, person_or_none
from bundle_promotion.ledger.records import (
    Approval,
    Decision,
    GateResult,
    Signature,
    SignatureAttempt,
    SignatureLockout,
)

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.spec import ApprovalGateSpec, ConnectionIdentitiesSpec

__all__ = [
    "Approval",
    "ApprovalGate",
    "ApprovalGroup",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalSource",
    "PasswordCheck",
    "SignatureAttempt",
    "eligible_groups",
    "freeze_overriders",
    "policy_from_spec",
    "submit_approval",
    "who_may_approve",
]

# 21 CFR 11.50(a)(3): the meaning of a signature.
SIGNATURE_MEANINGS = ("review", "approval", "responsibility", "authorship")


@dataclass(frozen=True)
class ApprovalGroup:
    name: str
    min: int
    users: tuple[str, ...] = ()
    role: str | None = None


@dataclass(frozen=True)
class ApprovalPolicy:
    groups: tuple[ApprovalGroup, ...]
    expires_after: timedelta | None = None
    allow_same_person_in_groups: bool = False
    signature: Signature = "none"
    identities: IdentityMap = field(default_factory=IdentityMap)
    lockout: SignatureLockout = field(default_factory=SignatureLockout)


@dataclass(frozen=True)
class ApprovalRequest:
    """What an approver submits; ``approver`` and ``roles`` come from the auth manager, never the body."""

    bundle: str
    environment: str
    release_digest: str
    approver: str
    approver_name: str
    roles: frozenset[str]
    decision: Decision
    reason: str
    overrides_freeze: bool = False
    meaning: str | None = None
    password: str | None = field(default=None, repr=False)


ApprovalSource = Callable[[GateContext], list[Approval]]
PasswordCheck = Callable[[str, str], bool]


@dataclass(frozen=True)
class ApprovalGate:
    """Passes when every group of ``policy`` has its quorum of counting approvals."""

    policy: ApprovalPolicy
    sources: tuple[ApprovalSource, ...] = ()
    name: str = "approval"

    def evaluate(self, context: GateContext) -> GateResult:
        approvals = [
            *context.ledger.approvals(context.bundle, context.environment),
            *(approval for source in self.sources for approval in source(context)),
        ]
        counting, ignored = _sort_out(approvals, self.policy, context)
        rejections = _standing_rejections(counting)
        if rejections:
            first = min(rejections, key=lambda a: a.given_at)
            return GateResult.failed(self.name, f"rejected by {first.approver}: {first.reason}")
        approvers = _latest_per_person([a for a in counting if a.decision == "approve"])
        quorum = _assign(approvers, self.policy)
        reason = "; ".join(
            _group_progress(group, quorum[group.name], self.policy.signature) for group in self.policy.groups
        )
        if ignored:
            reason += "; ignored: " + ", ".join(ignored)
        if all(len(quorum[group.name]) >= group.min for group in self.policy.groups):
            return GateResult.passed(self.name, reason)
        return GateResult.waiting(self.name, reason)


def policy_from_spec(
    spec: ApprovalGateSpec, connection: ConnectionIdentitiesSpec | None = None
) -> ApprovalPolicy:
    return ApprovalPolicy(
        groups=tuple(ApprovalGroup(g.name, g.min, tuple(g.users), g.role) for g in spec.groups),
        expires_after=spec.expires_after,
        allow_same_person_in_groups=spec.allow_same_person_in_groups,
        signature=spec.signature,
        identities=identities_from_spec(spec, connection),
        lockout=SignatureLockout(spec.signature_lockout.attempts, spec.signature_lockout.within),
    )


def identities_from_spec(
    spec: ApprovalGateSpec, connection: ConnectionIdentitiesSpec | None = None
) -> IdentityMap:
    """The gate's identity map: the connection's (``identities_conn_id``) under the spec's own.

    A user the spec maps is mapped by the spec alone; a login or address both give to
    different users is refused (``IdentityMap.of``), never settled by precedence.
    """
    users = {
        canonical_identity(user): (other.github, other.emails)
        for source in (connection.identities if connection else {}, spec.identities)
        for user, other in source.items()
    }
    return IdentityMap.of(users)


def eligible_groups(policy: ApprovalPolicy, approver: str, roles: frozenset[str]) -> tuple[str, ...]:
    """The policy's groups ``approver`` may approve for, by name or by one of their Airflow roles."""
    lowered = {role.lower() for role in roles}
    person = person_or_none(approver)
    return tuple(
        group.name
        for group in policy.groups
        if (person is not None and _member(person, group))
        or (group.role is not None and group.role.lower() in lowered)
    )


def submit_approval(
    ledger: Ledger,
    request: ApprovalRequest,
    policy: ApprovalPolicy,
    *,
    triggered_by: str | None,
    commit_authors: Sequence[str],
    check_password: PasswordCheck,
    now: datetime,
) -> Approval:
    """Check ``request`` against the policy, record it and return it; raises ``ApprovalRefused``.

    Refusing early tells the approver at once; the gate applies the same rules again when it
    counts, so a refusal here is a courtesy, not the control.
    """
    if not request.reason.strip():
        raise ApprovalRefused("a reason is required: say why you approve or reject this release")
    person = canonical_identity(request.approver)
    groups = eligible_groups(policy, person, request.roles)
    if not groups:
        raise ApprovalRefused(
            f"{person} is in none of the approval groups of {request.environment} "
            f"({', '.join(group.name for group in policy.groups)})"
        )
    if request.decision == "approve" and (
        excluded := _excluded(person, triggered_by, commit_authors, policy.identities)
    ):
        raise ApprovalRefused(f"{person} cannot approve: {excluded} (segregation of duties)")
    own = [
        a
        for a in ledger.approvals(request.bundle, request.environment)
        if a.release_digest == request.release_digest and person_or_none(a.approver) == person
    ]
    standing = _standing_rejections(own)
    if request.decision == "approve" and standing:
        raise RejectionStands(
            f"{person} rejected this release on {standing[0].given_at:%Y-%m-%d %H:%M} UTC "
            f"({standing[0].reason}); that rejection stands: withdraw it first "
            "(decision: withdraw, with a reason)"
        )
    if request.decision == "withdraw" and not standing:
        raise ApprovalRefused(f"{person} has no rejection of this release to withdraw")
    approval = Approval(
        bundle=request.bundle,
        environment=request.environment,
        release_digest=request.release_digest,
        approver=person,
        approver_name=request.approver_name,
        decision=request.decision,
        reason=request.reason.strip(),
        given_at=now,
        groups=groups,
        overrides_freeze=request.overrides_freeze,
    )
    if policy.signature == "part11":
        approval = _signed(ledger, approval, request, check_password, policy.lockout, now)
    ledger.record_approval(approval)
    return approval


def _signed(
    ledger: Ledger,
    approval: Approval,
    request: ApprovalRequest,
    check_password: PasswordCheck,
    lockout: SignatureLockout,
    now: datetime,
) -> Approval:
    """Re-authenticate the signer (21 CFR 11.200) and bind the meaning to the approval.

    The password is checked for the account as the auth manager spells it; the attempt is
    recorded under the signer's one identity."""
    if request.meaning not in SIGNATURE_MEANINGS:
        raise ApprovalRefused(
            f"a Part 11 signature needs its meaning, one of {', '.join(SIGNATURE_MEANINGS)}; "
            f"got {request.meaning!r}"
        )
    signer = approval.approver
    attempt = SignatureAttempt(
        bundle=request.bundle,
        environment=request.environment,
        release_digest=request.release_digest,
        signer=signer,
        succeeded=False,
        detail="locked out: attempted use of a locked signature",
        attempted_at=now,
    )
    if ledger.signature_locked_out(signer):
        # The password is not even checked: a locked signature cannot be guessed further.
        ledger.record_signature_attempt(attempt)
        raise ApprovalRefused(_locked_message(signer, lockout))
    verified = bool(request.password) and check_password(request.approver, request.password or "")
    detail = f"{request.decision} as {request.meaning}" if verified else "wrong password"
    locked = ledger.record_signature_attempt(replace(attempt, succeeded=verified, detail=detail), lockout)
    if locked:
        raise ApprovalRefused(_locked_message(signer, lockout))
    if not verified:
        raise ApprovalRefused(
            f"signature refused: the password of {signer} did not match; the attempt is recorded"
        )
    return replace(approval, signature="part11", meaning=request.meaning)


def _locked_message(signer: str, lockout: SignatureLockout) -> str:
    return (
        f"signature refused: {signer} is locked out of signing after {lockout.attempts} failed attempts "
        f"within {lockout.within}, recorded as attempted unauthorised use; an administrator lifts it "
        f"with `bundle-promotion signature unlock {signer} --reason ...`"
    )


def freeze_overriders(
    context: GateContext,
    since: datetime,
    identities: IdentityMap | None = None,
    expires_after: timedelta | None = None,
) -> list[str]:
    """Who lifted a freeze that began at ``since`` for this release: approvals saying so, given
    since and not expired."""
    known = identities or IdentityMap()
    return sorted(
        {
            person
            for approval in context.ledger.approvals(context.bundle, context.environment)
            if (person := person_or_none(approval.approver)) is not None
            and approval.overrides_freeze
            and approval.decision == "approve"
            and approval.release_digest == context.release.digest
            and approval.given_at >= since
            and (expires_after is None or context.now - approval.given_at < expires_after)
            and not _excluded(person, context.triggered_by, context.commit_authors, known)
        }
    )


def _sort_out(
    approvals: Sequence[Approval], policy: ApprovalPolicy, context: GateContext
) -> tuple[list[Approval], list[str]]:
    """The approvals that count, and why each of the others does not (for the gate's reason).

    Approvals of other digests are named only when given since the environment last changed:
    those were meant for a pending release; older ones belong to releases long promoted.
    """
    current = context.ledger.current_release(context.bundle, context.environment)
    changed_at = current[1].finished_at if current else None
    counting: list[Approval] = []
    ignored: dict[str, None] = {}  # ordered and without repeats
    for given in approvals:
        approval, why_not = _as_person(given, policy)
        why_not = why_not or _why_not_counted(approval, policy, context)
        if why_not is None:
            counting.append(approval)
        elif not why_not.startswith(_OTHER_DIGEST) or changed_at is None or approval.given_at > changed_at:
            ignored[f"{approval.approver} ({why_not})"] = None
    return counting, list(ignored)


_OTHER_DIGEST = "for another release digest"


def _as_person(approval: Approval, policy: ApprovalPolicy) -> tuple[Approval, str | None]:
    """The approval under its author's one identity, or why it has none: a GitHub login is a
    user only through the configured map, and a name that could impersonate is no one."""
    if approval.source.startswith("github:"):
        user = policy.identities.github_user(approval.approver)
        if user is None:
            return approval, "GitHub login mapped to no Airflow user in the approval gate's identities"
        return replace(approval, approver=user), None
    person = person_or_none(approval.approver)
    if person is None:
        return approval, "not one person's name: whitespace, invisible characters or mixed scripts"
    return replace(approval, approver=person), None


def _why_not_counted(approval: Approval, policy: ApprovalPolicy, context: GateContext) -> str | None:
    """None when it counts, else why not."""
    if approval.release_digest != context.release.digest:
        return f"{_OTHER_DIGEST} {approval.release_digest[:12]}"
    lasts = policy.expires_after
    if approval.decision == "approve" and lasts is not None and context.now - approval.given_at >= lasts:
        return f"expired {approval.given_at + lasts:%Y-%m-%d %H:%M} UTC"
    if not approval.reason.strip():
        return "no reason given"
    if approval.decision == "approve":
        excluded = _excluded(
            approval.approver, context.triggered_by, context.commit_authors, policy.identities
        )
        if excluded:
            return excluded
        if policy.signature == "part11" and approval.signature != "part11":
            return "not signed under Part 11"
    if not _groups_of(approval, policy):
        return "in no approval group"
    return None


def who_may_approve(policy: ApprovalPolicy, triggered_by: str | None, commit_authors: Sequence[str]) -> str:
    """In words, who may approve for each group, and which listed people segregation of duties excludes.

    For example ``QC: 2 of alice, bob or role op; not dag_test (triggered this run)``.
    """
    groups, excluded = [], {}
    for group in policy.groups:
        eligible = []
        for user in group.users:
            if why := _excluded(user, triggered_by, commit_authors, policy.identities):
                excluded[user] = why
            else:
                eligible.append(user)
        who = " or ".join(filter(None, (", ".join(eligible), f"role {group.role}" if group.role else "")))
        groups.append(f"{group.name}: {group.min} of {who or 'no one'}")
    if triggered_by and (person := folded(triggered_by.strip())) not in excluded:
        excluded[person] = "triggered this run"  # a role's members are not listed, but it holds for them too
    text = "; ".join(groups)
    if excluded:
        text += "; not " + ", ".join(f"{user} ({why})" for user, why in excluded.items())
    return text


def _excluded(
    person: str, triggered_by: str | None, commit_authors: Sequence[str], identities: IdentityMap
) -> str:
    """Why segregation of duties excludes ``person`` (a canonical identity), else ''."""
    if triggered_by and person == folded(triggered_by.strip()):
        return "triggered this run"
    if person in identities.people_of_authors(commit_authors):
        return "authored a commit of this release"
    return ""


def _standing_rejections(approvals: Sequence[Approval]) -> list[Approval]:
    """Each person's rejection not withdrawn by them since, oldest first: rejections never lapse."""
    last: dict[str, Approval] = {}
    for approval in sorted(approvals, key=lambda a: a.given_at):
        if approval.decision in ("reject", "withdraw"):
            last[approval.approver] = approval
    return sorted((a for a in last.values() if a.decision == "reject"), key=lambda a: a.given_at)


def _member(person: str, group: ApprovalGroup) -> bool:
    return person in {person_or_none(user) for user in group.users}


def _groups_of(approval: Approval, policy: ApprovalPolicy) -> list[str]:
    return [
        group.name
        for group in policy.groups
        if _member(approval.approver, group) or (group.role and group.name in approval.groups)
    ]


def _latest_per_person(approvals: Sequence[Approval]) -> dict[str, Approval]:
    latest: dict[str, Approval] = {}
    for approval in sorted(approvals, key=lambda a: a.given_at):
        latest[approval.approver] = approval
    return latest


def _assign(approvers: dict[str, Approval], policy: ApprovalPolicy) -> dict[str, list[str]]:
    """Who counts for which group: each person for one group only, unless the policy allows more.

    Filling ``min`` seats per group from people eligible for several groups is a bipartite
    matching; augmenting paths find the largest one, so no quorum is missed by a bad first pick.
    """
    eligible = {person: _groups_of(approval, policy) for person, approval in approvers.items()}
    if policy.allow_same_person_in_groups:
        return {
            group.name: sorted(p for p, groups in eligible.items() if group.name in groups)
            for group in policy.groups
        }
    seats = [(group.name, index) for group in policy.groups for index in range(group.min)]
    holder: dict[tuple[str, int], str] = {}

    def seat(person: str, tried: set[tuple[str, int]]) -> bool:
        for candidate in seats:
            if candidate[0] in eligible[person] and candidate not in tried:
                tried.add(candidate)
                if candidate not in holder or seat(holder[candidate], tried):
                    holder[candidate] = person
                    return True
        return False

    for person in sorted(eligible):
        seat(person, set())
    assigned: dict[str, list[str]] = {group.name: [] for group in policy.groups}
    for (group_name, _), person in holder.items():
        assigned[group_name].append(person)
    return {name: sorted(people) for name, people in assigned.items()}


def _group_progress(group: ApprovalGroup, people: list[str], signature: Signature) -> str:
    kind = "signed " if signature == "part11" else ""
    have = f" (have: {', '.join(people)})" if people else ""
    return f"{min(len(people), group.min)} of {group.min} {group.name} {kind}approvals{have}"
