"""Re-evaluate an environment's gates in the triggerer until they pass or one fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from bundle_promotion.triggers.base import PromotionTrigger

if TYPE_CHECKING:
    from bundle_promotion.ledger.records import GateEvaluation


class GateTrigger(PromotionTrigger):
    """Fire ``{"status": "passed"|"failed", "summary", "results"}`` once no gate waits any more.

    Each evaluation reads the ledger, git and GitHub with blocking clients, so it runs in a
    thread: the triggerer's event loop stays free for every other trigger. Each evaluation
    that says something new is recorded in the ledger, which is how the approvals API shows
    what a gate waits for; the log gets ``waiting_message`` at each change.

    :param check: the run's facts as ``GateCheck`` serializes them
    :param polling_period_seconds: seconds between evaluations, unless a gate asks sooner
    :param github_repo: ``owner/name`` for the GitHub gates; None when the spec has none
    :param github_conn_id: the Airflow connection to GitHub
    """

    def __init__(
        self,
        *,
        check: Mapping[str, Any],
        polling_period_seconds: float,
        github_repo: str | None = None,
        github_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.check = dict(check)
        self.polling_period_seconds = polling_period_seconds
        self.github_repo = github_repo
        self.github_conn_id = github_conn_id

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from bundle_promotion.gates.contract import recheck_after, summary

        logged = None
        while True:
            evaluation = await asyncio.to_thread(self._evaluate)
            if evaluation.status != "waiting":
                self.log.info("Gates of %s: %s", evaluation.environment, summary(evaluation.results))
                yield TriggerEvent(event_payload(evaluation))
                return
            reasons = summary(evaluation.results)
            if reasons != logged:  # a gate may wait for days: log what changes, not every look
                self.log.info("%s", await asyncio.to_thread(waiting_message, evaluation, self.check))
                logged = reasons
            wait = recheck_after(evaluation.results, timedelta(seconds=self.polling_period_seconds))
            await asyncio.sleep(max(wait.total_seconds(), 1.0))

    def _evaluate(self) -> GateEvaluation:
        return evaluate_gates(self.check, self.github_repo, self.github_conn_id)


def evaluate_gates(
    check: Mapping[str, Any], github_repo: str | None, github_conn_id: str | None
) -> GateEvaluation:
    """One recorded evaluation, with the ledger and checkouts the ``[bundle_promotion]`` settings name."""
    from bundle_promotion import settings
    from bundle_promotion.gates.check import GateCheck, run_gate_check
    from bundle_promotion.spec import GateEntry

    approval = next(
        (gate.approval for gate in map(GateEntry.model_validate, check["gates"]) if gate.approval), None
    )
    github = None
    if github_repo:
        from bundle_promotion.hooks.github import GitHubRepositoryHook

        github = GitHubRepositoryHook(github_repo, github_conn_id or "github_default")
    return run_gate_check(
        GateCheck.from_json(check),
        ledger=settings.ledger(),
        github=github,
        checkouts=settings.checkouts(),
        now=datetime.now(UTC),
        identities=settings.approval_identities(approval) if approval else None,
    )


def waiting_message(evaluation: GateEvaluation, check: Mapping[str, Any]) -> str:
    """What a waiting environment's log says at each change: the release, each gate's need, who may
    approve, and where to.

    The digest is the one an approval must name (``bundle-promotion approve --digest``).
    """
    from bundle_promotion import settings
    from bundle_promotion.gates.approvals import policy_from_spec, who_may_approve
    from bundle_promotion.spec import GateEntry

    lines = [
        f"Gates of {evaluation.environment} hold {evaluation.version} of {evaluation.bundle} "
        f"(release digest {evaluation.release_digest}):",
        *(f"  {result.gate}: {result.status}: {result.reason}" for result in evaluation.results),
    ]
    for entry in map(GateEntry.model_validate, check["gates"]):
        if entry.approval is not None:
            policy = policy_from_spec(entry.approval, settings.approval_identities(entry.approval))
            approvers = who_may_approve(policy, evaluation.triggered_by, evaluation.commit_authors)
            lines.append(f"  who may approve: {approvers}")
    lines.append(f"  release board: {settings.board_url(evaluation.bundle, evaluation.environment)}")
    return "\n".join(lines)


def event_payload(evaluation: GateEvaluation) -> dict[str, Any]:
    """What the sensor's XCom and the trigger's event carry: the outcome and every gate's reason."""
    from bundle_promotion.gates.contract import summary

    return {
        "status": evaluation.status,
        "summary": summary(evaluation.results),
        "release_digest": evaluation.release_digest,
        "results": [
            {"gate": result.gate, "status": result.status, "reason": result.reason}
            for result in evaluation.results
        ],
    }
