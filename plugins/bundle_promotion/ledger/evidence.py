"""The audit trail read back: verification against its anchors, and the evidence pack of a release.

Every ledger write appends an event carrying the hash of the one before (``ledger.AuditEvent``).
``verify_chain`` recomputes each hash and link, and names the first event that does not hold:
an edited row, a deleted one, or one slipped in. ``verify`` holds the trail against three
more anchors, and says which caught what:

- ``records``: every approval, signature attempt, hold, deployment, release (with its
  artifacts), gate evaluation and schedule snapshot row is bound by the event that wrote it
  (its content hash), so a row changed, deleted or forged is found;
- ``mac``: with the key (kept outside the ledger), each event's keyed MAC, so a chain
  re-hashed after an edit fails;
- ``witness``: chain heads written to the artifact store (``audit/head.json``), so
  deleting the newest events, or all of them, fails.

 ``evidence_pack`` gathers what an auditor asks
for about one release: its identity and notes, every approval with its signature manifest
(21 CFR 11.50: who, when, meaning, bound to the release digest), the verification and test
results, and the deploy history of each environment. It is written as JSON and Markdown.
"""

from __future__ import annotations

import hmac
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger import GENESIS_HASH, AuditEvent, Ledger
from bundle_promotion.ledger.audit import RECORD_KEY, RECORDS_BOUND, event_mac

if TYPE_CHECKING:
    from bundle_promotion.ledger.records import Release
    from bundle_promotion.spec import PromotionSpec

# Audit actions by qualification stage, as GAMP 5 names them: installation, operation, performance.
_STAGES = (("IV", ("verification", "verify")), ("OV", ("tests", "test")))


Anchor = Literal["chain", "records", "mac", "witness"]


@dataclass(frozen=True)
class Finding:
    """One tampering found, and the anchor that caught it."""

    anchor: Anchor
    problem: str

    def __str__(self) -> str:
        return f"[{self.anchor}] {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking the trail: ``broken_seq`` is the first event the chain fails at,
    ``findings`` everything any anchor caught; ``checked`` the anchors held against it."""

    events: int
    broken_seq: int | None = None
    problem: str | None = None
    findings: tuple[Finding, ...] = ()
    checked: tuple[Anchor, ...] = ("chain",)

    @property
    def intact(self) -> bool:
        return self.broken_seq is None and not self.findings

    def caught_by(self) -> set[Anchor]:
        return {finding.anchor for finding in self.findings}

    def __str__(self) -> str:
        anchors = ", ".join(self.checked)
        if self.intact:
            return (
                f"audit trail intact: {self.events} events, every hash and link verified (anchors: {anchors})"
            )
        lines = "\n".join(f"- {finding}" for finding in self.findings)
        return f"audit trail BROKEN (anchors: {anchors}):\n{lines}"


def verify_chain(events: Sequence[AuditEvent]) -> ChainReport:
    """Check events in order of ``seq``: numbering without gaps, each link, each hash."""
    previous_hash, expected_seq = GENESIS_HASH, 1
    for event in events:
        problem = _problem(event, expected_seq, previous_hash)
        if problem is not None:
            return ChainReport(len(events), event.seq, problem)
        previous_hash, expected_seq = event.hash, event.seq + 1
    return ChainReport(len(events))


def _problem(event: AuditEvent, expected_seq: int, previous_hash: str) -> str | None:
    if event.seq != expected_seq:
        return f"expected event {expected_seq} next, found {event.seq}: events were deleted or renumbered"
    if event.prev_hash != previous_hash:
        return "it does not link to the event before it: that event was changed, or this one inserted"
    if event.hash != event.expected_hash():
        return f"its content does not match its hash: the {event.action} event on {event.subject} was edited"
    return None


def verify(
    ledger: Ledger, *, audit_key: bytes | None = None, witnessed: Sequence[Mapping[str, Any]] | None = None
) -> ChainReport:
    """The chain, every bound record, and, when given, each event's MAC and the witnessed heads."""
    events = ledger.audit_events()
    chain = verify_chain(events)
    findings = [Finding("chain", f"event {chain.broken_seq}: {chain.problem}")] if not chain.intact else []
    findings += [Finding("records", problem) for problem in _record_problems(events, ledger.record_hashes())]
    checked: list[Anchor] = ["chain", "records"]
    if audit_key is not None:
        checked.append("mac")
        findings += [Finding("mac", problem) for problem in _mac_problems(events, audit_key)]
    if witnessed is not None:
        checked.append("witness")
        findings += [Finding("witness", problem) for problem in _witness_problems(events, witnessed)]
    return ChainReport(len(events), chain.broken_seq, chain.problem, tuple(findings), tuple(checked))


def chain_head(ledger: Ledger) -> dict[str, Any] | None:
    """The newest event's number and hash (and MAC): what a witness keeps outside the ledger."""
    head = ledger.audit_head()
    return {"seq": head.seq, "hash": head.hash, "mac": head.mac} if head is not None else None


def _record_problems(events: Sequence[AuditEvent], rows: Mapping[tuple[str, int], str]) -> list[str]:
    """Each bound row must be as the last event about it left it: present with that hash, or deleted."""
    bound: dict[tuple[str, int], tuple[int, str | None]] = {}
    unbound_up_to: dict[str, int] = {}
    for event in events:
        if record := event.details.get(RECORD_KEY):
            bound[(record["table"], record["id"])] = (event.seq, record["sha256"])
        if event.action == RECORDS_BOUND:
            unbound_up_to |= event.details["unbound_up_to"]
    problems = []
    for (table, row_id), (seq, expected) in sorted(bound.items()):
        actual = rows.get((table, row_id))
        if expected is not None and actual is None:
            problems.append(f"{table} row {row_id}, written by event {seq}, was deleted")
        elif expected is not None and actual != expected:
            problems.append(f"{table} row {row_id} was changed after event {seq} wrote it")
        elif expected is None and actual is not None:
            problems.append(f"{table} row {row_id} is back after event {seq} deleted it")
    for table, row_id in sorted(rows.keys() - bound.keys()):
        if row_id > unbound_up_to.get(table, 0):  # rows up to there predate binding
            problems.append(f"{table} row {row_id} was written outside the audit trail: no event binds it")
    return problems


def _mac_problems(events: Sequence[AuditEvent], key: bytes) -> list[str]:
    """Events before the first one with a MAC predate the key; after it, every event needs a valid one."""
    first = next((event.seq for event in events if event.mac is not None), None)
    if first is None:
        return [f"none of the {len(events)} events carries a MAC: the trail was rewritten"] if events else []
    return [
        f"event {event.seq} ({event.action} on {event.subject}) "
        + ("carries no MAC" if event.mac is None else "has a MAC the key did not make: it was rewritten")
        for event in events
        if event.seq >= first
        and (event.mac is None or not hmac.compare_digest(event.mac, event_mac(key, event.expected_hash())))
    ]


def _witness_problems(events: Sequence[AuditEvent], witnessed: Sequence[Mapping[str, Any]]) -> list[str]:
    by_seq = {event.seq: event for event in events}
    problems = []
    for head in witnessed:
        event = by_seq.get(head["seq"])
        if event is None:
            problems.append(
                f"event {head['seq']}, witnessed as a chain head, is gone: the trail has {len(events)} events"
            )
        elif event.hash != head["hash"]:
            problems.append(f"event {head['seq']} is not the one witnessed: the chain was rewritten")
    return problems


def evidence_pack(
    ledger: Ledger,
    bundle: str,
    version: str,
    *,
    environments: Sequence[str] = (),
    notes: str | None = None,
    report: ChainReport | None = None,
) -> dict[str, Any]:
    """Everything the ledger knows about the release, as plain JSON-ready data.

    Built from verified records only: a trail that fails ``report`` (by default ``verify``
    against the chain and the records) gives no pack, so a forged row never appears in one.
    """
    report = report or verify(ledger)
    if not report.intact:
        raise ReleaseError(
            f"no evidence pack for {version} of {bundle}: the ledger does not verify, so its records "
            f"cannot be shown as evidence. Investigate with `bundle-promotion audit verify`:\n{report}"
        )
    recorded = ledger.release_by_version(bundle, version)
    if recorded is None:
        raise ReleaseError(
            f"{version} of {bundle} is not in the ledger; list releases with the board or the API"
        )
    release_id, release = recorded
    history = ledger.deployments(bundle)
    names = list(dict.fromkeys([*environments, *(d.environment for d in reversed(history))]))
    events = [e for e in ledger.audit_events() if _about(e, bundle, version, release.digest)]
    approvals = [
        approval
        for name in names
        for approval in ledger.approvals(bundle, name)
        if approval.release_digest == release.digest
    ]
    return {
        "release": {
            "bundle": bundle,
            "version": version,
            "release_id": release_id,
            "commit": release.commit,
            "digest": release.digest,
            "config_digest": release.config_digest,
            "artifacts": [
                {"name": a.name, "path": a.relative_path, "sha256": a.sha256} for a in release.artifacts
            ],
        },
        "release_notes": notes,
        "approvals": [
            {
                "environment": a.environment,
                "decision": a.decision,
                "signed_by": a.approver,
                "printed_name": a.approver_name or a.approver,
                "signed_at": _iso(a.given_at),
                "meaning": a.meaning,
                "signature": a.signature,
                "reason": a.reason,
                "release_digest": a.release_digest,
                "groups": list(a.groups),
                "source": a.source,
            }
            for a in approvals
        ],
        "qualification": _qualification(events, names),
        "runs_now": {name: _runs_now(ledger, bundle, name, release_id) for name in names},
        "deployments": {
            name: [
                {
                    "version": d.version,
                    "state": d.state,
                    "run_id": d.run_id,
                    "started_at": _iso(d.started_at),
                    "finished_at": _iso(d.finished_at),
                    "detail": d.detail,
                    "this_release": d.release_id == release_id,
                }
                for d in history
                if d.environment == name
            ]
            for name in names
        },
        "audit_events": [_event_json(e) for e in events],
        "audit_chain": str(report),
    }


def _runs_now(ledger: Ledger, bundle: str, environment: str, release_id: int) -> dict[str, Any] | None:
    """What the environment's workspace runs now (after a rollback: the release put back)."""
    current = ledger.current_deployment(bundle, environment)
    if current is None:
        return None
    return {
        "version": current.version,
        "deployment_id": current.id,
        "state": current.state,
        "since": _iso(current.applied_at),
        "this_release": current.release_id == release_id,
    }


def _about(event: AuditEvent, bundle: str, version: str, digest: str) -> bool:
    details = event.details
    return event.subject == f"{bundle}@{version}" or (
        details.get("release_digest") == digest
        or (details.get("bundle") == bundle and details.get("version") == version)
    )


def _qualification(events: Sequence[AuditEvent], environments: Sequence[str]) -> list[dict[str, Any]]:
    """Verification (IV) and test (OV) results; OV in the last environment counts as performance (PQ)."""
    production = environments[-1] if environments else None
    results = []
    for event in events:
        stage = next((name for name, prefixes in _STAGES if event.action.split(".")[0] in prefixes), None)
        if stage is None:
            continue
        environment = event.details.get("environment") or event.subject.rsplit("/", 1)[-1]
        results.append(
            {
                "stage": "PQ" if stage == "OV" and environment == production else stage,
                "environment": environment,
                "result": event.action,
                "at": _iso(event.occurred_at),
                "by": event.actor,
                "details": event.details,
            }
        )
    return results


def _event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "at": _iso(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "reason": event.reason,
        "details": event.details,
        "hash": event.hash,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def release_notes(spec: PromotionSpec, release: Release) -> str | None:
    """The bundle's ``documentation/releases/<version>.md`` at the release's commit, when the
    repository is on this machine and the file exists."""
    repo = Path(spec.repo_location())
    if not repo.is_dir():
        return None
    folder = PurePosixPath(spec.source.path) / "documentation" / "releases"
    for name in dict.fromkeys([release.version, release.version.removeprefix("v")]):
        shown = subprocess.run(
            ["git", "show", f"{release.commit}:{folder / name}.md"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode == 0:
            return shown.stdout.strip()
    return None


def to_markdown(pack: dict[str, Any]) -> str:
    release = pack["release"]
    lines = [
        f"# Evidence pack: {release['bundle']} {release['version']}",
        "",
        f"- Commit: `{release['commit']}`",
        f"- Release digest: `{release['digest']}`",
        f"- Config digest: `{release['config_digest']}`",
        f"- Audit chain: {pack['audit_chain']}",
        "",
        "| artifact | sha256 |",
        "|---|---|",
        *(f"| {a['name']} | `{a['sha256']}` |" for a in release["artifacts"]),
        "",
        "## Release notes",
        "",
        pack["release_notes"] or "_No release notes were found for this version._",
        "",
        "## Approvals and signatures",
        "",
        "| environment | decision | signed by | signed at (UTC) | meaning | reason | release digest |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {a['environment']} | {a['decision']} | {a['printed_name']} ({a['signed_by']}) "
            f"| {a['signed_at']} | {a['meaning'] or '—'} | {_cell(a['reason'])} | `{a['release_digest']}` |"
            for a in pack["approvals"]
        ),
        "",
        "## Verification and tests (IV / OV / PQ)",
        "",
        "| stage | environment | result | at (UTC) | by |",
        "|---|---|---|---|---|",
        *(
            f"| {q['stage']} | {q['environment']} | {q['result']} | {q['at']} | {q['by']} |"
            for q in pack["qualification"]
        ),
        "",
        "## What each environment runs now",
        "",
        "| environment | version | state | since (UTC) |",
        "|---|---|---|---|",
        *(
            f"| {environment} | {_marked(runs['version'], runs['this_release'])} | {runs['state']} "
            f"| {runs['since']} |"
            if runs
            else f"| {environment} | — | — | — |"
            for environment, runs in pack["runs_now"].items()
        ),
        "",
        "## Deploy history per environment",
    ]
    for environment, deployments in pack["deployments"].items():
        lines += [
            "",
            f"### {environment}",
            "",
            "| version | state | run | started | finished | detail |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_marked(d['version'], d['this_release'])} | {d['state']} | {d['run_id']} "
            f"| {d['started_at']} | {d['finished_at'] or '—'} | {_cell(d['detail'] or '')} |"
            for d in deployments
        ]
    return "\n".join(lines) + "\n"


def _marked(version: str, this_release: bool) -> str:
    return f"**{version}**" if this_release else version


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def export(pack: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``evidence-<bundle>-<version>.json`` and ``.md`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"evidence-{pack['release']['bundle']}-{pack['release']['version']}"
    json_path, markdown_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(pack, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    markdown_path.write_text(to_markdown(pack), encoding="utf-8")
    return json_path, markdown_path
