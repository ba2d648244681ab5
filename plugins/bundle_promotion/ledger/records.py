"""The records the ledger keeps, as plain frozen data: releases, gate evaluations, approvals
and schedule snapshots.

The ledger owns these types, so the concepts that produce them (releases, gates,
lifecycle) import the ledger and never the other way round.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Literal

from bundle_promotion.errors import ReleaseError

# Releases


@dataclass(frozen=True)
class Artifact:
    """One file a release's build produced."""

    name: str
    relative_path: str
    sha256: str

    def __post_init__(self) -> None:
        # The store keys files by name and fetch writes to relative_path: neither may leave its folder.
        path = PurePosixPath(self.relative_path)
        if not self.name or path.name != self.name or path.is_absolute() or ".." in path.parts:
            raise ReleaseError(
                f"artifact {self.name!r} has path {self.relative_path!r}; "
                "it must be a file inside the bundle folder, named by the path's last part"
            )


@dataclass(frozen=True)
class Release:
    """One immutable thing to promote: a tagged commit, its built artifacts and its config."""

    bundle: str
    version: str
    commit: str
    artifacts: tuple[Artifact, ...]
    config_digest: str

    @property
    def digest(self) -> str:
        """The release's identity, which approvals bind to: it changes when anything deployed changes.

        Every field is part of it; the artifacts count as a set, so build order does not matter.
        """
        fields = asdict(self)
        fields["artifacts"] = sorted(fields["artifacts"], key=lambda artifact: artifact["relative_path"])
        return sha256_of_json(fields)


# Gates


GateStatus = Literal["passed", "waiting", "failed"]
DEFAULT_RECHECK = timedelta(minutes=1)


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict; ``reason`` is written for the person waiting on it."""

    gate: str
    status: GateStatus
    reason: str
    recheck_after: timedelta | None = None

    @classmethod
    def passed(cls, gate: str, reason: str) -> GateResult:
        return cls(gate, "passed", reason)

    @classmethod
    def waiting(cls, gate: str, reason: str, recheck_after: timedelta = DEFAULT_RECHECK) -> GateResult:
        return cls(gate, "waiting", reason, recheck_after)

    @classmethod
    def failed(cls, gate: str, reason: str) -> GateResult:
        return cls(gate, "failed", reason)


@dataclass(frozen=True)
class GateEvaluation:
    """One evaluation of all of an environment's gates, as the ledger keeps it."""

    bundle: str
    environment: str
    release_id: int
    release_digest: str
    version: str
    run_id: str
    triggered_by: str | None
    commit_authors: tuple[str, ...]
    evaluated_at: datetime
    results: tuple[GateResult, ...]

    @property
    def status(self) -> GateStatus:
        return overall_status(self.results)


def overall_status(results: Sequence[GateResult]) -> GateStatus:
    """Failed when any gate failed, else waiting when any waits, else passed (also with no gates)."""
    statuses = {result.status for result in results}
    return "failed" if "failed" in statuses else "waiting" if "waiting" in statuses else "passed"


# Approvals


# "withdraw" takes back its author's rejection: a rejection stands until then.
Decision = Literal["approve", "reject", "withdraw"]
Signature = Literal["none", "part11"]


@dataclass(frozen=True)
class Approval:
    """One person's decision on one release digest for one environment.

    ``groups`` are the role-based groups the auth manager confirmed the approver belongs to
    when the approval was given; groups that list users are checked by name at evaluation.
    """

    bundle: str
    environment: str
    release_digest: str
    approver: str
    decision: Decision
    reason: str
    given_at: datetime
    approver_name: str | None = None
    groups: tuple[str, ...] = ()
    overrides_freeze: bool = False
    signature: Signature = "none"
    meaning: str | None = None
    source: str = "airflow"


@dataclass(frozen=True)
class SignatureAttempt:
    """A try to sign an approval; a wrong password is kept as evidence too (21 CFR 11.300(d))."""

    bundle: str
    environment: str
    release_digest: str
    signer: str
    succeeded: bool
    detail: str
    attempted_at: datetime


@dataclass(frozen=True)
class SignatureLockout:
    """After ``attempts`` failed signatures within ``within``, the signer may not sign until an
    administrator lifts the lockout (21 CFR 11.300(d))."""

    attempts: int = 3
    within: timedelta = timedelta(minutes=15)


# Schedules


PauseStatus = Literal["PAUSED", "UNPAUSED"]
ResourceKind = Literal["job", "pipeline"]


@dataclass(frozen=True)
class TriggerState:
    """One trigger of one job (``field`` is ``schedule``, ``trigger``, ``continuous`` or ``triggers[i]``),
    or a pipeline's ``continuous``: then ``job_id`` and ``job_name`` are the pipeline's."""

    job_id: str
    job_name: str
    field: str
    pause_status: PauseStatus
    kind: ResourceKind = "job"


@dataclass(frozen=True)
class ScheduleSnapshot:
    """The states of some jobs' and pipelines' triggers at one moment: what a restore puts back exactly."""

    triggers: tuple[TriggerState, ...]

    @property
    def job_ids(self) -> list[str]:
        return sorted({trigger.job_id for trigger in self.triggers if trigger.kind == "job"})

    @property
    def pipeline_ids(self) -> list[str]:
        return sorted({trigger.job_id for trigger in self.triggers if trigger.kind == "pipeline"})

    @property
    def resource_ids(self) -> list[str]:
        return sorted({trigger.job_id for trigger in self.triggers})

    def only(self, resource_ids: Collection[str]) -> ScheduleSnapshot:
        return ScheduleSnapshot(tuple(t for t in self.triggers if t.job_id in resource_ids))

    def status(self, job_id: str, field: str) -> PauseStatus | None:
        return next(
            (t.pause_status for t in self.triggers if (t.job_id, t.field) == (job_id, field)),
            None,
        )

    def merged_with(self, other: ScheduleSnapshot) -> ScheduleSnapshot:
        """This snapshot plus the jobs only ``other`` knows: the first state seen of a job wins."""
        known = set(self.resource_ids)
        return ScheduleSnapshot(
            (*self.triggers, *(trigger for trigger in other.triggers if trigger.job_id not in known))
        )

    def without(self, resource_ids: Iterable[str]) -> ScheduleSnapshot:
        dropped = set(resource_ids)
        return ScheduleSnapshot(tuple(t for t in self.triggers if t.job_id not in dropped))

    def to_json(self) -> list[dict[str, str]]:
        return [asdict(trigger) for trigger in self.triggers]

    @classmethod
    def from_json(cls, value: Sequence[Mapping[str, Any]]) -> ScheduleSnapshot:
        return cls(tuple(TriggerState(**trigger) for trigger in value))


def sha256_of_json(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Drift


DriftStatus = Literal["in_sync", "drifted", "not_deployed"]
HealMode = Literal["redeploy", "schedules_only"]
HealOutcome = Literal["healed", "refused", "in_sync"]


@dataclass(frozen=True)
class DriftFinding:
    """One field of one deployed resource that is no longer what its release put there."""

    resource: str  # "resources.jobs.etl", "resources.jobs.etl.permissions", or an artifact's path
    field: str  # "schedule.quartz_cron_expression", "tasks[ingest].new_cluster.num_workers", "sha256"
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.resource}: {self.field} is {self.actual!r}, expected {self.expected!r}"


@dataclass(frozen=True)
class DriftReport:
    """One check of an environment against the release the ledger says runs there.

    Plain data, so a notifier, the board and the CLI take it as it is (``to_json``).
    """

    bundle: str
    environment: str
    checked_at: datetime
    version: str | None  # the release running there; None when nothing is deployed yet
    release_digest: str | None
    findings: tuple[DriftFinding, ...] = ()

    @property
    def status(self) -> DriftStatus:
        if self.version is None:
            return "not_deployed"
        return "drifted" if self.findings else "in_sync"

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "environment": self.environment,
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "version": self.version,
            "release_digest": self.release_digest,
            "findings": [asdict(finding) for finding in self.findings],
        }


@dataclass(frozen=True)
class DriftHeal:
    """What a heal of an environment did, or why it was refused (``reason``)."""

    bundle: str
    environment: str
    mode: HealMode
    outcome: HealOutcome
    reason: str
    actor: str
    healed_at: datetime
    version: str | None
    findings: tuple[DriftFinding, ...] = ()  # what was drifted when the heal started

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "environment": self.environment,
            "mode": self.mode,
            "outcome": self.outcome,
            "reason": self.reason,
            "actor": self.actor,
            "healed_at": self.healed_at.isoformat(),
            "version": self.version,
            "findings": [asdict(finding) for finding in self.findings],
        }
