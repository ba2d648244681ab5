"""One evaluation of an environment's gates, from the spec's entries to a ledger record.

The sensor gathers a run's facts once into a ``GateCheck`` (plain data, so its trigger can
carry it); each evaluation turns the check into gates and a ``GateContext``, evaluates them
and records the result. Never imports Airflow.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bundle_promotion.errors import ReleaseError
from bundle_promotion.gates.builtin import (
    PreviousEnvironmentGate,
    ReleaseNotesGate,
    ReleaseTagGate,
    SoakGate,
    WindowGate,
)
from bundle_promotion.gates.contract import Gate, GateContext, evaluate_all
from bundle_promotion.ledger.records import GateEvaluation
from bundle_promotion.release.git import checkout

if TYPE_CHECKING:
    from bundle_promotion.gates.approvals import ApprovalSource
    from bundle_promotion.github.facts import GitHubFacts
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.spec import ConnectionIdentitiesSpec, GateEntry, WindowRuleSpec
    from bundle_promotion.spec.windows import WindowRule

__all__ = ["GateCheck", "build_gates", "commit_authors", "run_gate_check"]


@dataclass(frozen=True)
class GateCheck:
    """One environment's gates for one run, as plain data: the sensor hands it to its trigger."""

    bundle: str
    environment: str
    previous_environment: str | None
    release_id: int
    repo: str
    bundle_path: str
    run_id: str
    triggered_by: str | None
    commit_authors: tuple[str, ...]
    gates: tuple[Mapping[str, Any], ...]  # the spec's gate entries, as JSON
    approvals_from_reviews: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "commit_authors": list(self.commit_authors), "gates": list(self.gates)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> GateCheck:
        return cls(
            **{**value, "commit_authors": tuple(value["commit_authors"]), "gates": tuple(value["gates"])}
        )


def run_gate_check(
    check: GateCheck,
    *,
    ledger: Ledger,
    github: GitHubFacts | None,
    checkouts: Path,
    now: datetime,
    identities: ConnectionIdentitiesSpec | None = None,
) -> GateEvaluation:
    """Evaluate every gate of ``check`` once and record the evaluation in the ledger.

    ``identities`` is the identity map of the approval gate's connection, read by the caller.
    """
    release = ledger.release(check.release_id)
    context = GateContext(
        bundle=check.bundle,
        environment=check.environment,
        previous_environment=check.previous_environment,
        release_id=check.release_id,
        release=release,
        repo=check.repo,
        triggered_by=check.triggered_by,
        commit_authors=check.commit_authors,
        now=now,
        ledger=ledger,
        github=github,
    )
    sources: list[ApprovalSource] = []
    if check.approvals_from_reviews:
        from bundle_promotion.gates.github import GitHubReviewApprovals

        sources.append(GitHubReviewApprovals())
    gates = build_gates(
        check.gates,
        bundle_path=check.bundle_path,
        checkouts=checkouts,
        approval_sources=sources,
        identities=identities,
    )
    evaluation = GateEvaluation(
        bundle=check.bundle,
        environment=check.environment,
        release_id=check.release_id,
        release_digest=release.digest,
        version=release.version,
        run_id=check.run_id,
        triggered_by=check.triggered_by,
        commit_authors=check.commit_authors,
        evaluated_at=now,
        results=tuple(evaluate_all(gates, context)),
    )
    ledger.record_gate_evaluation(evaluation)
    return evaluation


def build_gates(
    entries: Sequence[Mapping[str, Any]],
    *,
    bundle_path: str,
    checkouts: Path,
    approval_sources: Sequence[ApprovalSource] = (),
    identities: ConnectionIdentitiesSpec | None = None,
) -> list[Gate]:
    """The gates of the spec's ``gates:`` entries, in their order; ``identities`` from a connection."""
    from bundle_promotion.gates.approvals import freeze_overriders, identities_from_spec
    from bundle_promotion.identity import IdentityMap
    from bundle_promotion.spec import GateEntry

    parsed = [GateEntry.model_validate(entry) for entry in entries]
    # The approval gate's identity map also decides who may lift a freeze of the window gate.
    approval_gates = [entry.approval for entry in parsed if entry.approval is not None]
    # The approval gate's identities and expiry also rule the approvals that lift a freeze.
    overriders = functools.partial(
        freeze_overriders,
        identities=identities_from_spec(approval_gates[0], identities) if approval_gates else IdentityMap(),
        expires_after=approval_gates[0].expires_after if approval_gates else None,
    )
    return [
        _gate(entry, bundle_path, checkouts, approval_sources, overriders, identities) for entry in parsed
    ]


def _gate(
    entry: GateEntry,
    bundle_path: str,
    checkouts: Path,
    approval_sources: Sequence[ApprovalSource],
    freeze_overrides: Callable[[GateContext, datetime], list[str]],
    identities: ConnectionIdentitiesSpec | None,
) -> Gate:
    from bundle_promotion.gates import approvals

    if entry.approval is not None:
        policy = approvals.policy_from_spec(entry.approval, identities)
        return approvals.ApprovalGate(policy, tuple(approval_sources))
    if entry.window is not None:
        window = entry.window
        allow, deny = _window_rules(window.allow), _window_rules(window.deny)
        return WindowGate(window.timezone, allow, deny, freeze_overrides, window.overrides_needed)
    if entry.soak is not None:
        return SoakGate(entry.soak.duration)
    if entry.release_tag is not None:
        return ReleaseTagGate()
    if entry.release_notes is not None:
        return ReleaseNotesGate(entry.release_notes.path, bundle_path, checkouts)
    if entry.checks_passed is not None:
        from bundle_promotion.gates.github import ChecksPassedGate

        return ChecksPassedGate(required=tuple(entry.checks_passed.required))
    return PreviousEnvironmentGate()


def _window_rules(rules: Sequence[WindowRuleSpec]) -> tuple[WindowRule, ...]:
    from bundle_promotion.spec.windows import WindowRule

    return tuple(
        WindowRule(rule.name or rule.cron or rule.rrule or "", rule.duration, rule.cron, rule.rrule)
        for rule in rules
    )


def commit_authors(repo: str, commit: str, since_commit: str | None, checkouts: Path) -> tuple[str, ...]:
    """Names and e-mail addresses of the authors of the commits a release brings.

    Those are the commits after ``since_commit`` (what the environment runs now) up to the
    release's; with no earlier release, every commit of its history.
    """
    work_tree = checkout(repo, commit, checkouts)
    revisions = (
        f"{since_commit}..{commit}"
        if since_commit and _is_ancestor(work_tree, since_commit, commit)
        else commit
    )
    log = _git_output(work_tree, "log", "--format=%an%n%ae", revisions)
    return tuple(sorted({line.strip() for line in log.splitlines() if line.strip()}))


def _is_ancestor(work_tree: Path, ancestor: str, commit: str) -> bool:
    completed = subprocess.run(
        ["git", "merge-base", "--is-ancestor", ancestor, commit],
        cwd=work_tree,
        capture_output=True,
        check=False,
    )
    return completed.returncode == 0


def _git_output(work_tree: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=work_tree, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise ReleaseError(f"`git {' '.join(args)}` failed in {work_tree}: {completed.stderr.strip()}")
    return completed.stdout
