"""The workspace emulator, driven through real HTTP by the provider's own DatabricksHook."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import requests
from airflow.providers.databricks.hooks.databricks import DatabricksHook, RunState
from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.testing.workspace import WorkspaceEmulator, emulator_fixture

emulator = emulator_fixture(["dev", "staging"], scope="module")

# The hook's own retry policy, minus the waiting between attempts.
FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}
HOME = "/Users/deployer-dev@example.com"


@pytest.fixture(autouse=True)
def empty_workspaces(emulator: WorkspaceEmulator) -> None:
    emulator.reset()


@pytest.fixture
def hook_for(emulator: WorkspaceEmulator, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], DatabricksHook]:
    def make(workspace: str) -> DatabricksHook:
        conn_id = f"databricks_{workspace}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", emulator.airflow_connection_uri(workspace))
        return DatabricksHook(conn_id, retry_args=FAST_RETRIES)

    return make


@pytest.fixture
def dev(hook_for: Callable[[str], DatabricksHook]) -> DatabricksHook:
    return hook_for("dev")


@pytest.fixture
def http(emulator: WorkspaceEmulator) -> Iterator[httpx.Client]:
    """A plain client, to see status codes and error bodies exactly as they are sent."""
    headers = {"Authorization": f"Bearer {emulator.token('dev')}"}
    with httpx.Client(base_url=emulator.base_url("dev"), headers=headers) as client:
        yield client


def call(hook: DatabricksHook, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return hook._do_api_call((method, path), body)


def error_of(hook: DatabricksHook, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    with pytest.raises(requests.HTTPError) as raised:
        hook._do_api_call((method, path), body, wrap_http_errors=False)
    response = raised.value.response
    assert response is not None
    return response.status_code, response.json()


def job_with_tasks(name: str = "nightly", **settings: Any) -> dict[str, Any]:
    return {"name": name, "tasks": [{"task_key": "ingest"}, {"task_key": "report"}], **settings}


def wait_until_terminal(hook: DatabricksHook, run_id: int, timeout: float = 5.0) -> RunState:
    deadline = time.monotonic() + timeout
    while not (state := hook.get_run_state(run_id)).is_terminal:
        assert time.monotonic() < deadline, f"run {run_id} still {state} after {timeout}s"
        time.sleep(0.05)
    return state


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Jobs ----------------------------------------------------------------------------------------


def test_created_job_reads_back_with_int64_id_and_server_defaults(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks())

    job = call(dev, "GET", "2.2/jobs/get", {"job_id": job_id})

    assert isinstance(job_id, int)
    assert job["job_id"] == job_id
    assert job["creator_user_name"] == job["run_as_user_name"] == "deployer-dev@example.com"
    assert job["settings"]["name"] == "nightly"
    assert job["settings"]["max_concurrent_runs"] == 1
    assert job["settings"]["tasks"][0] == {
        "task_key": "ingest",
        "run_if": "ALL_SUCCESS",
        "timeout_seconds": 0,
        "email_notifications": {},
    }


def test_list_filters_on_the_exact_name_ignoring_case(dev: DatabricksHook) -> None:
    wanted = dev.create_job({"name": "Deploy"})
    dev.create_job({"name": "deploy-old"})

    # Through the endpoint: the hook's list_jobs filters again, case-sensitively, on its side.
    listed = call(dev, "GET", "2.2/jobs/list", {"name": "deploy"})["jobs"]

    assert [job["job_id"] for job in listed] == [wanted]


def test_list_pages_through_every_job_newest_first(dev: DatabricksHook) -> None:
    job_ids = [dev.create_job({"name": f"job-{index}"}) for index in range(5)]

    listed = dev.list_jobs(limit=2)

    assert [job["job_id"] for job in listed] == job_ids[::-1]


def test_list_answers_has_more_under_2_1_only(dev: DatabricksHook) -> None:
    for index in range(3):
        dev.create_job({"name": f"job-{index}"})

    v21 = call(dev, "GET", "2.1/jobs/list", {"limit": 2})
    v22 = call(dev, "GET", "2.2/jobs/list", {"limit": 2})

    assert v21["has_more"] is True
    assert "has_more" not in v22
    assert v22["next_page_token"]


def test_list_leaves_tasks_out_unless_expanded(dev: DatabricksHook) -> None:
    dev.create_job(job_with_tasks())

    (brief,) = dev.list_jobs()
    (expanded,) = dev.list_jobs(expand_tasks=True)

    assert "tasks" not in brief["settings"]
    assert [task["task_key"] for task in expanded["settings"]["tasks"]] == ["ingest", "report"]


def test_update_replaces_top_level_fields_and_merges_tasks_by_key(dev: DatabricksHook) -> None:
    schedule = {"quartz_cron_expression": "0 0 5 * * ?", "timezone_id": "UTC", "pause_status": "UNPAUSED"}
    job_id = dev.create_job(job_with_tasks(schedule=schedule, tags={"team": "data"}))

    paused = {"quartz_cron_expression": "0 0 5 * * ?", "timezone_id": "UTC", "pause_status": "PAUSED"}
    new_tasks = [{"task_key": "report", "description": "v2"}, {"task_key": "publish"}]
    dev.update_job(str(job_id), {"schedule": paused, "tasks": new_tasks})

    settings = call(dev, "GET", "2.2/jobs/get", {"job_id": job_id})["settings"]
    assert settings["schedule"] == paused
    assert settings["tags"] == {"team": "data"}
    assert [(task["task_key"], task.get("description")) for task in settings["tasks"]] == [
        ("ingest", None),
        ("report", "v2"),
        ("publish", None),
    ]


def test_update_removes_top_level_fields_and_tasks_by_key(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks(tags={"team": "data"}))

    call(dev, "POST", "2.2/jobs/update", {"job_id": job_id, "fields_to_remove": ["tags", "tasks/ingest"]})

    settings = call(dev, "GET", "2.2/jobs/get", {"job_id": job_id})["settings"]
    assert "tags" not in settings
    assert [task["task_key"] for task in settings["tasks"]] == ["report"]


def test_reset_replaces_every_setting(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks(tags={"team": "data"}))

    dev.reset_job(str(job_id), {"name": "renamed"})

    settings = call(dev, "GET", "2.2/jobs/get", {"job_id": job_id})["settings"]
    assert settings["name"] == "renamed"
    assert "tags" not in settings
    assert "tasks" not in settings


def test_a_deleted_job_does_not_exist(dev: DatabricksHook) -> None:
    job_id = dev.create_job({"name": "doomed"})

    call(dev, "POST", "2.2/jobs/delete", {"job_id": job_id})

    assert error_of(dev, "GET", "2.2/jobs/get", {"job_id": job_id}) == (
        400,
        {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Job {job_id} does not exist."},
    )


def test_jobs_are_also_served_under_2_1(dev: DatabricksHook) -> None:
    job_id = dev.create_job({"name": "old-client"})

    assert call(dev, "GET", "2.1/jobs/get", {"job_id": job_id})["settings"]["name"] == "old-client"


# Runs ----------------------------------------------------------------------------------------


def test_a_run_succeeds_by_default(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks())

    run_id = dev.run_now({"job_id": job_id})

    state = dev.get_run_state(run_id)
    assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "SUCCESS")
    assert dev.get_run_page_url(run_id).endswith(f"#job/{job_id}/run/{run_id}")


def test_run_now_parameters_override_the_job_defaults(dev: DatabricksHook) -> None:
    parameters = [{"name": "emulator_result", "default": "SUCCESS"}]
    job_id = dev.create_job(job_with_tasks(parameters=parameters))

    run_id = dev.run_now({"job_id": job_id, "job_parameters": {"emulator_result": "FAILED"}})

    run = dev.get_run(run_id)
    assert run["state"]["result_state"] == "FAILED"
    assert run["status"]["termination_details"]["code"] == "RUN_EXECUTION_ERROR"
    assert {task["state"]["result_state"] for task in run["tasks"]} == {"FAILED"}
    assert run["job_parameters"] == [{"name": "emulator_result", "default": "SUCCESS", "value": "FAILED"}]


def test_a_failed_task_run_has_an_error_and_a_trace(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks(parameters=[{"name": "emulator_result", "default": "FAILED"}]))
    run_id = dev.run_now({"job_id": job_id})

    output = dev.get_run_output(dev.get_run_tasks(run_id)[0]["run_id"])

    assert "emulator_result=FAILED" in output["error"]
    assert output["error_trace"].startswith("Traceback")


def test_output_of_a_run_with_several_tasks_is_refused(dev: DatabricksHook) -> None:
    run_id = dev.run_now({"job_id": dev.create_job(job_with_tasks())})

    status, body = error_of(dev, "GET", "2.2/jobs/runs/get-output", {"run_id": run_id})

    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


def test_a_run_stays_running_for_emulator_run_seconds(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks())

    run_id = dev.run_now({"job_id": job_id, "job_parameters": {"emulator_run_seconds": "0.3"}})

    assert dev.get_run_state(run_id).life_cycle_state == "RUNNING"
    assert wait_until_terminal(dev, run_id).result_state == "SUCCESS"


def test_async_run_state_reads_get_parameters_from_the_json_body(
    emulator: WorkspaceEmulator, dev: DatabricksHook
) -> None:
    run_id = dev.run_now({"job_id": dev.create_job(job_with_tasks())})

    async def read_state() -> RunState:
        async with DatabricksHook(dev.databricks_conn_id, retry_args=FAST_RETRIES) as hook:
            return await hook.a_get_run_state(run_id)

    assert asyncio.run(read_state()).result_state == "SUCCESS"
    assert emulator.requests("dev")[-1].body == {"run_id": run_id}


def test_the_deferrable_trigger_reports_a_failed_run_and_its_task_errors(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks(parameters=[{"name": "emulator_result", "default": "FAILED"}]))
    run_id = dev.run_now({"job_id": job_id, "job_parameters": {"emulator_run_seconds": "0.2"}})
    trigger = DatabricksExecutionTrigger(run_id, dev.databricks_conn_id, polling_period_seconds=0.05)

    async def events() -> list[Any]:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(events())
    assert RunState.from_json(event.payload["run_state"]).result_state == "FAILED"
    assert [error["task_key"] for error in event.payload["errors"]] == ["ingest", "report"]


def test_runs_list_active_only_lists_unfinished_runs(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks())
    dev.run_now({"job_id": job_id})
    running = dev.run_now({"job_id": job_id, "job_parameters": {"emulator_run_seconds": "60"}})

    active = call(dev, "GET", "2.2/jobs/runs/list", {"job_id": job_id, "active_only": True})

    assert [run["run_id"] for run in active["runs"]] == [running]


def test_cancel_ends_a_running_run_as_canceled(dev: DatabricksHook) -> None:
    job_id = dev.create_job(job_with_tasks())
    run_id = dev.run_now({"job_id": job_id, "job_parameters": {"emulator_run_seconds": "60"}})

    dev.cancel_run(run_id)

    state = dev.get_run_state(run_id)
    assert (state.life_cycle_state, state.result_state) == ("TERMINATED", "CANCELED")


def test_a_missing_run_does_not_exist(dev: DatabricksHook) -> None:
    assert error_of(dev, "GET", "2.2/jobs/runs/get", {"run_id": 42}) == (
        400,
        {"error_code": "INVALID_PARAMETER_VALUE", "message": "Run 42 does not exist."},
    )


# Workspace files -----------------------------------------------------------------------------


def test_import_then_export_returns_the_same_content(dev: DatabricksHook) -> None:
    path = f"{HOME}/etl.py"

    call(dev, "POST", "2.0/workspace/import", {"path": path, "content": b64("print(1)\n"), "format": "AUTO"})
    exported = call(dev, "GET", "2.0/workspace/export", {"path": path})

    assert base64.b64decode(exported["content"]) == b"print(1)\n"
    assert call(dev, "GET", "2.0/workspace/get-status", {"path": path})["object_type"] == "FILE"


def test_workspace_prefix_names_the_same_object(dev: DatabricksHook) -> None:
    call(dev, "POST", "2.0/workspace/mkdirs", {"path": f"/Workspace{HOME}/.bundle"})

    status = call(dev, "GET", "2.0/workspace/get-status", {"path": f"{HOME}/.bundle"})

    assert status["object_type"] == "DIRECTORY"
    assert status["path"] == f"{HOME}/.bundle"


def test_list_shows_the_children_of_a_directory(dev: DatabricksHook) -> None:
    call(dev, "POST", "2.0/workspace/mkdirs", {"path": f"{HOME}/app/lib"})
    call(dev, "POST", "2.0/workspace/import", {"path": f"{HOME}/app/a.txt", "content": "", "format": "RAW"})

    listed = call(dev, "GET", "2.0/workspace/list", {"path": f"/Workspace{HOME}/app"})["objects"]

    assert [(found["path"], found["object_type"]) for found in listed] == [
        (f"/Workspace{HOME}/app/a.txt", "FILE"),
        (f"/Workspace{HOME}/app/lib", "DIRECTORY"),
    ]


def test_delete_recursive_removes_a_whole_tree(dev: DatabricksHook) -> None:
    call(dev, "POST", "2.0/workspace/mkdirs", {"path": f"{HOME}/app/lib"})

    call(dev, "POST", "2.0/workspace/delete", {"path": f"{HOME}/app", "recursive": True})

    assert error_of(dev, "GET", "2.0/workspace/get-status", {"path": f"{HOME}/app/lib"})[0] == 404


def test_delete_of_a_non_empty_directory_needs_recursive(dev: DatabricksHook) -> None:
    call(dev, "POST", "2.0/workspace/mkdirs", {"path": f"{HOME}/app/lib"})

    status, body = error_of(dev, "POST", "2.0/workspace/delete", {"path": f"{HOME}/app"})

    assert (status, body["error_code"]) == (400, "DIRECTORY_NOT_EMPTY")


def test_import_into_a_missing_directory_answers_resource_does_not_exist(dev: DatabricksHook) -> None:
    body = {"path": f"{HOME}/missing/a.txt", "content": "", "format": "RAW"}

    assert error_of(dev, "POST", "2.0/workspace/import", body) == (
        404,
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Path ({HOME}/missing) doesn't exist."},
    )


def test_import_onto_an_existing_path_needs_overwrite(dev: DatabricksHook) -> None:
    body = {"path": f"{HOME}/a.txt", "content": b64("one"), "format": "RAW"}
    call(dev, "POST", "2.0/workspace/import", body)

    status, error = error_of(dev, "POST", "2.0/workspace/import", body)
    call(dev, "POST", "2.0/workspace/import", {**body, "content": b64("two"), "overwrite": True})

    assert (status, error["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    exported = call(dev, "GET", "2.0/workspace/export", {"path": f"{HOME}/a.txt"})
    assert base64.b64decode(exported["content"]) == b"two"


def test_import_file_takes_raw_bytes_and_direct_download_returns_them(http: httpx.Client) -> None:
    upload = http.post(
        f"/api/2.0/workspace-files/import-file{HOME}/blob.bin?overwrite=true", content=b"\x00\xff"
    )

    download = http.get(
        "/api/2.0/workspace/export", params={"path": f"{HOME}/blob.bin", "direct_download": "true"}
    )

    assert upload.status_code == 200
    assert download.content == b"\x00\xff"


# Errors, auth, faults, isolation -------------------------------------------------------------


def test_an_unknown_endpoint_answers_endpoint_not_found(http: httpx.Client) -> None:
    answer = http.get("/api/2.2/jobs/nope")

    assert (answer.status_code, answer.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")


def test_a_body_that_is_not_a_json_object_answers_malformed_request(http: httpx.Client) -> None:
    answer = http.post("/api/2.2/jobs/create", content=b"{not json")

    assert (answer.status_code, answer.json()["error_code"]) == (400, "MALFORMED_REQUEST")


def test_a_wrong_token_is_refused_with_403(emulator: WorkspaceEmulator) -> None:
    answer = httpx.get(
        f"{emulator.base_url('dev')}/api/2.2/jobs/list", headers={"Authorization": "Bearer nope"}
    )

    assert answer.status_code == 403
    assert answer.json() == {"error_code": "PERMISSION_DENIED", "message": "Invalid access token."}


def test_a_missing_token_is_refused_with_401(emulator: WorkspaceEmulator) -> None:
    answer = httpx.get(f"{emulator.base_url('dev')}/api/2.2/jobs/list")

    assert (answer.status_code, answer.json()["error_code"]) == (401, "UNAUTHENTICATED")


def test_the_hook_retries_past_an_injected_429(emulator: WorkspaceEmulator, dev: DatabricksHook) -> None:
    emulator.fail_next("dev", status=429)

    dev.create_job({"name": "patient"})

    assert [request.status for request in emulator.requests("dev")] == [429, 200]


def test_fail_next_fails_exactly_count_requests(emulator: WorkspaceEmulator, http: httpx.Client) -> None:
    emulator.fail_next("dev", status=503, count=2)

    statuses = [http.get("/api/2.2/jobs/list").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert emulator.requests("dev")[0].status == 503


def test_an_injected_fault_body_names_temporarily_unavailable(
    emulator: WorkspaceEmulator, http: httpx.Client
) -> None:
    emulator.fail_next("dev", status=500)

    assert http.get("/api/2.2/jobs/list").json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_workspaces_keep_separate_jobs(hook_for: Callable[[str], DatabricksHook]) -> None:
    dev, staging = hook_for("dev"), hook_for("staging")

    job_id = dev.create_job({"name": "only-in-dev"})

    assert staging.list_jobs() == []
    assert error_of(staging, "GET", "2.2/jobs/get", {"job_id": job_id})[0] == 400


def test_a_workspace_refuses_another_workspace_token(emulator: WorkspaceEmulator) -> None:
    staging_token = {"Authorization": f"Bearer {emulator.token('staging')}"}

    answer = httpx.get(f"{emulator.base_url('dev')}/api/2.2/jobs/list", headers=staging_token)

    assert answer.status_code == 403


def test_current_user_is_the_workspace_deployer(hook_for: Callable[[str], DatabricksHook]) -> None:
    me = call(hook_for("staging"), "GET", "2.0/preview/scim/v2/Me")

    assert (me["userName"], me["active"]) == ("deployer-staging@example.com", True)


def test_the_request_log_records_method_path_query_body_and_status(
    emulator: WorkspaceEmulator, dev: DatabricksHook
) -> None:
    job_id = dev.create_job({"name": "logged"})
    call(dev, "GET", "2.2/jobs/get", {"job_id": job_id})

    create, get = emulator.requests("dev")

    assert (create.method, create.path, create.body, create.status) == (
        "POST",
        "/api/2.2/jobs/create",
        {"name": "logged"},
        200,
    )
    assert (get.method, get.query, get.body) == ("GET", {"job_id": str(job_id)}, None)


def test_reset_forgets_jobs_and_requests(emulator: WorkspaceEmulator, dev: DatabricksHook) -> None:
    dev.create_job({"name": "forgotten"})

    emulator.reset()

    assert emulator.requests("dev") == []
    assert dev.list_jobs() == []


def test_latency_delays_requests_without_serialising_them(
    emulator: WorkspaceEmulator, http: httpx.Client
) -> None:
    emulator.set_latency(0.1)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(lambda _: http.get("/api/2.2/jobs/list").status_code, range(10)))
        elapsed = time.monotonic() - started
    finally:
        emulator.set_latency(0)

    assert statuses == [200] * 10
    assert 0.1 <= elapsed < 0.6


def test_serving_prints_the_airflow_connection_of_each_workspace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.testing import workspace

    monkeypatch.setattr(workspace.WorkspaceEmulator, "serve_forever", lambda self: None)

    workspace.serve({"dev": 8001, "prod": 8002})

    assert capsys.readouterr().out.splitlines() == [
        "export AIRFLOW_CONN_DATABRICKS_DEV='databricks://:dapi-emulator-dev@127.0.0.1:8001/http'",
        "export AIRFLOW_CONN_DATABRICKS_PROD='databricks://:dapi-emulator-prod@127.0.0.1:8002/http'",
    ]


def test_serving_with_a_webhook_prints_its_connection_and_each_notification_it_receives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.testing import workspace

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        webhook_port = probe.getsockname()[1]

    def a_notification_arrives(self: object) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{webhook_port}/", data=b'{"event": "gate_waiting"}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    monkeypatch.setattr(workspace.WorkspaceEmulator, "serve_forever", a_notification_arrives)

    workspace.serve({"dev": 8001}, webhook_port=webhook_port)

    assert capsys.readouterr().out.splitlines()[1:] == [
        "export AIRFLOW_CONN_DEMO_WEBHOOK="
        f"""'{{"conn_type": "http", "host": "http://127.0.0.1:{webhook_port}"}}'""",
        '{"event": "gate_waiting"}',
    ]
