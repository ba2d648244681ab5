"""Drift: each check of an environment against its release, and each heal, done or refused.

Checks run hourly, so the audit trail records a check only when what it found changed
(drift found, changed or gone); every heal, done or refused, is an audit event. For the same
reason the reports of an environment are kept per finding: the first check that found it
and the newest, not every hour in between.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, cast

from sqlalchemy import Select, func, select

from bundle_promotion.ledger.audit import append_event, canonical_json
from bundle_promotion.ledger.database import LedgerDatabase
from bundle_promotion.ledger.models import DriftHealRow, DriftReportRow
from bundle_promotion.ledger.records import DriftFinding, DriftHeal, DriftReport, HealMode, HealOutcome


class DriftMixin(LedgerDatabase):
    """``Ledger`` methods for drift reports and heals."""

    def record_drift_report(self, report: DriftReport, *, actor: str) -> bool:
        """Keep the report; True when what it found differs from the environment's previous report.

        A previous report that found the same as both the one before it and this one is replaced:
        it was neither when this finding began nor the newest check."""
        findings = _findings_json(report.findings)
        with self._writes.begin() as session:
            newest = list(session.scalars(_reports_query(report.bundle, report.environment).limit(2)))
            previous = newest[0] if newest else None
            if len(newest) == 2 and _found(newest[1]) == _found(previous) == (report.status, findings):
                session.delete(previous)
            session.add(
                DriftReportRow(
                    bundle=report.bundle,
                    environment=report.environment,
                    checked_at=report.checked_at,
                    status=report.status,
                    version=report.version,
                    release_digest=report.release_digest,
                    findings=findings,
                )
            )
            changed = previous is None or (previous.status, previous.findings) != (report.status, findings)
            if changed and report.status != "not_deployed":
                append_event(
                    session,
                    actor=actor,
                    action=f"drift.{report.status}",
                    subject=f"{report.bundle}/{report.environment}",
                    details={
                        "version": report.version,
                        "release_digest": report.release_digest,
                        "findings": json.loads(findings),
                    },
                )
            return changed

    def latest_drift_reports(self, bundle: str | None = None) -> list[DriftReport]:
        """The newest report of each environment (per bundle), newest first."""
        newest = (
            select(func.max(DriftReportRow.id))
            .group_by(DriftReportRow.bundle, DriftReportRow.environment)
            .scalar_subquery()
        )
        query = select(DriftReportRow).where(DriftReportRow.id.in_(newest))
        if bundle is not None:
            query = query.where(DriftReportRow.bundle == bundle)
        with self._reads() as session:
            return [_to_report(row) for row in session.scalars(query.order_by(DriftReportRow.id.desc()))]

    def latest_drift_report(self, bundle: str, environment: str) -> DriftReport | None:
        with self._reads() as session:
            row = session.scalar(_reports_query(bundle, environment).limit(1))
            return _to_report(row) if row is not None else None

    def record_drift_heal(self, heal: DriftHeal) -> None:
        findings = _findings_json(heal.findings)
        with self._writes.begin() as session:
            session.add(
                DriftHealRow(
                    bundle=heal.bundle,
                    environment=heal.environment,
                    healed_at=heal.healed_at,
                    mode=heal.mode,
                    outcome=heal.outcome,
                    reason=heal.reason,
                    actor=heal.actor,
                    version=heal.version,
                    findings=findings,
                )
            )
            append_event(
                session,
                actor=heal.actor,
                action=f"drift.heal_{heal.outcome}",
                subject=f"{heal.bundle}/{heal.environment}",
                reason=heal.reason,
                details={"mode": heal.mode, "version": heal.version, "findings": json.loads(findings)},
            )

    def drift_heals(self, bundle: str, environment: str) -> list[DriftHeal]:
        """Newest first."""
        query = (
            select(DriftHealRow)
            .where(DriftHealRow.bundle == bundle, DriftHealRow.environment == environment)
            .order_by(DriftHealRow.id.desc())
        )
        with self._reads() as session:
            return [_to_heal(row) for row in session.scalars(query)]


def _findings_json(findings: Sequence[DriftFinding]) -> str:
    return canonical_json([asdict(finding) for finding in findings])


def _to_findings(findings_json: str) -> tuple[DriftFinding, ...]:
    return tuple(DriftFinding(**finding) for finding in json.loads(findings_json))


def _found(row: DriftReportRow | None) -> tuple[str, str] | None:
    return (row.status, row.findings) if row is not None else None


def _reports_query(bundle: str, environment: str) -> Select[Any]:
    return (
        select(DriftReportRow)
        .where(DriftReportRow.bundle == bundle, DriftReportRow.environment == environment)
        .order_by(DriftReportRow.id.desc())
    )


def _to_report(row: DriftReportRow) -> DriftReport:
    return DriftReport(
        bundle=row.bundle,
        environment=row.environment,
        checked_at=row.checked_at,
        version=row.version,
        release_digest=row.release_digest,
        findings=_to_findings(row.findings),
    )


def _to_heal(row: DriftHealRow) -> DriftHeal:
    return DriftHeal(
        bundle=row.bundle,
        environment=row.environment,
        mode=cast(HealMode, row.mode),
        outcome=cast(HealOutcome, row.outcome),
        reason=row.reason,
        actor=row.actor,
        healed_at=row.healed_at,
        version=row.version,
        findings=_to_findings(row.findings),
    )
