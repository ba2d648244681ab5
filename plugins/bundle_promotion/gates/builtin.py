"""The built-in gates: the previous environment, soak time, the release tag, release notes and
deploy windows. Each reads its facts from the ``GateContext`` and never waits itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.records import (
    DEFAULT_RECHECK,
    GateResult,
)
from bundle_promotion.release.git import checkout, resolve_version

if TYPE_CHECKING:
    from bundle_promotion.ledger import DeploymentRecord
    from bundle_promotion.spec.windows import WindowRule

from bundle_promotion.gates.contract import GateContext


@dataclass(frozen=True)
class PreviousEnvironmentGate:
    """The release was recorded as successful in the environment before this one."""

    name: str = "previous_environment"

    def evaluate(self, context: GateContext) -> GateResult:
        previous = context.previous_environment
        if previous is None:
            return GateResult.passed(self.name, f"{context.environment} is the first environment")
        if _succeeded_in(context, previous):
            return GateResult.passed(self.name, f"{context.release.version} succeeded in {previous}")
        return GateResult.failed(
            self.name,
            f"{context.release.version} has no successful deployment in {previous}; promote it there first",
        )


@dataclass(frozen=True)
class SoakGate:
    """The release has run in the previous environment for ``duration``, with no failure there since."""

    duration: timedelta
    name: str = "soak"

    def evaluate(self, context: GateContext) -> GateResult:
        previous = context.previous_environment
        if previous is None:
            return GateResult.failed(
                self.name, f"{context.environment} has no previous environment to soak in"
            )
        deployments = context.ledger.deployments(context.bundle, previous)
        healthy_since = _healthy_since(deployments, context.release_id)
        if healthy_since is None:
            return GateResult.failed(
                self.name, f"{context.release.version} has not succeeded in {previous}; nothing to soak"
            )
        unhealthy = _unhealthy_since(context, previous, deployments, healthy_since)
        if unhealthy:
            return GateResult.failed(self.name, unhealthy)
        soaked = context.now - healthy_since
        if soaked >= self.duration:
            return GateResult.passed(self.name, f"healthy in {previous} for {_span(soaked)}")
        remaining = self.duration - soaked
        return GateResult.waiting(
            self.name,
            f"soaking in {previous}: {_span(soaked)} of {_span(self.duration)}, {_span(remaining)} to go",
            remaining,
        )


@dataclass(frozen=True)
class ReleaseTagGate:
    """The version tag still exists and points at the release's commit."""

    name: str = "release_tag"

    def evaluate(self, context: GateContext) -> GateResult:
        release = context.release
        try:
            commit = resolve_version(context.repo, release.version)
        except ReleaseError as error:
            return GateResult.failed(self.name, str(error))
        if commit != release.commit:
            return GateResult.failed(
                self.name,
                f"tag {release.version} points at {commit[:12]}, not at the release's commit "
                f"{release.commit[:12]}; tags are immutable: cut a new version",
            )
        return GateResult.passed(self.name, f"tag {release.version} points at {release.commit[:12]}")


@dataclass(frozen=True)
class ReleaseNotesGate:
    """``path`` exists at the release's commit and is not empty.

    ``path`` is relative to the bundle's folder; ``{version}`` is the tag without a leading
    ``v`` (tag v1.2.0 → 1.2.0) and ``{tag}`` the tag itself.
    """

    path: str
    bundle_path: str
    checkouts: Path
    name: str = "release_notes"

    def evaluate(self, context: GateContext) -> GateResult:
        release = context.release
        relative = self.path.format(version=release.version.removeprefix("v"), tag=release.version)
        notes = checkout(context.repo, release.commit, self.checkouts) / self.bundle_path / relative
        if not notes.is_file():
            return GateResult.failed(
                self.name, f"release notes {relative} are missing at {release.commit[:12]}; add and tag them"
            )
        if not notes.read_text(encoding="utf-8", errors="replace").strip():
            return GateResult.failed(
                self.name, f"release notes {relative} are empty at {release.commit[:12]}"
            )
        return GateResult.passed(self.name, f"release notes {relative} present")


@dataclass(frozen=True)
class WindowGate:
    """Deploys only inside an allowed window and outside every freeze; a freeze wins over a window.

    A freeze is lifted for this release only by ``overrides_needed`` distinct people whose
    approvals say they override the freeze, given after the freeze began, not expired, by
    people segregation of duties does not exclude.
    """

    timezone: str
    allow: tuple[WindowRule, ...]
    deny: tuple[WindowRule, ...]
    freeze_overrides: Callable[[GateContext, datetime], list[str]]
    overrides_needed: int = 2
    name: str = "window"

    def evaluate(self, context: GateContext) -> GateResult:
        from bundle_promotion.spec.windows import active_occurrence, describe, next_start

        for rule in self.deny:
            freeze = active_occurrence(rule, self.timezone, context.now)
            if freeze is None:
                continue
            start, end = freeze
            overriders = self.freeze_overrides(context, start)
            if len(overriders) >= self.overrides_needed:
                return GateResult.passed(
                    self.name, f"{rule.label} freeze overridden by {', '.join(overriders)}"
                )
            have = f"; {len(overriders)} of {self.overrides_needed} overrides (have: {', '.join(overriders)})"
            return GateResult.waiting(
                self.name,
                f"{rule.label} freeze until {describe(end, self.timezone)}{have if overriders else ''}",
                min(end - context.now, DEFAULT_RECHECK),
            )
        if not self.allow:
            return GateResult.passed(self.name, "no freeze now")
        for rule in self.allow:
            window = active_occurrence(rule, self.timezone, context.now)
            if window is not None:
                return GateResult.passed(
                    self.name, f"inside {rule.label} window until {describe(window[1], self.timezone)}"
                )
        opens = min(next_start(rule, self.timezone, context.now) for rule in self.allow)
        return GateResult.waiting(
            self.name, f"window opens {describe(opens, self.timezone)}", opens - context.now
        )


def _succeeded_in(context: GateContext, environment: str) -> bool:
    return any(
        deployment.release_id == context.release_id and deployment.state == "succeeded"
        for deployment in context.ledger.deployments(context.bundle, environment)
    )


def _healthy_since(deployments: Sequence[DeploymentRecord], release_id: int) -> datetime | None:
    """When the release last went live: its latest successful deployment's finish."""
    finishes = [
        d.finished_at
        for d in deployments
        if d.release_id == release_id and d.state == "succeeded" and d.finished_at is not None
    ]
    return max(finishes) if finishes else None


def _unhealthy_since(
    context: GateContext, previous: str, deployments: Sequence[DeploymentRecord], since: datetime
) -> str | None:
    """Why the release is no longer healthy in ``previous``: a failure, a rollback or a newer release."""
    version = context.release.version
    failures = [d for d in deployments if d.state == "failed" and d.started_at >= since]
    if failures:
        failure = failures[0]
        return (
            f"{previous} failed since {version} went live there "
            f"({failure.version}, {_clock(failure.started_at)}: {failure.detail})"
        )
    hold = context.ledger.environment_hold(context.bundle, previous)
    if hold is not None:
        return f"{previous} is held since {_clock(hold.held_at)}: {hold.reason}"
    current = context.ledger.current_release(context.bundle, previous)
    if current is not None and current[1].release_id != context.release_id:
        return f"{previous} runs {current[1].version} now, not {version}"
    return None


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    return "".join(parts) or "0m"


def _clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
