"""Schedule control against the workspace emulator over HTTP: snapshot, pause, restore, holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tenacity import stop_after_attempt, wait_none

from bundle_promotion import settings
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Release
from bundle_promotion.lifecycle.promotion import DeployedJob, EnvironmentDeployment, apply_schedule_policy
from bundle_promotion.lifecycle.schedules import (
    BundleResource,
    active_runs,
    end_maintenance,
    pause_for_maintenance,
    restore,
    select_resources,
    set_pause_status,
    snapshot,
)
from bundle_promotion.operators.schedules import PauseSchedulesOperator, ResumeSchedulesOperator
from bundle_promotion.testing.workspace import WorkspaceEmulator
from tests.conftest import git

FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}
CRON = {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "UTC"}
FILE_ARRIVAL = {"file_arrival": {"url": "/Volumes/main/landing/files/"}}
BUNDLE, ENVIRONMENT = "example", "prod"


@pytest.fixture
def api(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_prod", retry_args=FAST_RETRIES)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


def create_job(api: WorkspaceHook, name: str, **triggers: Any) -> str:
    return str(api.call("POST", "2.2/jobs/create", body={"name": name, **triggers})["job_id"])


def pause_states(api: WorkspaceHook, job_id: str) -> dict[str, str]:
    settings = api.call("GET", "2.2/jobs/get", query={"job_id": int(job_id)})["settings"]
    states = {
        field: settings[field].get("pause_status", "UNPAUSED")
        for field in ("schedule", "trigger", "continuous")
        if field in settings
    }
    for index, trigger in enumerate(settings.get("triggers", [])):
        states[f"triggers[{index}]"] = trigger.get("pause_status", "UNPAUSED")
    return states


@pytest.fixture
def mixed_jobs(api: WorkspaceHook) -> list[str]:
    """A scheduled, a file-arrival, a continuous and an already-paused job, all with their own state."""
    return [
        create_job(api, "nightly", schedule={**CRON, "pause_status": "UNPAUSED"}),
        create_job(api, "on arrival", trigger={**FILE_ARRIVAL, "pause_status": "UNPAUSED"}),
        create_job(api, "streaming", continuous={"pause_status": "UNPAUSED"}),
        create_job(api, "retired", schedule={**CRON, "pause_status": "PAUSED"}),
    ]


def pause(api: WorkspaceHook, ledger: Ledger, job_ids: list[str]) -> None:
    pause_for_maintenance(
        api,
        ledger,
        bundle=BUNDLE,
        environment=ENVIRONMENT,
        job_ids=job_ids,
        reason="patching",
        actor="ops@example.com",
    )


def resume(api: WorkspaceHook, ledger: Ledger, job_ids: list[str], *, whole_environment: bool = True) -> None:
    end_maintenance(
        api,
        ledger,
        bundle=BUNDLE,
        environment=ENVIRONMENT,
        job_ids=job_ids,
        policy="unpaused",
        whole_environment=whole_environment,
        actor="ops@example.com",
    )


def test_a_maintenance_window_pauses_every_kind_of_trigger(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)

    assert [pause_states(api, job_id) for job_id in mixed_jobs] == [
        {"schedule": "PAUSED"},
        {"trigger": "PAUSED"},
        {"continuous": "PAUSED"},
        {"schedule": "PAUSED"},
    ]


def test_the_end_of_a_window_restores_exactly_the_states_it_found(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    before = [pause_states(api, job_id) for job_id in mixed_jobs]
    pause(api, ledger, mixed_jobs)

    resume(api, ledger, mixed_jobs)

    assert [pause_states(api, job_id) for job_id in mixed_jobs] == before
    assert pause_states(api, mixed_jobs[3]) == {"schedule": "PAUSED"}
    assert ledger.schedule_hold(BUNDLE, ENVIRONMENT) is None


def test_a_second_pause_never_records_the_paused_state_as_the_one_to_restore(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)
    pause(api, ledger, mixed_jobs)

    resume(api, ledger, mixed_jobs)

    assert pause_states(api, mixed_jobs[0]) == {"schedule": "UNPAUSED"}


def test_a_deploy_during_the_window_leaves_the_schedules_paused(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)
    # A deploy resets the job to the bundle's config, which says UNPAUSED.
    api.call(
        "POST",
        "2.2/jobs/reset",
        body={"job_id": int(mixed_jobs[0]), "new_settings": {"name": "nightly", "schedule": CRON}},
    )
    deployment = EnvironmentDeployment(1, {"nightly": DeployedJob("nightly", mixed_jobs[0], "nightly")})

    hold = ledger.schedule_hold(BUNDLE, ENVIRONMENT)
    apply_schedule_policy(api, deployment, "unpaused", hold_in_force=hold is not None)

    assert pause_states(api, mixed_jobs[0]) == {"schedule": "PAUSED"}
    resume(api, ledger, mixed_jobs)
    assert pause_states(api, mixed_jobs[0]) == {"schedule": "UNPAUSED"}


def test_a_job_deployed_during_the_window_gets_the_environment_policy_at_its_end(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)
    newcomer = create_job(api, "new in this release", schedule={**CRON, "pause_status": "PAUSED"})

    resume(api, ledger, [*mixed_jobs, newcomer])

    assert pause_states(api, newcomer) == {"schedule": "UNPAUSED"}


def test_resuming_some_jobs_keeps_the_hold_on_the_others(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)

    resume(api, ledger, mixed_jobs[:1], whole_environment=False)

    assert pause_states(api, mixed_jobs[0]) == {"schedule": "UNPAUSED"}
    assert pause_states(api, mixed_jobs[1]) == {"trigger": "PAUSED"}
    hold = ledger.schedule_hold(BUNDLE, ENVIRONMENT)
    assert hold is not None
    assert hold.snapshot.job_ids == sorted(mixed_jobs[1:])


def test_restore_sends_the_whole_trigger_object_with_the_recorded_status(
    api: WorkspaceHook, workspaces: WorkspaceEmulator, mixed_jobs: list[str]
) -> None:
    taken = snapshot(api, mixed_jobs)
    set_pause_status(api, mixed_jobs, "PAUSED")
    answered_before = len(workspaces.requests("prod"))

    restore(api, taken)

    restoring = [
        request.body
        for request in workspaces.requests("prod")[answered_before:]
        if request.path.endswith("/jobs/update")
    ]
    [arrival] = [body for body in restoring if body["job_id"] == int(mixed_jobs[1])]
    assert arrival["new_settings"] == {"trigger": {**FILE_ARRIVAL, "pause_status": "UNPAUSED"}}


def test_the_triggers_list_is_paused_entry_by_entry_and_restored(api: WorkspaceHook) -> None:
    job_id = create_job(
        api,
        "two triggers",
        triggers=[
            {**FILE_ARRIVAL, "pause_status": "UNPAUSED"},
            {"periodic": {"interval": 1, "unit": "HOURS"}},
        ],
    )
    taken = snapshot(api, [job_id])

    set_pause_status(api, [job_id], "PAUSED")
    paused = pause_states(api, job_id)
    restore(api, taken)

    assert paused == {"triggers[0]": "PAUSED", "triggers[1]": "PAUSED"}
    assert pause_states(api, job_id) == {"triggers[0]": "UNPAUSED", "triggers[1]": "UNPAUSED"}


def test_jobs_already_in_the_wanted_state_are_not_written(
    api: WorkspaceHook, workspaces: WorkspaceEmulator, mixed_jobs: list[str]
) -> None:
    set_pause_status(api, mixed_jobs, "PAUSED")
    writes_before = sum(r.method == "POST" for r in workspaces.requests("prod"))

    set_pause_status(api, mixed_jobs, "PAUSED")

    assert sum(r.method == "POST" for r in workspaces.requests("prod")) == writes_before


def test_a_job_deleted_during_the_window_is_skipped_at_restore(
    api: WorkspaceHook, ledger: Ledger, mixed_jobs: list[str]
) -> None:
    pause(api, ledger, mixed_jobs)
    api.call("POST", "2.2/jobs/delete", body={"job_id": int(mixed_jobs[0])})

    resume(api, ledger, mixed_jobs[1:])

    assert pause_states(api, mixed_jobs[1]) == {"trigger": "UNPAUSED"}


def test_jobs_are_selected_by_key_and_by_every_tag() -> None:
    jobs = [
        BundleResource("etl", "1", "etl", {"team": "sales", "tier": "gold"}),
        BundleResource("report", "2", "report", {"team": "sales"}),
        BundleResource("tests", "3", "tests", {}),
    ]

    assert [job.key for job in select_resources(jobs, tags={"team": "sales", "tier": "gold"})] == ["etl"]
    assert [job.key for job in select_resources(jobs, keys=["report", "tests"])] == ["report", "tests"]
    assert len(select_resources(jobs)) == 3


def test_active_runs_lists_a_queued_run_until_it_ends(api: WorkspaceHook) -> None:
    job_id = create_job(api, "slow")
    api.call(
        "POST",
        "2.2/jobs/run-now",
        body={"job_id": int(job_id), "job_parameters": {"emulator_queue_seconds": "30"}},
    )

    [run] = active_runs(api, [job_id])

    assert (run.name, run.state) == ("slow", "QUEUED")
    api.call("POST", "2.2/jobs/runs/cancel", body={"run_id": run.run_id})
    assert active_runs(api, [job_id]) == []


def create_pipeline(api: WorkspaceHook, name: str, *, continuous: bool) -> str:
    body = {"name": name, "continuous": continuous, "libraries": [{"glob": {"include": "/src/**"}}]}
    return str(api.call("POST", "2.0/pipelines", body=body)["pipeline_id"])


def is_continuous(api: WorkspaceHook, pipeline_id: str) -> bool:
    return bool(api.call("GET", f"2.0/pipelines/{pipeline_id}")["spec"].get("continuous"))


def test_a_window_stops_a_continuous_pipeline_and_restores_it_keeping_its_spec(
    api: WorkspaceHook, ledger: Ledger
) -> None:
    streaming = create_pipeline(api, "orders stream", continuous=True)
    batch = create_pipeline(api, "orders batch", continuous=False)
    pipelines = [streaming, batch]
    pause_for_maintenance(
        api,
        ledger,
        bundle=BUNDLE,
        environment=ENVIRONMENT,
        job_ids=[],
        pipeline_ids=pipelines,
        reason="x",
        actor="ops",
    )
    paused = [is_continuous(api, pipeline_id) for pipeline_id in pipelines]

    end_maintenance(
        api,
        ledger,
        bundle=BUNDLE,
        environment=ENVIRONMENT,
        job_ids=[],
        pipeline_ids=pipelines,
        policy="unpaused",
        whole_environment=True,
        actor="ops",
    )

    assert paused == [False, False]
    assert [is_continuous(api, pipeline_id) for pipeline_id in pipelines] == [True, False]
    spec = api.call("GET", f"2.0/pipelines/{streaming}")["spec"]
    assert spec["libraries"] == [{"glob": {"include": "/src/**"}}]
    assert ledger.schedule_hold(BUNDLE, ENVIRONMENT) is None


def test_the_policy_runs_a_continuous_pipeline_again_unless_a_hold_is_in_force(api: WorkspaceHook) -> None:
    stream = create_pipeline(api, "orders stream", continuous=False)  # as the deploy step leaves it
    deployment = EnvironmentDeployment(1, {}, continuous_pipelines=(stream,))

    apply_schedule_policy(api, deployment, "unpaused", hold_in_force=True)
    during_hold = is_continuous(api, stream)
    apply_schedule_policy(api, deployment, "unpaused", hold_in_force=False)

    assert (during_hold, is_continuous(api, stream)) == (False, True)


STREAM = {
    "resources": {"pipelines": {"stream": {"name": "[${bundle.target}] orders stream", "continuous": True}}}
}
NO_TRIGGERING_USER: Any = {"dag_run": None}


@dataclass(frozen=True)
class DeployedBundle:
    arguments: dict[str, Any]  # what the lifecycle operators need to find it
    ids: dict[str, str]  # by state key, e.g. "resources.jobs.etl"


@pytest.fixture
def deployed_bundle(
    api: WorkspaceHook,
    ledger: Ledger,
    bundle_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> DeployedBundle:
    """The example bundle plus a continuous pipeline, deployed to prod and recorded in the ledger."""

    def add_stream(repo: Path) -> None:
        (repo / "resources" / "stream.pipeline.yml").write_text(yaml.safe_dump(STREAM))

    repo = bundle_repo(edit=add_stream)
    (repo / "dist").mkdir()
    (repo / "dist" / "example_etl-1.0.0-py3-none-any.whl").write_bytes(b"a wheel")
    engine = NativeEngine(api)
    result = engine.deploy(engine.load(repo, ENVIRONMENT))
    release_id = ledger.record_release(Release(BUNDLE, "v1.0.0", git(repo, "rev-parse", "HEAD"), (), "0"))
    ledger.start_deployment(
        bundle=BUNDLE, environment=ENVIRONMENT, target=ENVIRONMENT, release_id=release_id, run_id="r1"
    )
    monkeypatch.setattr(settings, "ledger", lambda: ledger)
    monkeypatch.setattr(settings, "checkouts", lambda: tmp_path / "checkouts")
    arguments = {
        "bundle": BUNDLE,
        "repo": str(repo),
        "environment": ENVIRONMENT,
        "target": ENVIRONMENT,
        "databricks_conn_id": "databricks_prod",
    }
    return DeployedBundle(arguments, {key: resource.id for key, resource in result.resources.items()})


def test_pause_and_resume_round_trip_a_continuous_pipeline_with_a_job(
    api: WorkspaceHook, deployed_bundle: DeployedBundle
) -> None:
    nightly = deployed_bundle.ids["resources.jobs.etl"]
    stream = deployed_bundle.ids["resources.pipelines.stream"]
    arguments = deployed_bundle.arguments

    PauseSchedulesOperator(task_id="pause", reason="patching", **arguments).execute(NO_TRIGGERING_USER)
    paused = (pause_states(api, nightly), is_continuous(api, stream))
    ResumeSchedulesOperator(task_id="resume", policy="paused", **arguments).execute(NO_TRIGGERING_USER)

    assert paused == ({"schedule": "PAUSED"}, False)
    assert (pause_states(api, nightly), is_continuous(api, stream)) == ({"schedule": "UNPAUSED"}, True)


def test_a_resource_keys_filter_leaves_the_pipelines_it_does_not_name_running(
    api: WorkspaceHook, deployed_bundle: DeployedBundle
) -> None:
    arguments = deployed_bundle.arguments

    PauseSchedulesOperator(task_id="pause", resource_keys=["etl"], reason="patching", **arguments).execute(
        NO_TRIGGERING_USER
    )

    assert pause_states(api, deployed_bundle.ids["resources.jobs.etl"]) == {"schedule": "PAUSED"}
    assert is_continuous(api, deployed_bundle.ids["resources.pipelines.stream"])
