"""The approval gate and submitting approvals: quorum, segregation of duties, digests, expiry, Part 11."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bundle_promotion.errors import ApprovalRefused, IdentityRefused, RejectionStands
from bundle_promotion.gates.approvals import (
    ApprovalGate,
    ApprovalGroup,
    ApprovalPolicy,
    ApprovalRequest,
    submit_approval,
)
from bundle_promotion.gates.contract import GateContext
from bundle_promotion.identity import IdentityMap
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import GateResult, SignatureLockout
from tests.gates.gate_support import approval, context, make_ledger, make_release

QC = ApprovalGroup("QC", 2, users=("alice", "bob", "carol", "dag_test", "release-bot"))
OPS = ApprovalGroup("ops", 1, role="Op")
POLICY = ApprovalPolicy(groups=(QC,), expires_after=timedelta(days=7))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return make_ledger(tmp_path)


@pytest.fixture
def prod(ledger: Ledger) -> GateContext:
    return context(ledger, make_release())


def evaluate(gate_context: GateContext, policy: ApprovalPolicy = POLICY) -> GateResult:
    return ApprovalGate(policy).evaluate(gate_context)


def test_one_of_two_approvals_waits_and_names_who_approved(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))

    result = evaluate(prod)

    assert result.status == "waiting"
    assert result.reason == "1 of 2 QC approvals (have: alice)"


def test_two_distinct_people_reach_the_quorum(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "bob"))

    assert evaluate(prod) == GateResult.passed("approval", "2 of 2 QC approvals (have: alice, bob)")


def test_the_same_person_approving_twice_counts_once(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "Alice"))

    assert evaluate(prod).reason == "1 of 2 QC approvals (have: alice)"


def test_the_person_who_triggered_the_run_cannot_approve(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "dag_test"))

    result = evaluate(prod)

    assert result.status == "waiting"
    assert result.reason == "1 of 2 QC approvals (have: alice); ignored: dag_test (triggered this run)"


def test_an_author_of_the_release_commits_cannot_approve(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "release-bot"))  # release-bot@example.com wrote the commit

    result = evaluate(prod)

    assert result.status == "waiting"
    assert result.reason.endswith("ignored: release-bot (authored a commit of this release)")


def test_an_approval_for_another_digest_is_ignored(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "bob", release_digest="f" * 64))

    result = evaluate(prod)

    assert result.status == "waiting"
    assert result.reason.endswith("ignored: bob (for another release digest ffffffffffff)")


def test_an_expired_approval_is_ignored(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "bob", given_at=prod.now - timedelta(days=8)))

    result = evaluate(prod)

    expired_at = prod.now - timedelta(days=1)
    assert result.status == "waiting"
    assert result.reason.endswith(f"ignored: bob (expired {expired_at:%Y-%m-%d %H:%M} UTC)")


def test_an_approval_without_a_reason_is_ignored(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice", reason=" "))

    assert evaluate(prod).reason == "0 of 2 QC approvals; ignored: alice (no reason given)"


def test_a_rejection_fails_the_gate_with_the_rejector_and_reason(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "bob", decision="reject", reason="row counts are off by 3%"))
    ledger.record_approval(approval(prod, "carol"))

    assert evaluate(prod) == GateResult.failed("approval", "rejected by bob: row counts are off by 3%")


def test_a_rejection_of_another_digest_does_not_fail_the_gate(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "bob", decision="reject", release_digest="f" * 64))

    assert evaluate(prod).status == "waiting"


def test_one_person_counts_for_one_group_only(ledger: Ledger, prod: GateContext) -> None:
    policy = ApprovalPolicy(
        groups=(ApprovalGroup("QC", 1, users=("alice",)), ApprovalGroup("QA", 1, users=("alice", "bob")))
    )
    ledger.record_approval(approval(prod, "alice"))

    assert evaluate(prod, policy).reason == "1 of 1 QC approvals (have: alice); 0 of 1 QA approvals"

    ledger.record_approval(approval(prod, "bob"))
    assert evaluate(prod, policy) == GateResult.passed(
        "approval", "1 of 1 QC approvals (have: alice); 1 of 1 QA approvals (have: bob)"
    )


def test_one_person_may_count_for_several_groups_when_the_policy_allows(
    ledger: Ledger, prod: GateContext
) -> None:
    policy = ApprovalPolicy(
        groups=(ApprovalGroup("QC", 1, users=("alice",)), ApprovalGroup("QA", 1, users=("alice",))),
        allow_same_person_in_groups=True,
    )
    ledger.record_approval(approval(prod, "alice"))

    assert evaluate(prod, policy).status == "passed"


def test_a_role_group_counts_approvals_the_auth_manager_placed_in_it(
    ledger: Ledger, prod: GateContext
) -> None:
    policy = ApprovalPolicy(groups=(OPS,))
    ledger.record_approval(approval(prod, "dave"))
    assert evaluate(prod, policy).reason == "0 of 1 ops approvals; ignored: dave (in no approval group)"

    ledger.record_approval(approval(prod, "erin", groups=("ops",)))
    assert (
        evaluate(prod, policy).reason
        == "1 of 1 ops approvals (have: erin); ignored: dave (in no approval group)"
    )


def test_a_part11_policy_ignores_unsigned_approvals(ledger: Ledger, prod: GateContext) -> None:
    policy = replace(POLICY, signature="part11")
    ledger.record_approval(approval(prod, "alice", signature="part11", meaning="approval"))
    ledger.record_approval(approval(prod, "bob"))

    assert evaluate(prod, policy).reason == (
        "1 of 2 QC signed approvals (have: alice); ignored: bob (not signed under Part 11)"
    )


def test_a_github_review_counts_as_the_airflow_user_its_login_is_mapped_to(
    ledger: Ledger, prod: GateContext
) -> None:
    ledger.record_approval(approval(prod, "alice"))
    policy = replace(POLICY, identities=IdentityMap.of({"bob": (["bob-gh"], [])}))
    gate = ApprovalGate(policy, sources=(lambda c: [approval(c, "Bob-GH", source="github:review/1")],))

    assert gate.evaluate(prod) == GateResult.passed("approval", "2 of 2 QC approvals (have: alice, bob)")


def test_a_github_review_of_an_unmapped_login_counts_for_no_one(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "alice"))
    gate = ApprovalGate(POLICY, sources=(lambda c: [approval(c, "bob", source="github:review/1")],))

    assert gate.evaluate(prod) == GateResult.waiting(
        "approval",
        "1 of 2 QC approvals (have: alice); "
        "ignored: bob (GitHub login mapped to no Airflow user in the approval gate's identities)",
    )


def request(prod: GateContext, approver: str, **changes: object) -> ApprovalRequest:
    base = ApprovalRequest(
        bundle=prod.bundle,
        environment=prod.environment,
        release_digest=prod.release.digest,
        approver=approver,
        approver_name=approver.title(),
        roles=frozenset({"Op"}),
        decision="approve",
        reason="checked the staging run",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def submit(
    ledger: Ledger, prod: GateContext, req: ApprovalRequest, policy: ApprovalPolicy = POLICY
) -> object:
    return submit_approval(
        ledger,
        req,
        policy,
        triggered_by=prod.triggered_by,
        commit_authors=prod.commit_authors,
        check_password=lambda user, password: (user, password) == ("alice", "s3cret"),
        now=prod.now,
    )


def test_submitting_records_the_approval_with_the_groups_it_counts_for(
    ledger: Ledger, prod: GateContext
) -> None:
    submit(ledger, prod, request(prod, "erin"), ApprovalPolicy(groups=(QC, OPS)))

    [recorded] = ledger.approvals("sales", "prod")
    assert (recorded.approver, recorded.approver_name, recorded.groups) == ("erin", "Erin", ("ops",))


def test_submitting_as_the_triggering_user_is_refused_and_not_recorded(
    ledger: Ledger, prod: GateContext
) -> None:
    with pytest.raises(ApprovalRefused, match="dag_test cannot approve: triggered this run"):
        submit(ledger, prod, request(prod, "dag_test"))
    assert ledger.approvals("sales", "prod") == []


def test_submitting_without_a_reason_is_refused(ledger: Ledger, prod: GateContext) -> None:
    with pytest.raises(ApprovalRefused, match="a reason is required"):
        submit(ledger, prod, request(prod, "alice", reason=""))


def test_submitting_outside_every_group_is_refused(ledger: Ledger, prod: GateContext) -> None:
    with pytest.raises(ApprovalRefused, match=r"zoe is in none of the approval groups of prod \(QC\)"):
        submit(ledger, prod, request(prod, "zoe", roles=frozenset({"Viewer"})))


def test_a_part11_signature_with_a_wrong_password_is_refused_and_recorded(
    ledger: Ledger, prod: GateContext
) -> None:
    policy = replace(POLICY, signature="part11")

    with pytest.raises(ApprovalRefused, match="signature refused"):
        submit(ledger, prod, request(prod, "alice", meaning="approval", password="wrong"), policy)

    assert ledger.approvals("sales", "prod") == []
    [attempt] = ledger.signature_attempts("sales")
    assert (attempt.signer, attempt.succeeded, attempt.detail) == ("alice", False, "wrong password")


def test_a_part11_signature_records_its_meaning(ledger: Ledger, prod: GateContext) -> None:
    policy = replace(POLICY, signature="part11")

    submit(ledger, prod, request(prod, "alice", meaning="responsibility", password="s3cret"), policy)

    [recorded] = ledger.approvals("sales", "prod")
    assert (recorded.signature, recorded.meaning) == ("part11", "responsibility")
    assert [a.succeeded for a in ledger.signature_attempts("sales")] == [True]
    [event] = [e for e in ledger.audit_events() if e.action == "approval.approve"]
    assert event.details["meaning"] == "responsibility"


def test_a_part11_signature_needs_a_meaning(ledger: Ledger, prod: GateContext) -> None:
    with pytest.raises(ApprovalRefused, match="needs its meaning, one of review, approval"):
        submit(ledger, prod, request(prod, "alice", password="s3cret"), replace(POLICY, signature="part11"))


def test_approvals_of_releases_promoted_before_are_not_listed(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(approval(prod, "bob", release_digest="e" * 64))
    old = context(ledger, make_release("v0.9.0", config_digest="0" * 64))
    deployment_id = ledger.start_deployment(
        bundle="sales", environment="prod", target="prod", release_id=old.release_id, run_id="old"
    )
    ledger.finish_deployment(deployment_id, "succeeded")

    assert evaluate(prod).reason == "0 of 2 QC approvals"


# Issue 11, section 1: one person is one identity.
LOOK_ALIKES = {
    "trailing space": "alice ",
    "leading space": " alice",
    "dotted capital I": "al\u0130ce",
    "Cyrillic a": "\u0430lice",
    "zero-width space": "ali\u200bce",
    "right-to-left mark": "alice\u200f",
}


@pytest.mark.parametrize("look_alike", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_look_alike_of_an_approver_is_no_second_person(
    ledger: Ledger, prod: GateContext, look_alike: str
) -> None:
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, look_alike))

    result = evaluate(prod)

    assert result.status == "waiting"
    assert result.reason.startswith("1 of 2 QC approvals (have: alice); ignored: ")


@pytest.mark.parametrize("look_alike", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_submitting_as_a_look_alike_is_refused(ledger: Ledger, prod: GateContext, look_alike: str) -> None:
    with pytest.raises(IdentityRefused, match="user name"):
        submit(ledger, prod, request(prod, look_alike))
    assert ledger.approvals("sales", "prod") == []


@pytest.mark.parametrize(
    "variant", ["Alice", "ALICE", "\uff41\uff4c\uff49\uff43\uff45"], ids=["title", "upper", "fullwidth"]
)
def test_case_and_width_variants_are_the_same_person(ledger: Ledger, prod: GateContext, variant: str) -> None:
    submit(ledger, prod, request(prod, "alice"))
    submit(ledger, prod, request(prod, variant))

    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice", "alice"]
    assert evaluate(prod).reason == "1 of 2 QC approvals (have: alice)"


def test_the_triggering_user_spelled_with_a_cyrillic_letter_cannot_approve(
    ledger: Ledger, prod: GateContext
) -> None:
    carol_run = replace(prod, triggered_by="carol")

    with pytest.raises(IdentityRefused, match="mixes scripts"):
        submit(ledger, carol_run, request(carol_run, "\u0441arol"))
    ledger.record_approval(approval(carol_run, "\u0441arol"))
    assert "ignored: \u0441arol (not one person's name" in evaluate(carol_run).reason


def test_the_triggering_user_in_another_case_cannot_approve(ledger: Ledger, prod: GateContext) -> None:
    with pytest.raises(ApprovalRefused, match="dag_test cannot approve: triggered this run"):
        submit(ledger, replace(prod, triggered_by="DAG_TEST"), request(prod, "dag_test"))


def test_a_commit_author_is_excluded_by_the_email_address_mapped_to_them(
    ledger: Ledger, prod: GateContext
) -> None:
    mallory = ApprovalGroup("QC", 1, users=("mallory", "alice"))
    policy = ApprovalPolicy(
        groups=(mallory,), identities=IdentityMap.of({"mallory": ([], ["mallory.dev@corp.example"])})
    )
    release_by_mallory = replace(prod, commit_authors=("Mallory Dev", "Mallory.Dev@corp.example"))

    with pytest.raises(ApprovalRefused, match="mallory cannot approve: authored a commit of this release"):
        submit(ledger, release_by_mallory, request(release_by_mallory, "mallory"), policy)
    ledger.record_approval(approval(release_by_mallory, "mallory"))
    assert evaluate(release_by_mallory, policy).reason == (
        "0 of 1 QC approvals; ignored: mallory (authored a commit of this release)"
    )


def test_group_members_listed_in_another_form_are_matched_by_identity(
    ledger: Ledger, prod: GateContext
) -> None:
    policy = ApprovalPolicy(groups=(ApprovalGroup("QC", 1, users=("Erin",)),))

    submit(ledger, prod, request(prod, "erin", roles=frozenset()), policy)

    assert evaluate(prod, policy).reason == "1 of 1 QC approvals (have: erin)"


# Issue 11, section 2: Part 11 signatures resist guessing (21 CFR 11.300(d)).
PART11 = replace(POLICY, signature="part11")


def sign(ledger: Ledger, prod: GateContext, password: str, policy: ApprovalPolicy = PART11) -> object:
    return submit(ledger, prod, request(prod, "alice", meaning="approval", password=password), policy)


def guess_wrong(ledger: Ledger, prod: GateContext, times: int, policy: ApprovalPolicy = PART11) -> None:
    for _ in range(times):
        with pytest.raises(ApprovalRefused):
            sign(ledger, prod, "guess", policy)


def test_three_failed_signatures_lock_the_signer_out_even_with_the_right_password(
    ledger: Ledger, prod: GateContext
) -> None:
    guess_wrong(ledger, prod, 3)

    with pytest.raises(ApprovalRefused, match="alice is locked out of signing after 3 failed attempts"):
        sign(ledger, prod, "s3cret")

    assert ledger.approvals("sales", "prod") == []
    assert [a.detail for a in ledger.signature_attempts("sales")] == [
        *["wrong password"] * 3,
        "locked out: attempted use of a locked signature",
    ]
    [locked] = [e for e in ledger.audit_events() if e.action == "signature.locked_out"]
    assert (locked.actor, locked.subject) == ("alice", "alice")
    assert "attempted unauthorised use" in (locked.reason or "")


def test_two_failed_signatures_do_not_lock_the_signer_out(ledger: Ledger, prod: GateContext) -> None:
    guess_wrong(ledger, prod, 2)

    sign(ledger, prod, "s3cret")

    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice"]


def test_failures_outside_the_window_do_not_count(ledger: Ledger, prod: GateContext) -> None:
    guess_wrong(ledger, replace(prod, now=prod.now - timedelta(minutes=16)), 2)
    guess_wrong(ledger, prod, 2)

    sign(ledger, prod, "s3cret")

    assert not ledger.signature_locked_out("alice")


def test_the_lockout_threshold_is_configurable(ledger: Ledger, prod: GateContext) -> None:
    lenient = replace(PART11, lockout=SignatureLockout(attempts=5, within=timedelta(minutes=15)))
    guess_wrong(ledger, prod, 4, lenient)

    sign(ledger, prod, "s3cret", lenient)

    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice"]


def test_an_administrator_lifts_the_lockout_with_an_audited_action(ledger: Ledger, prod: GateContext) -> None:
    guess_wrong(ledger, prod, 3)

    assert ledger.lift_signature_lockout("alice", actor="admin", reason="alice reset her password")
    sign(ledger, prod, "s3cret")

    assert [a.approver for a in ledger.approvals("sales", "prod")] == ["alice"]
    [lifted] = [e for e in ledger.audit_events() if e.action == "signature.lockout_lifted"]
    assert (lifted.actor, lifted.subject, lifted.reason) == ("admin", "alice", "alice reset her password")


def test_after_a_lift_only_new_failures_count(ledger: Ledger, prod: GateContext) -> None:
    guess_wrong(ledger, prod, 3)
    ledger.lift_signature_lockout("alice", actor="admin", reason="verified by phone")

    guess_wrong(ledger, prod, 1)

    assert not ledger.signature_locked_out("alice")


# Issue 11, section 3: a rejection stands until its author withdraws it.
def test_a_rejection_does_not_lapse_when_approvals_expire(ledger: Ledger, prod: GateContext) -> None:
    ledger.record_approval(
        approval(
            prod, "carol", decision="reject", reason="breaks finance", given_at=prod.now - timedelta(days=30)
        )
    )
    ledger.record_approval(approval(prod, "alice"))
    ledger.record_approval(approval(prod, "bob"))

    assert evaluate(prod) == GateResult.failed("approval", "rejected by carol: breaks finance")


def test_approving_over_ones_own_standing_rejection_is_refused(ledger: Ledger, prod: GateContext) -> None:
    submit(ledger, prod, request(prod, "carol", decision="reject", reason="breaks finance"))

    with pytest.raises(
        RejectionStands, match=r"carol rejected this release .* that rejection stands: withdraw it"
    ):
        submit(ledger, prod, request(prod, "carol"))
    assert [a.decision for a in ledger.approvals("sales", "prod")] == ["reject"]


def test_a_withdrawn_rejection_no_longer_fails_the_gate(ledger: Ledger, prod: GateContext) -> None:
    submit(ledger, prod, request(prod, "carol", decision="reject", reason="breaks finance"))
    submit(ledger, prod, request(prod, "carol", decision="withdraw", reason="finance signed off"))
    submit(ledger, prod, request(prod, "carol"))
    submit(ledger, prod, request(prod, "alice"))

    assert evaluate(prod) == GateResult.passed("approval", "2 of 2 QC approvals (have: alice, carol)")
    assert [e.action for e in ledger.audit_events()][-3:] == [
        "approval.withdraw",
        "approval.approve",
        "approval.approve",
    ]


def test_there_is_nothing_to_withdraw_without_a_rejection(ledger: Ledger, prod: GateContext) -> None:
    with pytest.raises(ApprovalRefused, match="carol has no rejection of this release to withdraw"):
        submit(ledger, prod, request(prod, "carol", decision="withdraw", reason="changed my mind"))
