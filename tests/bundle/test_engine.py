"""The native engine and its transport, against the workspace emulator over real HTTP."""

from __future__ import annotations

import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.job_settings import differs
from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import KINDS, NativeEngine
from bundle_promotion.bundle.deploy.plan import plan_resources
from bundle_promotion.bundle.deploy.state import DeploymentState
from bundle_promotion.errors import DeployError, LockHeld, WorkspaceApiError
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
MULTI_FILE = Path(__file__).resolve().parents[1] / "bundles" / "multi_file"
WHEEL = "example_etl-1.0.0-py3-none-any.whl"
STAGING_ROOT = "/Workspace/Shared/.bundle/example_etl/staging"
FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}


@pytest.fixture
def emulator(workspaces: WorkspaceEmulator) -> WorkspaceEmulator:
    """The session's emulator, emptied, with a connection `databricks_<name>` per workspace."""
    return workspaces


@pytest.fixture
def hook(emulator: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_staging", retry_args=FAST_RETRIES)


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    """A copy of the example bundle with its wheel "built" (a stand-in file, for speed)."""
    folder = tmp_path / "example_bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder, ignore=shutil.ignore_patterns("dist", ".databricks"))
    (folder / "dist").mkdir()
    (folder / "dist" / WHEEL).write_bytes(b"a wheel")
    return folder


def staging(bundle_dir: Path) -> ResolvedBundle:
    return load_bundle(bundle_dir, "staging")


def writes(emulator: WorkspaceEmulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests("staging") if r.method != "GET"]


def imported_paths(emulator: WorkspaceEmulator) -> list[str]:
    return [r.body["path"] for r in emulator.requests("staging") if r.path == "/api/2.0/workspace/import"]


def job_settings(hook: WorkspaceHook, job_id: str) -> dict[str, Any]:
    return hook.call("GET", "2.2/jobs/get", query={"job_id": int(job_id)})["settings"]


def remote_state(hook: WorkspaceHook) -> dict[str, Any]:
    state = workspace_files.read_json(hook, f"{STAGING_ROOT}/state/resources.json")
    assert isinstance(state, dict)
    return state


# --- deploy ----------------------------------------------------------------------------------------


def test_a_first_deploy_creates_the_jobs_uploads_the_wheel_and_pushes_state(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    result = NativeEngine(hook).deploy(staging(bundle_dir))

    etl, tests = result.resources["resources.jobs.etl"], result.resources["resources.jobs.integration_tests"]
    assert (etl.action, etl.type, etl.name) == ("create", "jobs", "[staging] example_etl nightly")
    assert (tests.action, tests.name) == ("create", "[staging] example_etl integration tests")
    wheel = f"{STAGING_ROOT}/artifacts/.internal/{WHEEL}"
    assert workspace_files.read_bytes(hook, wheel) == b"a wheel"
    settings = job_settings(hook, etl.id)
    assert settings["name"] == "[staging] example_etl nightly"
    assert settings["environments"][0]["spec"]["dependencies"] == [wheel]
    state = remote_state(hook)
    assert (state["state_version"], state["serial"]) == (2, 1)
    assert state["state"]["resources.jobs.etl"]["__id__"] == etl.id
    assert state["state"]["resources.jobs.etl"]["state"]["environments"][0]["spec"]["dependencies"] == [wheel]
    assert result.write_calls == len(writes(emulator))


def test_the_bundle_files_are_uploaded_without_build_output_or_ignored_files(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    (bundle_dir / "src" / "example_etl" / "__pycache__").mkdir()
    (bundle_dir / "src" / "example_etl" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"")
    (bundle_dir / ".databricks").mkdir()
    (bundle_dir / ".databricks" / "local-state.json").write_text("{}")
    (bundle_dir / ".gitignore").write_text("dist/\n.databricks/\n*.log\n")
    (bundle_dir / "src" / "debug.log").write_text("noise")

    NativeEngine(hook).deploy(staging(bundle_dir))

    files = sorted(path for path in imported_paths(emulator) if path.startswith(f"{STAGING_ROOT}/files/"))
    assert [path.removeprefix(f"{STAGING_ROOT}/files/") for path in files] == [
        ".gitignore",
        "databricks.yml",
        "documentation/releases/1.0.0.md",
        "pyproject.toml",
        "resources/etl.job.yml",
        "resources/integration_tests.job.yml",
        "src/example_etl/__init__.py",
        "src/example_etl/main.py",
    ]


def test_a_redeploy_without_changes_writes_nothing(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    NativeEngine(hook).deploy(staging(bundle_dir))
    before = len(emulator.requests("staging"))

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    assert result.write_calls == 0
    assert {r.method for r in emulator.requests("staging")[before:]} == {"GET"}
    assert {resource.action for resource in result.resources.values()} == {"skip"}
    assert remote_state(hook)["serial"] == 1


def test_a_changed_job_is_reset_and_the_other_left_alone(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    first = NativeEngine(hook).deploy(staging(bundle_dir))
    etl_file = bundle_dir / "resources" / "etl.job.yml"
    etl_file.write_text(etl_file.read_text().replace("0 0 2 * * ?", "0 30 3 * * ?"))
    before = len(emulator.requests("staging"))

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    job_writes = [
        r for r in emulator.requests("staging")[before:] if "/jobs/" in r.path and r.method == "POST"
    ]
    etl_id = first.resources["resources.jobs.etl"].id
    assert [(r.path, r.body["job_id"]) for r in job_writes] == [("/api/2.2/jobs/reset", int(etl_id))]
    assert job_settings(hook, etl_id)["schedule"]["quartz_cron_expression"] == "0 30 3 * * ?"
    assert result.resources["resources.jobs.integration_tests"].action == "skip"
    assert remote_state(hook)["serial"] == 2


def test_the_state_keeps_its_lineage_across_deploys(hook: WorkspaceHook, bundle_dir: Path) -> None:
    NativeEngine(hook).deploy(staging(bundle_dir))
    lineage = remote_state(hook)["lineage"]
    (bundle_dir / "src" / "example_etl" / "main.py").write_text("print('changed')\n")

    NativeEngine(hook).deploy(staging(bundle_dir))

    assert (remote_state(hook)["lineage"], remote_state(hook)["serial"]) == (lineage, 2)


def test_a_changed_source_file_is_the_only_upload(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    NativeEngine(hook).deploy(staging(bundle_dir))
    (bundle_dir / "src" / "example_etl" / "main.py").write_text("print('changed')\n")
    before = len(emulator.requests("staging"))

    NativeEngine(hook).deploy(staging(bundle_dir))

    uploads = [r.body["path"] for r in emulator.requests("staging")[before:] if r.path.endswith("/import")]
    assert sorted(uploads) == [
        f"{STAGING_ROOT}/files/src/example_etl/main.py",
        f"{STAGING_ROOT}/state/bundle-promotion-files.json",
        f"{STAGING_ROOT}/state/deploy.lock",
        f"{STAGING_ROOT}/state/resources.json",
    ]


def test_a_file_gone_from_the_bundle_is_deleted_from_the_workspace(
    hook: WorkspaceHook, bundle_dir: Path
) -> None:
    NativeEngine(hook).deploy(staging(bundle_dir))
    (bundle_dir / "documentation" / "releases" / "1.0.0.md").unlink()

    NativeEngine(hook).deploy(staging(bundle_dir))

    assert workspace_files.read_bytes(hook, f"{STAGING_ROOT}/files/documentation/releases/1.0.0.md") is None


def test_a_job_removed_from_the_config_is_deleted(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    first = NativeEngine(hook).deploy(staging(bundle_dir))
    (bundle_dir / "resources" / "integration_tests.job.yml").unlink()

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    removed = first.resources["resources.jobs.integration_tests"].id
    assert result.resources["resources.jobs.integration_tests"].action == "delete"
    deletes = [r.body for r in emulator.requests("staging") if r.path == "/api/2.2/jobs/delete"]
    assert deletes == [{"job_id": int(removed)}]
    assert list(remote_state(hook)["state"]) == ["resources.jobs.etl"]


def test_a_job_deleted_by_hand_is_recreated(hook: WorkspaceHook, bundle_dir: Path) -> None:
    first = NativeEngine(hook).deploy(staging(bundle_dir))
    old_id = first.resources["resources.jobs.etl"].id
    hook.call("POST", "2.2/jobs/delete", body={"job_id": int(old_id)})

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    etl = result.resources["resources.jobs.etl"]
    assert etl.action == "create"
    assert etl.id != old_id
    assert job_settings(hook, etl.id)["name"] == "[staging] example_etl nightly"
    assert remote_state(hook)["state"]["resources.jobs.etl"]["__id__"] == etl.id


def test_a_schedule_paused_by_hand_is_put_back_as_configured(hook: WorkspaceHook, bundle_dir: Path) -> None:
    first = NativeEngine(hook).deploy(staging(bundle_dir))
    etl_id = first.resources["resources.jobs.etl"].id
    schedule = {**job_settings(hook, etl_id)["schedule"], "pause_status": "PAUSED"}
    hook.call("POST", "2.2/jobs/update", body={"job_id": int(etl_id), "new_settings": {"schedule": schedule}})

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    assert result.resources["resources.jobs.etl"].action == "update"
    assert job_settings(hook, etl_id)["schedule"]["pause_status"] == "UNPAUSED"


def test_a_job_that_uses_another_jobs_id_is_deployed_after_it(hook: WorkspaceHook, tmp_path: Path) -> None:
    bundle_dir = tmp_path / "multi_file"
    shutil.copytree(MULTI_FILE, bundle_dir)
    (bundle_dir / "dist").mkdir()
    (bundle_dir / "dist" / "multi_file-0.1-py3-none-any.whl").write_bytes(b"wheel")

    result = NativeEngine(hook).deploy(load_bundle(bundle_dir, "prod"))

    pipeline_id = result.resources["resources.jobs.pipeline"].id
    report = job_settings(hook, result.resources["resources.jobs.report"].id)
    assert report["tasks"][0]["run_job_task"]["job_id"] == int(pipeline_id)
    state = workspace_files.read_json(hook, "/Workspace/Shared/.bundle/multi_file/prod/state/resources.json")
    assert state["state"]["resources.jobs.report"]["depends_on"] == [
        {"node": "resources.jobs.pipeline", "label": "${resources.jobs.pipeline.id}"}
    ]


def test_an_artifact_that_was_not_built_is_a_deploy_error(hook: WorkspaceHook, bundle_dir: Path) -> None:
    shutil.rmtree(bundle_dir / "dist")

    with pytest.raises(DeployError) as raised:
        NativeEngine(hook).deploy(staging(bundle_dir))

    assert str(raised.value).startswith(
        "resources.jobs.etl.environments[0].spec.dependencies[0]: ./dist/*.whl matches no file: "
        "the artifact was not built."
    )


# --- planning, without a workspace ----------------------------------------------------------------


def test_fields_the_server_adds_or_leaves_empty_are_not_drift() -> None:
    sent = {"name": "etl", "tags": {}, "tasks": [{"task_key": "a"}, {"task_key": "b", "libraries": []}]}
    remote = {
        "name": "etl",
        "timeout_seconds": 0,
        "tasks": [{"task_key": "b", "run_if": "ALL_SUCCESS"}, {"task_key": "a", "timeout_seconds": 0}],
    }

    assert not differs(sent, remote)
    assert differs(sent, {**remote, "name": "renamed by hand"})
    assert differs(sent, {**remote, "tasks": remote["tasks"][:1]})


def test_jobs_are_planned_after_the_jobs_whose_ids_they_use() -> None:
    desired = {
        "resources.jobs.report": {
            "name": "r",
            "tasks": [{"run_job_task": {"job_id": "${resources.jobs.etl.id}"}}],
        },
        "resources.jobs.etl": {"name": "e"},
    }

    changes = plan_resources(desired, DeploymentState.new(), {}, KINDS)

    assert [(change.key, change.action, change.depends_on) for change in changes] == [
        ("resources.jobs.etl", "create", ()),
        ("resources.jobs.report", "create", ("resources.jobs.etl",)),
    ]


def test_a_reference_to_an_undefined_job_is_a_deploy_error() -> None:
    desired = {"resources.jobs.report": {"name": "r", "description": "after ${resources.jobs.etl.id}"}}

    with pytest.raises(DeployError, match="names a resource the bundle does not define"):
        plan_resources(desired, DeploymentState.new(), {}, KINDS)


# --- lock ------------------------------------------------------------------------------------------


def hold_lock(hook: WorkspaceHook, user: str = "ci-bot@example.com") -> None:
    workspace_files.make_dirs(hook, f"{STAGING_ROOT}/state")
    lock = {"ID": "0b4e6e3c-0000-4000-8000-000000000000", "AcquisitionTime": "2026-11-22T03:00:00Z"}
    lock.update({"IsForced": False, "User": user})
    workspace_files.write_json(hook, f"{STAGING_ROOT}/state/deploy.lock", lock)


def test_a_held_lock_stops_the_deploy_with_the_cli_message(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    hold_lock(hook)
    before = len(emulator.requests("staging"))

    with pytest.raises(LockHeld) as raised:
        NativeEngine(hook).deploy(staging(bundle_dir))

    assert str(raised.value).startswith(
        "deploy lock acquired by ci-bot@example.com at 2026-11-22T03:00:00Z. "
        "Another deployment may be in progress. Use --force-lock to override, "
        "but this may conflict with the other deployment if it is still active"
    )
    assert {r.method for r in emulator.requests("staging")[before:]} == {"GET"}


class FailingCreate:
    """Passes calls through, except that creating the job named `name` fails."""

    def __init__(self, api: WorkspaceApi, name: str) -> None:
        self._api = api
        self._name = name

    def call(
        self, method: str, path: str, body: Any = None, query: Any = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        if path == "2.2/jobs/create" and body["name"] == self._name:
            raise WorkspaceApiError(method, path, 400, "INVALID_PARAMETER_VALUE", "injected failure")
        return self._api.call(method, path, body=body, query=query, idempotent=idempotent)


def test_a_failed_job_keeps_what_the_others_did_and_releases_the_lock(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path
) -> None:
    failing = FailingCreate(hook, "[staging] example_etl nightly")

    with pytest.raises(DeployError, match=r"resources\.jobs\.etl: create failed: .*injected failure"):
        NativeEngine(failing).deploy(staging(bundle_dir))

    assert workspace_files.read_bytes(hook, f"{STAGING_ROOT}/state/deploy.lock") is None
    assert list(remote_state(hook)["state"]) == ["resources.jobs.integration_tests"]
    before = len(emulator.requests("staging"))
    retry = NativeEngine(hook).deploy(staging(bundle_dir))
    creates = [r for r in emulator.requests("staging")[before:] if r.path == "/api/2.2/jobs/create"]
    assert [r.body["name"] for r in creates] == ["[staging] example_etl nightly"]
    assert retry.resources["resources.jobs.integration_tests"].action == "skip"


# --- state compatibility ---------------------------------------------------------------------------


def test_a_state_written_by_the_cli_is_continued(hook: WorkspaceHook, bundle_dir: Path) -> None:
    settings = staging(bundle_dir).resources["jobs"]["etl"]
    etl_id = hook.call("POST", "2.2/jobs/create", body={"name": "made by the CLI"})["job_id"]
    cli_state = {
        "state_version": 2,
        "cli_version": "1.13.0",
        "lineage": "5b1c1f3e-1111-4111-8111-111111111111",
        "serial": 7,
        "state": {
            "resources.jobs.etl": {"__id__": str(etl_id), "state": settings},
            "resources.alerts.late": {"__id__": "a1", "state": {"display_name": "late orders"}},
        },
    }
    workspace_files.make_dirs(hook, f"{STAGING_ROOT}/state")
    workspace_files.write_json(hook, f"{STAGING_ROOT}/state/resources.json", cli_state)

    result = NativeEngine(hook).deploy(staging(bundle_dir))

    assert result.resources["resources.jobs.etl"].action == "update"  # its name drifted on the server
    assert result.resources["resources.jobs.etl"].id == str(etl_id)
    state = remote_state(hook)
    assert (state["lineage"], state["serial"]) == (cli_state["lineage"], 8)
    assert state["state"]["resources.alerts.late"] == cli_state["state"]["resources.alerts.late"]


def test_terraform_state_is_refused(hook: WorkspaceHook, bundle_dir: Path) -> None:
    workspace_files.make_dirs(hook, f"{STAGING_ROOT}/state")
    workspace_files.write_json(hook, f"{STAGING_ROOT}/state/terraform.tfstate", {"version": 4})

    with pytest.raises(DeployError, match="deployed by the Databricks CLI's Terraform engine"):
        NativeEngine(hook).deploy(staging(bundle_dir))


def test_deployed_lists_the_jobs_in_the_state(hook: WorkspaceHook, bundle_dir: Path) -> None:
    bundle = staging(bundle_dir)
    created = NativeEngine(hook).deploy(bundle)

    deployed = NativeEngine(hook).deployed(bundle)

    assert {key: (r.name, r.id) for key, r in deployed.items()} == {
        key: (r.name, r.id) for key, r in created.resources.items()
    }


# --- concurrency -----------------------------------------------------------------------------------


class InFlight:
    """Passes calls through and records the most that were in flight at once."""

    def __init__(self, api: WorkspaceApi) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._now = 0
        self.most = 0

    def call(
        self, method: str, path: str, body: Any = None, query: Any = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        with self._lock:
            self._now += 1
            self.most = max(self.most, self._now)
        try:
            return self._api.call(method, path, body=body, query=query, idempotent=idempotent)
        finally:
            with self._lock:
                self._now -= 1


def test_jobs_are_created_with_bounded_concurrency(
    emulator: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    jobs = "\n".join(f"    job_{index}: {{name: job {index}}}" for index in range(12))
    (tmp_path / "databricks.yml").write_text(
        f"bundle: {{name: many}}\nworkspace: {{root_path: /Shared/many}}\nresources:\n  jobs:\n{jobs}\n"
    )
    api = InFlight(hook)
    emulator.set_latency(0.05)  # long enough for calls to overlap
    try:
        result = NativeEngine(api, max_workers=4).deploy(load_bundle(tmp_path, ""))
    finally:
        emulator.set_latency(0)

    assert len(result.resources) == 12
    assert 2 <= api.most <= 4


# --- transport -------------------------------------------------------------------------------------


def test_put_and_delete_send_their_bodies(emulator: WorkspaceEmulator, hook: WorkspaceHook) -> None:
    for method in ("PUT", "DELETE"):
        with pytest.raises(WorkspaceApiError, match="ENDPOINT_NOT_FOUND"):
            hook.call(method, "2.0/no-such-api/1", body={"access_control_list": []})

    sent = [(r.method, r.path, r.body) for r in emulator.requests("staging")]
    assert sent == [
        ("PUT", "/api/2.0/no-such-api/1", {"access_control_list": []}),
        ("DELETE", "/api/2.0/no-such-api/1", {"access_control_list": []}),
    ]


def test_query_booleans_are_written_as_databricks_expects(
    emulator: WorkspaceEmulator, hook: WorkspaceHook
) -> None:
    hook.call("GET", "2.2/jobs/list", query={"expand_tasks": True})

    assert emulator.requests("staging")[0].query == {"expand_tasks": "true"}


def test_an_error_carries_the_databricks_error_code(hook: WorkspaceHook) -> None:
    with pytest.raises(WorkspaceApiError) as raised:
        hook.call("GET", "2.2/jobs/get", query={"job_id": 1})

    error = raised.value
    assert (error.method, error.path, error.status, error.error_code) == (
        "GET",
        "2.2/jobs/get",
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert "Job 1 does not exist." in str(error)


def test_server_errors_are_retried(emulator: WorkspaceEmulator, hook: WorkspaceHook) -> None:
    emulator.fail_next("staging", status=503, count=2)

    hook.call("GET", "2.2/jobs/list")

    assert [r.status for r in emulator.requests("staging")] == [503, 503, 200]


def test_the_token_never_appears_in_errors_or_logs(
    emulator: WorkspaceEmulator,
    hook: WorkspaceHook,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = emulator.token("staging")
    caplog.set_level(logging.DEBUG)
    emulator.fail_next("staging", status=503, count=3)
    failures = []
    for call in (
        lambda: hook.call("GET", "2.2/jobs/list"),  # retries exhausted
        lambda: hook.call("POST", "2.2/jobs/create", body={"tasks": "not a list"}),  # rejected
    ):
        with pytest.raises(WorkspaceApiError) as raised:
            call()
        failures.append(raised.value)
    unreachable = WorkspaceHook("databricks_staging", retry_args=FAST_RETRIES)
    unreachable.databricks_conn.port = 9  # nothing listens on the discard port
    with pytest.raises(WorkspaceApiError) as raised:
        unreachable.call("GET", "2.2/jobs/list")
    failures.append(raised.value)

    assert [error.status for error in failures] == [503, 400, 0]
    for error in failures:
        assert token not in str(error)
        assert token not in repr(error.__dict__)
    printed = capsys.readouterr()
    logs = caplog.text + printed.out + printed.err  # Airflow's task logging prints; urllib3 logs
    assert "API Request to Databricks failed" in logs  # the retries were logged
    assert token not in logs


def test_the_host_url_is_the_workspace_base(emulator: WorkspaceEmulator, hook: WorkspaceHook) -> None:
    assert hook.workspace_host_url() == emulator.base_url("staging")


def test_an_unknown_method_is_refused(hook: WorkspaceHook) -> None:
    with pytest.raises(ValueError, match=re.escape("unsupported HTTP method HEAD")):
        hook.call("HEAD", "2.2/jobs/list")
