"""What GitHub says about a release: its commit's check runs, and its pull-request reviews as approvals.

Both read the facts through ``GateContext.github`` (a ``GitHubFacts``), which is set when
the spec names a GitHub repository. Never imports Airflow or PyGithub.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from bundle_promotion.errors import GitHubApiError
from bundle_promotion.gates.contract import GateContext
from bundle_promotion.github.facts import CheckRun, Review
from bundle_promotion.ledger.records import DEFAULT_RECHECK, Approval, GateResult

__all__ = ["ChecksPassedGate", "GitHubReviewApprovals"]

# What GitHub's required status checks accept as passing.
PASSING_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
# Review states that decide; COMMENTED leaves a reviewer's earlier decision standing.
_DECIDING_STATES = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})


@dataclass(frozen=True)
class ChecksPassedGate:
    """The release commit's check runs all completed successfully.

    With ``required``, only those checks count, and each must have reported; without, every
    check run reported on the commit counts. Waits while one is queued or in progress (or a
    required one has not reported yet), fails at once when one did not pass.
    """

    required: tuple[str, ...] = ()
    recheck_after: timedelta = DEFAULT_RECHECK
    name: str = "checks_passed"

    def evaluate(self, context: GateContext) -> GateResult:
        if context.github is None:
            return GateResult.failed(
                self.name,
                "checks_passed needs the spec's github: section naming the repository (github.repo)",
            )
        commit = context.release.commit
        where = f"{context.github.repo}@{commit[:12]}"
        try:
            runs = _counted(context.github.check_runs(commit), self.required)
        except GitHubApiError as error:
            if not error.transient:
                raise
            return GateResult.waiting(
                self.name, f"cannot read the checks of {where} yet: {error}", self.recheck_after
            )
        if failing := [run for run in runs if run.completed and run.conclusion not in PASSING_CONCLUSIONS]:
            return GateResult.failed(
                self.name, f"checks failed on {where}: " + ", ".join(map(_failure, failing))
            )
        reported = {run.name for run in runs}
        unreported = [name for name in self.required if name not in reported]
        pending = [f"{run.name} ({run.status.replace('_', ' ')})" for run in runs if not run.completed]
        if unreported or pending or not runs:
            return GateResult.waiting(
                self.name, _waiting_reason(where, pending, unreported), self.recheck_after
            )
        return GateResult.passed(self.name, f"{len(runs)} of {len(runs)} checks passed on {where}")


def _counted(runs: Sequence[CheckRun], required: Sequence[str]) -> list[CheckRun]:
    return [run for run in runs if run.name in required] if required else list(runs)


def _failure(run: CheckRun) -> str:
    return f"{run.name} ({run.conclusion}) {run.url}".rstrip()


def _waiting_reason(where: str, pending: Sequence[str], unreported: Sequence[str]) -> str:
    parts = [f"checks running on {where}: {', '.join(pending)}"] if pending else []
    if unreported:
        parts.append(f"required checks not reported on {where}: {', '.join(unreported)}")
    return "; ".join(parts) or f"no check runs reported on {where} yet"


@dataclass(frozen=True)
class GitHubReviewApprovals:
    """An ``ApprovalSource``: pull-request reviews of the release's exact commit, as approvals.

    A reviewer's latest deciding review counts: APPROVED approves, CHANGES_REQUESTED rejects,
    DISMISSED withdraws. The review body is the approval's reason, so an empty review gives
    none and the approval gate ignores it. A review binds to the release through its commit;
    the approval gate then applies the policy (groups, segregation of duties, expiry) as to
    any other approval. A review counts as the Airflow user its reviewer's login is mapped to
    in the approval gate's ``identities``, and for no one without that map.
    """

    def __call__(self, context: GateContext) -> list[Approval]:
        if context.github is None:
            return []
        decisions = _latest_decisions(context.github.reviews(context.release.commit))
        return [_approval(context, review) for review in decisions if review.state != "DISMISSED"]


def _latest_decisions(reviews: Sequence[Review]) -> list[Review]:
    latest: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda review: review.submitted_at):
        if review.state in _DECIDING_STATES:
            latest[review.reviewer.lower()] = review
    return list(latest.values())


def _approval(context: GateContext, review: Review) -> Approval:
    return Approval(
        bundle=context.bundle,
        environment=context.environment,
        release_digest=context.release.digest,
        approver=review.reviewer,
        decision="approve" if review.state == "APPROVED" else "reject",
        reason=review.body.strip(),
        given_at=review.submitted_at,
        source=f"github:{review.url}",
    )
