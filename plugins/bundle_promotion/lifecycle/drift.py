"""Drift: does each environment still run what its release deployed, and putting it back.

A check compares the workspace with the release the ledger says runs there (the newest
applied deployment no rollback superseded), field by field:

- every job's, pipeline's and permission set's settings, as the release's deploy sends
  them: only the fields it sends count, the server's own defaults are not drift;
- every trigger's pause state against the environment's schedule policy, or paused while
  a maintenance hold is in force; a pipeline runs continuously only when its config and the
  policy both say so;
- each artifact's bytes, read back and hashed (``verification.artifact_mismatch``).

A check only reads. It lists the jobs once (``jobs/list`` with their tasks, paging only until
every job of the bundle is found) and reads a job on its own only when the list leaves out some
of its tasks; each pipeline, permission set and artifact is one read. The reads run
``max_workers`` at a time.

Healing (``heal``) deploys the same release again, the same bytes, or only re-asserts the
schedule policy. It refuses a held environment and one that a promotion is deploying, and
records what it did, or why it refused, in the ledger and its audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.job_settings import field_differences
from bundle_promotion.bundle.config.load import ResolvedBundle
from bundle_promotion.bundle.deploy.engine import NativeEngine, desired_settings
from bundle_promotion.bundle.deploy.plan import kind_of, with_ids
from bundle_promotion.bundle.deploy.state import read_state, resource_id
from bundle_promotion.bundle.resources import jobs as job_resource
from bundle_promotion.bundle.resources import permissions as permissions_resource
from bundle_promotion.bundle.resources import pipelines as pipeline_resource
from bundle_promotion.errors import EnvironmentHeld, LockHeld
from bundle_promotion.ledger import SYSTEM_ACTOR, DeploymentRecord, Ledger
from bundle_promotion.ledger.models import now
from bundle_promotion.ledger.records import (
    Artifact,
    DriftFinding,
    DriftHeal,
    DriftReport,
    HealMode,
    HealOutcome,
    PauseStatus,
    Release,
)
from bundle_promotion.lifecycle.holds import refuse_if_held
from bundle_promotion.lifecycle.promotion import BundleSource, apply_schedule_policy, deploy_release
from bundle_promotion.lifecycle.schedules import (
    DEFAULT_MAX_WORKERS,
    TRIGGER_FIELDS,
    TRIGGER_LIST_FIELD,
    SchedulePolicy,
    desired_status,
    set_pause_status,
    set_pipeline_status,
)
from bundle_promotion.lifecycle.verification import LIBRARY_FOLDER, artifact_mismatch
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

JOBS_PAGE_SIZE = 100  # the most jobs/list returns at once
# A deployment in these states is a promotion still at work in the environment.
_IN_FLIGHT = ("deploying", "deployed")
HEAL_RUN_PREFIX = "drift_heal__"  # the run id of a heal's redeploy, in the ledger
HEAL_DETAIL = "drift healed: the running release deployed again"


@dataclass(frozen=True)
class EnvironmentPlace:
    """Where an environment lives and the schedule state it should show."""

    environment: str
    target: str
    policy: SchedulePolicy


@dataclass(frozen=True)
class _Installation:
    """What the running release put into the environment: settings by state key, ids, artifacts."""

    bundle: ResolvedBundle
    release: Release
    expected: dict[str, dict[str, Any]]  # as the deploy sends them, ids filled in
    ids: dict[str, str]
    undeployed: list[str]  # keys the release has and the state does not

    @property
    def library_folder(self) -> str:
        return f"{self.bundle.workspace.artifact_path}/{LIBRARY_FOLDER}"

    def keys_of(self, kind: str) -> list[str]:
        return [key for key in self.expected if kind_of(key) == kind]


def check_drift(
    api: WorkspaceApi,
    ledger: Ledger,
    source: BundleSource,
    place: EnvironmentPlace,
    *,
    store: ArtifactStore,
    checkouts: Path,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> DriftReport:
    """Every field where the environment no longer runs its release; only reads the workspace."""
    running = ledger.current_release(source.bundle, place.environment)
    if running is None:
        return DriftReport(source.bundle, place.environment, now(), None, None)
    release, _deployment = running
    installation = _installation(api, source, release, place.target, store=store, checkouts=checkouts)
    status: PauseStatus = (
        "PAUSED" if ledger.schedule_hold(source.bundle, place.environment) else desired_status(place.policy)
    )
    findings = _find_drift(api, installation, status, max_workers=max_workers)
    return DriftReport(source.bundle, place.environment, now(), release.version, release.digest, findings)


def record_drift_check(
    api: WorkspaceApi,
    ledger: Ledger,
    source: BundleSource,
    place: EnvironmentPlace,
    *,
    store: ArtifactStore,
    checkouts: Path,
    actor: str = SYSTEM_ACTOR,
) -> tuple[DriftReport, bool]:
    """``check_drift``, with the report written to the ledger: what the board and the CLI show.

    Also says whether what it found changed since the environment's last check: new drift,
    drift that changed, or drift gone (what is worth telling someone about).
    """
    report = check_drift(api, ledger, source, place, store=store, checkouts=checkouts)
    return report, ledger.record_drift_report(report, actor=actor)


def _find_drift(
    api: WorkspaceApi,
    installation: _Installation,
    pause_status: PauseStatus,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
) -> tuple[DriftFinding, ...]:
    """The findings for one installation, sorted by resource then field."""
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="drift") as pool:
        artifact_findings = pool.map(
            lambda artifact: _artifact_finding(api, installation.library_folder, artifact),
            installation.release.artifacts,
        )
        remote = _read_remote(api, installation, pool)
        findings = [
            *(DriftFinding(key, "id", "deployed", None) for key in installation.undeployed),
            *_settings_findings(installation, remote, pause_status),
            *(finding for finding in artifact_findings if finding is not None),
        ]
    return tuple(sorted(findings, key=lambda finding: (finding.resource, finding.field)))


def heal(
    report: DriftReport,
    mode: HealMode,
    source: BundleSource,
    place: EnvironmentPlace,
    *,
    api: WorkspaceApi,
    ledger: Ledger,
    store: ArtifactStore,
    checkouts: Path,
    actor: str = SYSTEM_ACTOR,
) -> DriftHeal:
    """Put the environment back to its release as ``mode`` says, or refuse, saying why; both recorded.

    ``redeploy`` deploys the running release again through the engine (which updates what was
    edited and recreates what was deleted), uploads again any artifact whose bytes differ, and
    re-asserts the schedule policy; the redeploy is a deployment of its own in the ledger.
    ``schedules_only`` re-asserts the schedule policy and touches nothing else.
    """

    def outcome(result: HealOutcome, reason: str) -> DriftHeal:
        done = DriftHeal(
            report.bundle,
            report.environment,
            mode,
            result,
            reason,
            actor,
            now(),
            report.version,
            report.findings,
        )
        ledger.record_drift_heal(done)
        return done

    if refusal := _refusal(ledger, source.bundle, place.environment, report):
        return outcome("refused", refusal)
    if not report.findings:
        return outcome("in_sync", "nothing drifted")
    running = ledger.current_release(source.bundle, place.environment)
    assert running is not None  # _refusal made sure the report's release runs there
    release, deployment = running
    installation = _installation(api, source, release, place.target, store=store, checkouts=checkouts)
    hold_in_force = ledger.schedule_hold(source.bundle, place.environment) is not None
    if mode == "schedules_only":
        status: PauseStatus = "PAUSED" if hold_in_force else desired_status(place.policy)
        _assert_schedules(api, installation, status)
        return outcome("healed", f"schedule policy {place.policy} re-asserted")
    try:
        _redeploy(
            api,
            ledger,
            source,
            place,
            installation,
            deployment.release_id,
            hold_in_force=hold_in_force,
            store=store,
            checkouts=checkouts,
            actor=actor,
        )
    except LockHeld as held:  # someone deploys with the CLI, outside any promotion the ledger knows
        return outcome("refused", str(held))
    return outcome("healed", f"{release.version} deployed again with its recorded artifacts")


def _redeploy(
    api: WorkspaceApi,
    ledger: Ledger,
    source: BundleSource,
    place: EnvironmentPlace,
    installation: _Installation,
    release_id: int,
    *,
    hold_in_force: bool,
    store: ArtifactStore,
    checkouts: Path,
    actor: str,
) -> None:
    """The running release deployed again as a deployment of its own, its artifacts and policy re-asserted."""
    redeployed = deploy_release(
        source,
        release_id,
        environment=place.environment,
        target=place.target,
        run_id=f"{HEAL_RUN_PREFIX}{now():%Y%m%dT%H%M%S%f}",
        api=api,
        ledger=ledger,
        store=store,
        checkouts=checkouts,
        actor=actor,
    )
    try:
        _upload_changed_artifacts(api, installation)
        apply_schedule_policy(api, redeployed, place.policy, hold_in_force=hold_in_force)
    except Exception as error:  # no deployment stays in flight: that would refuse every later heal
        ledger.finish_deployment(redeployed.deployment_id, "failed", detail=f"drift heal failed: {error}")
        raise
    ledger.finish_deployment(redeployed.deployment_id, "succeeded", detail=HEAL_DETAIL, actor=actor)


def _refusal(ledger: Ledger, bundle: str, environment: str, report: DriftReport) -> str | None:
    """Why the environment must not be healed now, or None."""
    try:
        refuse_if_held(ledger, bundle, environment)
    except EnvironmentHeld as held:
        return str(held)
    deployments = ledger.deployments(bundle, environment)
    if deployments and deployments[0].state in _IN_FLIGHT:
        return _in_flight(deployments[0])
    if report.version is not None:
        running = ledger.current_release(bundle, environment)
        if running is None or running[0].digest != report.release_digest:
            return f"the report is about {report.version}, but the environment runs another release now"
    return None


def _in_flight(deployment: DeploymentRecord) -> str:
    return (
        f"a promotion is deploying {deployment.version} here (run {deployment.run_id}, deployment "
        f"{deployment.id}, {deployment.state}); heal once it has finished, if drift remains"
    )


def _installation(
    api: WorkspaceApi,
    source: BundleSource,
    release: Release,
    target: str,
    *,
    store: ArtifactStore,
    checkouts: Path,
) -> _Installation:
    """The release's config resolved for the target, as its deploy sent it, with the state's ids."""
    bundle_dir = source.checkout(release.commit, checkouts)
    store.fetch(release.digest, release.artifacts, bundle_dir)  # the config names the built files
    bundle = NativeEngine(api).load(bundle_dir, target)
    state = read_state(api, bundle.workspace.state_path)
    ids = {key: resource_id(entry) for key, entry in state.entries.items()}
    expected: dict[str, dict[str, Any]] = {}
    undeployed: list[str] = []
    for key, settings in desired_settings(bundle).items():
        if key in ids and (sent := _with_ids(settings, ids)) is not None:
            expected[key] = sent
        else:
            undeployed.append(key)
    return _Installation(bundle, release, expected, {key: ids[key] for key in expected}, undeployed)


def _with_ids(settings: dict[str, Any], ids: Mapping[str, str]) -> dict[str, Any] | None:
    """The settings as the deploy sent them; None when they name a resource the state does not have."""
    try:
        return dict(with_ids(settings, ids))
    except KeyError:
        return None


def _read_remote(
    api: WorkspaceApi, installation: _Installation, pool: ThreadPoolExecutor
) -> dict[str, dict[str, Any] | None]:
    """Each expected resource as the workspace has it now; None for one that is gone."""
    job_keys = installation.keys_of(job_resource.KIND)
    jobs = _listed_jobs(api, {installation.ids[key] for key in job_keys})
    reads: dict[str, Callable[[], dict[str, Any] | None]] = {
        **{
            key: partial(_job, api, installation.ids[key], jobs.get(installation.ids[key]))
            for key in job_keys
        },
        **{
            key: partial(pipeline_resource.read, api, installation.ids[key])
            for key in installation.keys_of(pipeline_resource.KIND)
        },
        **{
            key: partial(permissions_resource.read, api, installation.ids[key])
            for key in installation.keys_of(permissions_resource.KIND)
            if _parent_exists(key, installation, jobs)
        },
    }
    answers = pool.map(lambda read: read(), reads.values())
    return dict(zip(reads, answers, strict=True))


def _listed_jobs(api: WorkspaceApi, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The listed answers of the ``wanted`` jobs that exist, by id: pages until all are found."""
    found: dict[str, dict[str, Any]] = {}
    query: dict[str, Any] = {"expand_tasks": True, "limit": JOBS_PAGE_SIZE}
    while wanted - found.keys():
        answer = api.call("GET", "2.2/jobs/list", query=query)
        found.update(
            {str(job["job_id"]): job for job in answer.get("jobs", []) if str(job["job_id"]) in wanted}
        )
        if not answer.get("next_page_token"):
            break
        query = {**query, "page_token": answer["next_page_token"]}
    return found


def _job(api: WorkspaceApi, job_id: str, listed: dict[str, Any] | None) -> dict[str, Any] | None:
    """The job's settings: from the list, unless it left out some tasks (``has_more``)."""
    if listed is None:
        return None
    if listed.get("has_more"):
        return job_resource.read(api, job_id)
    return dict(listed.get("settings") or {})


def _parent_exists(permissions_key: str, installation: _Installation, jobs: Mapping[str, Any]) -> bool:
    """A deleted job takes its grants with it: one finding for the job is enough."""
    parent = permissions_key.rsplit(".", 1)[0]
    return kind_of(parent) != job_resource.KIND or installation.ids[parent] in jobs


def _settings_findings(
    installation: _Installation, remote: Mapping[str, dict[str, Any] | None], pause_status: PauseStatus
) -> Iterable[DriftFinding]:
    config = installation.bundle.resources.get(pipeline_resource.KIND, {})
    for key, sent in installation.expected.items():
        if key not in remote:
            continue  # the grants of a deleted job
        actual = remote[key]
        if actual is None:
            yield DriftFinding(key, "id", installation.ids[key], None)
            continue
        kind = kind_of(key)
        if kind == job_resource.KIND:
            sent = _with_pause_status(sent, pause_status)
        elif kind == pipeline_resource.KIND and "continuous" in sent:
            runs_continuously = bool(config[key.rsplit(".", 1)[-1]].get("continuous"))
            sent = {**sent, "continuous": runs_continuously and pause_status == "UNPAUSED"}
        for field, expected, found in field_differences(sent, actual):
            yield DriftFinding(key, field, expected, found)


def _with_pause_status(settings: Mapping[str, Any], status: PauseStatus) -> dict[str, Any]:
    """The job's settings with every trigger at ``status``: what the schedule policy leaves."""
    changed = dict(settings)
    for field in TRIGGER_FIELDS:
        if isinstance(settings.get(field), Mapping):
            changed[field] = {**settings[field], "pause_status": status}
    if isinstance(settings.get(TRIGGER_LIST_FIELD), list):
        changed[TRIGGER_LIST_FIELD] = [
            {**trigger, "pause_status": status} for trigger in settings[TRIGGER_LIST_FIELD]
        ]
    return changed


def _artifact_finding(api: WorkspaceApi, library_folder: str, artifact: Artifact) -> DriftFinding | None:
    mismatch = artifact_mismatch(api, library_folder, artifact)
    if mismatch is None:
        return None
    return DriftFinding(mismatch.resource, mismatch.field, mismatch.expected, mismatch.actual)


def _assert_schedules(api: WorkspaceApi, installation: _Installation, status: PauseStatus) -> None:
    set_pause_status(api, [installation.ids[key] for key in installation.keys_of(job_resource.KIND)], status)
    pipelines = installation.bundle.resources.get(pipeline_resource.KIND, {})
    continuous = [
        installation.ids[key]
        for key in installation.keys_of(pipeline_resource.KIND)
        if pipelines[key.rsplit(".", 1)[-1]].get("continuous")
    ]
    set_pipeline_status(api, continuous, status)


def _upload_changed_artifacts(api: WorkspaceApi, installation: _Installation) -> None:
    """The engine uploads a file only when the bundle's copy changed: one changed in the workspace
    is put back here, from the release's own bytes (fetched from the store by ``_installation``)."""
    for artifact in installation.release.artifacts:
        if artifact_mismatch(api, installation.library_folder, artifact) is not None:
            content = (installation.bundle.bundle_dir / artifact.relative_path).read_bytes()
            workspace_files.write_bytes(api, f"{installation.library_folder}/{artifact.name}", content)
