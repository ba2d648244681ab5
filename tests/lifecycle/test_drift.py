"""Drift: each kind of hand edit is found field by field and healed; held or busy environments are not."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bundle_promotion.bundle.deploy.lock import DeployLock, LockOwner
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Artifact, DriftReport, ScheduleSnapshot
from bundle_promotion.lifecycle.drift import EnvironmentPlace, check_drift, heal, record_drift_check
from bundle_promotion.lifecycle.promotion import (
    BundleSource,
    apply_schedule_policy,
    cut_release,
    deploy_release,
)
from bundle_promotion.lifecycle.schedules import set_pause_status, set_pipeline_status
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

PLACE = EnvironmentPlace("dev", "dev", "unpaused")
ARTIFACTS = "/Workspace/Shared/.bundle/example_etl/dev/artifacts/.internal"
STATE = "/Workspace/Shared/.bundle/example_etl/dev/state"
ETL, TESTS = "resources.jobs.etl", "resources.jobs.integration_tests"
STREAM_KEY = "resources.pipelines.stream"
# A classic-compute task and grants, so a cluster and permissions can drift too.
REPORT_TASK = {
    "task_key": "report",
    "python_wheel_task": {"package_name": "example_etl", "entry_point": "report"},
    "libraries": [{"whl": "../dist/*.whl"}],
    "new_cluster": {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2},
}
GRANTS = [{"level": "CAN_VIEW", "group_name": "analysts"}]
OTHER_WHEEL = b"a wheel built somewhere else"
STREAM = {
    "resources": {"pipelines": {"stream": {"name": "[${bundle.target}] orders stream", "continuous": True}}}
}


def with_report_task_grants_and_stream(repo: Path) -> None:
    config_file = repo / "resources" / "etl.job.yml"
    config = yaml.safe_load(config_file.read_text())
    etl = config["resources"]["jobs"]["etl"]
    etl["tasks"].append(REPORT_TASK)
    etl["permissions"] = GRANTS
    config_file.write_text(yaml.safe_dump(config))
    (repo / "resources" / "stream.pipeline.yml").write_text(yaml.safe_dump(STREAM))


class Environment:
    """The dev environment running v1.0.0 as a promotion left it, and the means to check and heal it."""

    def __init__(
        self, api: WorkspaceHook, ledger: Ledger, source: BundleSource, store: ArtifactStore, checkouts: Path
    ):
        self.api, self.ledger, self.source, self.store, self.checkouts = api, ledger, source, store, checkouts

    def promote(self, release_id: int, run_id: str = "manual__1") -> int:
        deployment = deploy_release(
            self.source,
            release_id,
            environment="dev",
            target="dev",
            run_id=run_id,
            api=self.api,
            ledger=self.ledger,
            store=self.store,
            checkouts=self.checkouts,
        )
        apply_schedule_policy(self.api, deployment, PLACE.policy, hold_in_force=False)
        self.ledger.finish_deployment(deployment.deployment_id, "succeeded")
        return deployment.deployment_id

    def check(self) -> DriftReport:
        return check_drift(
            self.api, self.ledger, self.source, PLACE, store=self.store, checkouts=self.checkouts
        )

    def heal(self, report: DriftReport, mode: Any = "redeploy") -> Any:
        return heal(
            report,
            mode,
            self.source,
            PLACE,
            api=self.api,
            ledger=self.ledger,
            store=self.store,
            checkouts=self.checkouts,
            actor="alice",
        )

    def artifact(self) -> Artifact:
        running = self.ledger.current_release("example_etl", "dev")
        assert running is not None
        [artifact] = running[0].artifacts
        return artifact

    def job_id(self, key: str) -> str:
        state = workspace_files.read_json(self.api, f"{STATE}/resources.json")
        assert state is not None
        return str(state["state"][key]["__id__"])

    def job(self, key: str) -> dict[str, Any]:
        return self.api.call("GET", "2.2/jobs/get", query={"job_id": int(self.job_id(key))})["settings"]

    def reset_job(self, key: str, settings: dict[str, Any]) -> None:
        self.api.call(
            "POST", "2.2/jobs/reset", body={"job_id": int(self.job_id(key)), "new_settings": settings}
        )


@pytest.fixture
def dev(workspaces: WorkspaceEmulator, bundle_repo: Callable[..., Path], tmp_path: Path) -> Environment:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    source = BundleSource("example_etl", str(bundle_repo(edit=with_report_task_grants_and_stream)))
    store = ArtifactStore(tmp_path / "store")  # type: ignore[arg-type]  # a Path is a storage path here
    checkouts = tmp_path / "checkouts"
    environment = Environment(WorkspaceHook("databricks_dev"), ledger, source, store, checkouts)
    release_id = cut_release(
        source, "v1.0.0", targets=["dev"], test_jobs=[], ledger=ledger, store=store, checkouts=checkouts
    )
    environment.promote(release_id)
    return environment


def edit_by_hand(dev: Environment) -> str:
    """One edit of each kind; returns the path of the wheel it changed."""
    etl = dev.job(ETL)
    etl["schedule"] = {**etl["schedule"], "quartz_cron_expression": "0 0 5 * * ?", "pause_status": "PAUSED"}
    report = next(task for task in etl["tasks"] if task["task_key"] == "report")
    report["new_cluster"]["num_workers"] = 8
    dev.reset_job(ETL, etl)
    dev.api.call(
        "PUT",
        f"2.0/permissions/jobs/{dev.job_id(ETL)}",
        body={"access_control_list": [{"permission_level": "CAN_MANAGE", "group_name": "analysts"}]},
    )
    dev.api.call("POST", "2.2/jobs/delete", body={"job_id": int(dev.job_id(TESTS))})
    wheel = f"{ARTIFACTS}/{dev.artifact().name}"
    workspace_files.write_bytes(dev.api, wheel, OTHER_WHEEL)
    return wheel


def test_a_promoted_environment_has_no_drift(dev: Environment) -> None:
    report = dev.check()

    assert (report.status, report.version, report.findings) == ("in_sync", "v1.0.0", ())


def test_each_hand_edit_is_reported_field_by_field(dev: Environment) -> None:
    wheel = edit_by_hand(dev)

    report = dev.check()

    assert report.status == "drifted"
    assert [(f.resource, f.field, f.expected, f.actual) for f in report.findings] == [
        (wheel, "sha256", dev.artifact().sha256, hashlib.sha256(OTHER_WHEEL).hexdigest()),
        (ETL, "schedule.pause_status", "UNPAUSED", "PAUSED"),
        (ETL, "schedule.quartz_cron_expression", "0 0 2 * * ?", "0 0 5 * * ?"),
        (ETL, "tasks[report].new_cluster.num_workers", 2, 8),
        (
            f"{ETL}.permissions",
            "permissions",
            [{"permission_level": "CAN_VIEW", "group_name": "analysts"}],
            [{"permission_level": "CAN_MANAGE", "group_name": "analysts"}],
        ),
        (TESTS, "id", dev.job_id(TESTS), None),
    ]


def test_a_redeploy_heal_restores_every_edit_and_a_second_check_finds_nothing(dev: Environment) -> None:
    edit_by_hand(dev)
    drifted = dev.check()

    healed = dev.heal(drifted)

    assert (healed.outcome, healed.findings) == ("healed", drifted.findings)
    assert dev.check().findings == ()
    assert dev.ledger.drift_heals("example_etl", "dev") == [healed]
    [heal_event] = [e for e in dev.ledger.audit_events() if e.action == "drift.heal_healed"]
    assert (heal_event.actor, heal_event.subject) == ("alice", "example_etl/dev")
    current = dev.ledger.current_deployment("example_etl", "dev")
    assert current is not None
    assert (current.state, current.version, current.run_id.startswith("drift_heal__")) == (
        "succeeded",
        "v1.0.0",
        True,
    )


def test_a_schedules_only_heal_restores_the_pause_state_and_nothing_else(dev: Environment) -> None:
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")
    etl = dev.job(ETL)
    dev.reset_job(ETL, {**etl, "name": "etl (hotfix)"})

    dev.heal(dev.check(), "schedules_only")

    assert [(f.resource, f.field) for f in dev.check().findings] == [(ETL, "name")]


def test_a_continuous_pipeline_stopped_by_hand_is_drift_and_a_schedules_heal_restarts_it(
    dev: Environment,
) -> None:
    stream = dev.job_id(STREAM_KEY)
    set_pipeline_status(dev.api, [stream], "PAUSED")

    drifted = dev.check()
    dev.heal(drifted, "schedules_only")

    assert [(f.resource, f.field, f.expected, f.actual) for f in drifted.findings] == [
        (STREAM_KEY, "continuous", True, False)
    ]
    assert dev.check().findings == ()


def test_a_maintenance_hold_expects_every_schedule_paused(dev: Environment) -> None:
    dev.ledger.hold_schedules("example_etl", "dev", ScheduleSnapshot(()), reason="maintenance", actor="bob")

    findings = dev.check().findings

    assert [(f.resource, f.field, f.expected, f.actual) for f in findings] == [
        (ETL, "schedule.pause_status", "PAUSED", "UNPAUSED"),
        (STREAM_KEY, "continuous", False, True),
    ]


def test_a_held_environment_is_not_healed_and_the_refusal_is_recorded(dev: Environment) -> None:
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")
    dev.ledger.hold_environment("example_etl", "dev", reason="rolled back", actor="bob")

    refused = dev.heal(dev.check())

    assert refused.outcome == "refused"
    assert "example_etl/dev is held" in refused.reason
    assert [(f.field, f.actual) for f in dev.check().findings] == [("schedule.pause_status", "PAUSED")]
    assert dev.ledger.audit_events()[-1].action == "drift.heal_refused"


def test_an_environment_a_promotion_is_deploying_is_not_healed(dev: Environment) -> None:
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")
    report = dev.check()
    release = dev.ledger.current_release("example_etl", "dev")
    assert release is not None
    dev.ledger.start_deployment(
        bundle="example_etl",
        environment="dev",
        target="dev",
        release_id=release[1].release_id,
        run_id="manual__2",
    )

    refused = dev.heal(report)

    assert refused.outcome == "refused"
    assert "a promotion is deploying v1.0.0 here (run manual__2" in refused.reason
    assert dev.job(ETL)["schedule"]["pause_status"] == "PAUSED"


def test_a_deploy_outside_any_promotion_holding_the_lock_refuses_the_redeploy(dev: Environment) -> None:
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")
    someone = LockOwner("cli", "deploy", "dev")
    DeployLock(dev.api, "/Workspace/Shared/.bundle/example_etl/dev/state", owner=someone)._acquire(
        "eve@example.com"
    )

    refused = dev.heal(dev.check())

    assert refused.outcome == "refused"
    assert "eve@example.com" in refused.reason
    current = dev.ledger.current_deployment("example_etl", "dev")
    assert current is not None
    assert current.run_id == "manual__1"


def test_checks_are_kept_and_the_audit_trail_records_only_changes(dev: Environment) -> None:
    def check() -> tuple[DriftReport, bool]:
        return record_drift_check(
            dev.api, dev.ledger, dev.source, PLACE, store=dev.store, checkouts=dev.checkouts
        )

    first = check()
    set_pause_status(dev.api, [dev.job_id(ETL)], "PAUSED")
    found = check()
    drifted, changed = check()

    assert (first[1], found[1], changed) == (True, True, False)
    assert dev.ledger.latest_drift_reports("example_etl") == [drifted]
    assert [e.action for e in dev.ledger.audit_events() if e.action.startswith("drift.")] == [
        "drift.in_sync",
        "drift.drifted",
    ]


def test_an_environment_nothing_was_deployed_to_is_not_deployed_rather_than_drifted(dev: Environment) -> None:
    place = EnvironmentPlace("staging", "staging", "paused")

    report = check_drift(dev.api, dev.ledger, dev.source, place, store=dev.store, checkouts=dev.checkouts)

    assert (report.status, report.findings) == ("not_deployed", ())
