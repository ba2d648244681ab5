"""Gate evaluations: every evaluation of an environment's gates for a run, as the board shows them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, select

from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.models import GateEvaluationRow
from bundle_promotion.ledger.records import GateEvaluation, GateResult


class GateEvaluationsMixin(LedgerDatabase):
    """``Ledger`` methods for gate evaluations."""

    def record_gate_evaluation(self, evaluation: GateEvaluation) -> None:
        """Keep each evaluation that says something new in the run, bound by the audit event that wrote it.

        A waiting gate is evaluated every poke, mostly to the same effect for days: an evaluation
        whose gates, statuses and reasons equal the run's previous one writes nothing, so the row
        the board shows says since when the gates say this. A reason that changes (a soak's time
        to go) is a new row and event.
        """
        results = canonical_json([_result_json(result) for result in evaluation.results])
        with self._writes.begin() as session:
            previous = session.scalar(
                _gate_evaluations_query(evaluation.bundle, evaluation.environment)
                .where(GateEvaluationRow.run_id == evaluation.run_id)
                .limit(1)
            )
            if previous is not None and _said(previous.results) == _said(results):
                return
            row = GateEvaluationRow(
                bundle=evaluation.bundle,
                environment=evaluation.environment,
                release_id=evaluation.release_id,
                run_id=evaluation.run_id,
                triggered_by=evaluation.triggered_by,
                commit_authors=canonical_json(list(evaluation.commit_authors)),
                evaluated_at=evaluation.evaluated_at,
                status=evaluation.status,
                results=results,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                actor=SYSTEM_ACTOR,
                action=f"gates.{evaluation.status}",
                subject=f"{evaluation.bundle}/{evaluation.environment}",
                details={
                    "run_id": evaluation.run_id,
                    "version": evaluation.version,
                    "release_digest": evaluation.release_digest,
                    "results": json.loads(results),
                },
                record=row,
            )

    def latest_gate_evaluations(self, bundle: str | None = None) -> list[GateEvaluation]:
        """The newest evaluation of each environment (per bundle), newest first."""
        newest = (
            select(func.max(GateEvaluationRow.id))
            .group_by(GateEvaluationRow.bundle, GateEvaluationRow.environment)
            .scalar_subquery()
        )
        query = select(GateEvaluationRow).where(GateEvaluationRow.id.in_(newest))
        if bundle is not None:
            query = query.where(GateEvaluationRow.bundle == bundle)
        with self._reads() as session:
            rows = session.scalars(query.order_by(GateEvaluationRow.id.desc()))
            return [_to_gate_evaluation(row) for row in rows]


def _said(results_json: str) -> list[tuple[str, str, str]]:
    """What an evaluation says, without when to look again, which moves with the clock."""
    return [(result["gate"], result["status"], result["reason"]) for result in json.loads(results_json)]


def _result_json(result: GateResult) -> dict[str, Any]:
    recheck = result.recheck_after.total_seconds() if result.recheck_after is not None else None
    return {"gate": result.gate, "status": result.status, "reason": result.reason, "recheck_after": recheck}


def _gate_evaluations_query(bundle: str, environment: str) -> Select[GateEvaluationRow]:
    return (
        select(GateEvaluationRow)
        .where(GateEvaluationRow.bundle == bundle, GateEvaluationRow.environment == environment)
        .order_by(GateEvaluationRow.id.desc())
    )


def _to_gate_evaluation(row: GateEvaluationRow) -> GateEvaluation:
    return GateEvaluation(
        bundle=row.bundle,
        environment=row.environment,
        release_id=row.release_id,
        release_digest=row.release.digest,
        version=row.release.version,
        run_id=row.run_id,
        triggered_by=row.triggered_by,
        commit_authors=tuple(json.loads(row.commit_authors)),
        evaluated_at=row.evaluated_at,
        results=tuple(
            GateResult(
                gate=item["gate"],
                status=item["status"],
                reason=item["reason"],
                recheck_after=timedelta(seconds=item["recheck_after"])
                if item["recheck_after"] is not None
                else None,
            )
            for item in json.loads(row.results)
        ),
    )
