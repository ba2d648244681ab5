"""Gates: the conditions a release must meet before it enters an environment.

A gate turns facts (the release, the ledger, the git repository, the clock) into a
``GateResult``: passed, waiting (with a reason and when to look again) or failed. Gates
are pure evaluation: they never wait themselves, so the Airflow layer can wait between
evaluations without holding a worker slot. This module never imports Airflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bundle_promotion.errors import BundlePromotionError, GitHubApiError
from bundle_promotion.ledger.records import (
    GateEvaluation,
    GateResult,
    GateStatus,
    Release,
    overall_status,
)

if TYPE_CHECKING:
    from bundle_promotion.github.facts import GitHubFacts
    from bundle_promotion.ledger import Ledger

__all__ = [
    "Gate",
    "GateContext",
    "GateEvaluation",
    "GateResult",
    "GateStatus",
    "evaluate_all",
    "overall_status",
    "recheck_after",
    "summary",
]


@dataclass(frozen=True)
class GateContext:
    """Everything a gate may look at, gathered once per evaluation."""

    bundle: str
    environment: str
    previous_environment: str | None
    release_id: int
    release: Release
    repo: str
    triggered_by: str | None
    commit_authors: tuple[str, ...]
    now: datetime
    ledger: Ledger
    github: GitHubFacts | None


class Gate(Protocol):
    """Anything with a name and ``evaluate``; frozen dataclasses fit, as ``name`` is read-only here."""

    @property
    def name(self) -> str: ...

    def evaluate(self, context: GateContext) -> GateResult: ...


def evaluate_all(gates: Sequence[Gate], context: GateContext) -> list[GateResult]:
    """Every gate's result. A gate that raises one of our errors fails with its message, or waits
    when GitHub is unreachable or answers 5xx; one gate's error never stops the others.
    """
    return [_evaluate(gate, context) for gate in gates]


def _evaluate(gate: Gate, context: GateContext) -> GateResult:
    try:
        return gate.evaluate(context)
    except GitHubApiError as error:
        if error.transient:
            return GateResult.waiting(gate.name, f"cannot read GitHub now, trying again: {error}")
        return GateResult.failed(gate.name, str(error))
    except BundlePromotionError as error:
        return GateResult.failed(gate.name, str(error))


def summary(results: Sequence[GateResult]) -> str:
    """The reasons of the gates that hold the release, or of all when every gate passed."""
    status = overall_status(results)
    shown = [result for result in results if result.status == status] or list(results)
    if not shown:
        return "passed: no gates"
    return f"{status}: " + "; ".join(result.reason for result in shown)


def recheck_after(results: Sequence[GateResult], longest: timedelta) -> timedelta:
    """How soon any waiting gate wants another look, capped at ``longest``."""
    wanted = [result.recheck_after for result in results if result.recheck_after is not None]
    return min([*wanted, longest])
