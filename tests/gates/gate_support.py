"""Building blocks for gate and approval tests: a ledger with a release, and a context over it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bundle_promotion.gates.contract import GateContext
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Approval, Release

BUNDLE = "sales"
COMMIT = "a" * 40


def make_ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


def make_release(version: str = "v1.0.0", commit: str = COMMIT, config_digest: str = "c" * 64) -> Release:
    return Release(bundle=BUNDLE, version=version, commit=commit, artifacts=(), config_digest=config_digest)


def context(
    ledger: Ledger,
    release: Release,
    *,
    environment: str = "prod",
    previous: str | None = "staging",
    repo: str = "unused",
    triggered_by: str | None = "dag_test",
    authors: tuple[str, ...] = ("Release Bot", "release-bot@example.com"),
    now: datetime | None = None,
) -> GateContext:
    return GateContext(
        bundle=release.bundle,
        environment=environment,
        previous_environment=previous,
        release_id=ledger.record_release(release),
        release=release,
        repo=repo,
        triggered_by=triggered_by,
        commit_authors=authors,
        now=now or datetime.now(UTC),
        ledger=ledger,
        github=None,
    )


def approval(gate_context: GateContext, approver: str, **changes: Any) -> Approval:
    """An approval that counts unless ``changes`` say otherwise, given a minute before the context's now."""
    given = Approval(
        bundle=gate_context.bundle,
        environment=gate_context.environment,
        release_digest=gate_context.release.digest,
        approver=approver,
        decision="approve",
        reason="validated in staging",
        given_at=gate_context.now - timedelta(minutes=1),
    )
    return replace(given, **changes)


def deploy(
    ledger: Ledger, release_id: int, environment: str, state: str = "succeeded", run: str = "r1"
) -> None:
    deployment_id = ledger.start_deployment(
        bundle=BUNDLE, environment=environment, target=environment, release_id=release_id, run_id=run
    )
    if state != "deploying":
        ledger.finish_deployment(
            deployment_id, state, detail="test job failed" if state == "failed" else None
        )  # type: ignore[arg-type]
