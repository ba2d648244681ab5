"""The native engine on pipelines, permissions, plans, modes, destroy and state kept with the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.bundle.config.load import ResolvedBundle, load_bundle
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.bundle.deploy.plan import describe, plan_json
from bundle_promotion.bundle.deploy.state import StateCache
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

ROOT = "/Workspace/Shared/demo"
CREATES = ("/jobs/create", "/api/2.0/pipelines")
FAST_RETRIES = {"stop": stop_after_attempt(3), "wait": wait_none()}
NOTEBOOK = "# Databricks notebook source\nprint('dlt')\n"


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook("databricks_staging", retry_args=FAST_RETRIES)


@pytest.fixture
def me(hook: WorkspaceHook) -> dict[str, Any]:
    return hook.call("GET", "2.0/preview/scim/v2/Me")


def write_bundle(folder: Path, resources: str, extra: str = "") -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "dlt.py").write_text(NOTEBOOK)
    root = f"bundle: {{name: demo}}\nworkspace: {{root_path: /Shared/demo}}\n{dedent(extra)}\nresources:\n"
    (folder / "databricks.yml").write_text(root + resources)
    return folder


PIPELINE_AND_JOB = """
  pipelines:
    sales:
      name: sales pipeline
      catalog: main
      schema: sales
      storage: {storage}
      libraries: [{{notebook: {{path: ./src/dlt.py}}}}]
  jobs:
    refresh:
      name: refresh sales
      tasks:
        - task_key: refresh
          pipeline_task: {{pipeline_id: "${{resources.pipelines.sales.id}}"}}
"""


def pipeline_bundle(folder: Path, storage: str = "/mnt/sales") -> ResolvedBundle:
    return load_bundle(write_bundle(folder, PIPELINE_AND_JOB.format(storage=storage)), "")


def writes(emulator: WorkspaceEmulator, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests("staging")[since:] if r.method != "GET"]


def remote_state(hook: WorkspaceHook) -> dict[str, Any]:
    state = workspace_files.read_json(hook, f"{ROOT}/state/resources.json")
    assert isinstance(state, dict)
    return state


# --- pipelines --------------------------------------------------------------------------------------


def test_a_pipeline_is_created_before_the_job_that_uses_its_id(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    result = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))

    pipeline_id = result.resources["resources.pipelines.sales"].id
    spec = hook.call("GET", f"2.0/pipelines/{pipeline_id}")["spec"]
    assert spec["libraries"] == [{"notebook": {"path": f"{ROOT}/files/src/dlt"}}]
    assert spec["deployment"] == {"kind": "BUNDLE", "metadata_file_path": f"{ROOT}/state/metadata.json"}
    job_id = result.resources["resources.jobs.refresh"].id
    task = hook.call("GET", "2.2/jobs/get", query={"job_id": job_id})["settings"]["tasks"][0]
    assert task["pipeline_task"]["pipeline_id"] == pipeline_id
    assert remote_state(hook)["state"]["resources.jobs.refresh"]["depends_on"] == [
        {"node": "resources.pipelines.sales", "label": "${resources.pipelines.sales.id}"}
    ]


def test_a_changed_pipeline_is_edited_in_place(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    first = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))
    (tmp_path / "databricks.yml").write_text(
        (tmp_path / "databricks.yml").read_text().replace("schema: sales", "schema: sales_v2")
    )
    before = len(workspaces.requests("staging"))

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, ""))

    pipeline_id = first.resources["resources.pipelines.sales"].id
    assert result.resources["resources.pipelines.sales"].action == "update"
    assert ("PUT", f"/api/2.0/pipelines/{pipeline_id}") in writes(workspaces, since=before)
    assert hook.call("GET", f"2.0/pipelines/{pipeline_id}")["spec"]["schema"] == "sales_v2"
    assert result.resources["resources.jobs.refresh"].action == "skip"


def test_a_changed_storage_recreates_the_pipeline_and_updates_the_job_using_it(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    first = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))

    result = NativeEngine(hook).deploy(pipeline_bundle(tmp_path, storage="/mnt/sales_v2"))

    old_id, new_id = (
        first.resources["resources.pipelines.sales"].id,
        result.resources["resources.pipelines.sales"].id,
    )
    assert result.resources["resources.pipelines.sales"].action == "recreate"
    assert new_id != old_id
    assert [p["pipeline_id"] for p in hook.call("GET", "2.0/pipelines").get("statuses", [])] == [new_id]
    job_id = result.resources["resources.jobs.refresh"].id
    task = hook.call("GET", "2.2/jobs/get", query={"job_id": job_id})["settings"]["tasks"][0]
    assert (result.resources["resources.jobs.refresh"].action, task["pipeline_task"]["pipeline_id"]) == (
        "update",
        new_id,
    )


def test_a_pipeline_removed_from_the_config_is_deleted(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    first = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))
    write_bundle(tmp_path, "  jobs:\n    other: {name: other}\n")

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, ""))

    assert result.resources["resources.pipelines.sales"].action == "delete"
    assert hook.call("GET", "2.0/pipelines").get("statuses", []) == []
    assert first.resources["resources.pipelines.sales"].id not in json.dumps(remote_state(hook)["state"])


def test_a_redeploy_with_a_pipeline_writes_nothing(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    NativeEngine(hook).deploy(pipeline_bundle(tmp_path))
    before = len(workspaces.requests("staging"))

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, ""))

    assert result.write_calls == 0
    assert writes(workspaces, since=before) == []


# --- permissions ------------------------------------------------------------------------------------


PERMITTED = """
  jobs:
    etl:
      name: etl
      permissions:
        - {level: CAN_VIEW, group_name: analysts}
"""


def test_permissions_are_put_on_the_job_after_it_is_created(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    extra = "permissions: [{level: CAN_RUN, user_name: ops@example.com}]"
    result = NativeEngine(hook).deploy(load_bundle(write_bundle(tmp_path, PERMITTED, extra), ""))

    job_id = result.resources["resources.jobs.etl"].id
    assert "permissions" not in hook.call("GET", "2.2/jobs/get", query={"job_id": job_id})["settings"]
    acl = hook.call("GET", f"2.0/permissions/jobs/{job_id}")["access_control_list"]
    direct = {
        (entry.get("group_name") or entry.get("user_name"), entry["all_permissions"][0]["permission_level"])
        for entry in acl
        if not entry["all_permissions"][0]["inherited"]
    }
    assert ("analysts", "CAN_VIEW") in direct
    assert ("ops@example.com", "CAN_MANAGE_RUN") in direct
    assert remote_state(hook)["state"]["resources.jobs.etl.permissions"]["__id__"] == f"/jobs/{job_id}"


def test_permissions_changed_by_hand_are_put_back(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    first = NativeEngine(hook).deploy(load_bundle(write_bundle(tmp_path, PERMITTED), ""))
    job_id = first.resources["resources.jobs.etl"].id
    hook.call("PUT", f"2.0/permissions/jobs/{job_id}", body={"access_control_list": []})

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, ""))

    assert result.resources["resources.jobs.etl.permissions"].action == "update"
    assert result.resources["resources.jobs.etl"].action == "skip"
    acl = hook.call("GET", f"2.0/permissions/jobs/{job_id}")["access_control_list"]
    assert any(entry.get("group_name") == "analysts" for entry in acl)


# --- plan -------------------------------------------------------------------------------------------


def test_the_plan_shows_drift_made_by_hand_with_the_changed_fields(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    first = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))
    job_id = first.resources["resources.jobs.refresh"].id
    hook.call(
        "POST", "2.2/jobs/update", body={"job_id": int(job_id), "new_settings": {"max_concurrent_runs": 9}}
    )
    hook.call(
        "POST", "2.2/jobs/update", body={"job_id": int(job_id), "new_settings": {"name": "renamed by hand"}}
    )
    before = len(workspaces.requests("staging"))

    plan = NativeEngine(hook).plan(load_bundle(tmp_path, ""))

    actions = plan_json(plan.changes, plan.state)["plan"]
    # max_concurrent_runs is in the config too: the CLI's default of 1.
    changed = ["max_concurrent_runs", "name"]
    assert actions["resources.jobs.refresh"] == {"action": "update", "changed_fields": changed}
    assert actions["resources.pipelines.sales"] == {"action": "skip"}
    assert "update   resources.jobs.refresh (max_concurrent_runs, name)" in describe(plan.changes)
    assert writes(workspaces, since=before) == []


def test_the_plan_of_a_new_target_creates_everything(hook: WorkspaceHook, tmp_path: Path) -> None:
    plan = NativeEngine(hook).plan(pipeline_bundle(tmp_path))

    document = plan_json(plan.changes, plan.state)
    assert {key: entry["action"] for key, entry in document["plan"].items()} == {
        "resources.pipelines.sales": "create",
        "resources.jobs.refresh": "create",
    }
    assert document["serial"] == 0


# --- development mode -------------------------------------------------------------------------------


def test_development_mode_deploys_without_the_lock(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, me: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: demo}\nresources: {jobs: {etl: {name: etl}}}\ntargets: {dev: {mode: development}}\n"
    )

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, "dev", current_user=me))

    job_id = result.resources["resources.jobs.etl"].id
    assert hook.call("GET", "2.2/jobs/get", query={"job_id": job_id})["settings"]["name"].startswith("[dev ")
    assert not [
        r
        for r in workspaces.requests("staging")
        if r.body and str(r.body.get("path", "")).endswith("deploy.lock")
    ]


# --- destroy ----------------------------------------------------------------------------------------


def test_destroy_deletes_the_resources_and_the_target_folder(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    bundle = pipeline_bundle(tmp_path)
    NativeEngine(hook).deploy(bundle)

    result = NativeEngine(hook).destroy(bundle)

    assert {resource.action for resource in result.resources.values()} == {"delete"}
    assert hook.call("GET", "2.2/jobs/list") == {}
    assert hook.call("GET", "2.0/pipelines").get("statuses", []) == []
    assert workspace_files.read_bytes(hook, f"{ROOT}/state/resources.json") is None


# --- state kept with the CLI ------------------------------------------------------------------------


def test_a_state_edited_as_the_cli_writes_it_converges_without_duplicates(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    """Our deploy, then the CLI's deploy (serial + 1, its version, its extra fields), then ours again."""
    first = NativeEngine(hook).deploy(pipeline_bundle(tmp_path))
    state = remote_state(hook)
    state.update({"serial": state["serial"] + 1, "cli_version": "1.13.0", "deployment_id": "d-1"})
    for entry in state["state"].values():
        entry["state"].pop("deployment", None)  # the CLI sent its own settings; they differ from ours
    workspace_files.write_json(hook, f"{ROOT}/state/resources.json", state)

    result = NativeEngine(hook).deploy(load_bundle(tmp_path, ""))

    assert {key: resource.id for key, resource in result.resources.items()} == {
        key: resource.id for key, resource in first.resources.items()
    }
    assert len(hook.call("GET", "2.2/jobs/list")["jobs"]) == 1
    assert len(hook.call("GET", "2.0/pipelines")["statuses"]) == 1
    after = remote_state(hook)
    assert (after["lineage"], after["serial"], after["deployment_id"]) == (
        state["lineage"],
        state["serial"] + 1,
        "d-1",
    )


def test_a_lost_workspace_state_is_rebuilt_by_adopting_what_the_deployment_made(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    bundle = pipeline_bundle(tmp_path)
    first = NativeEngine(hook).deploy(bundle)
    workspace_files.delete(hook, f"{ROOT}/state/resources.json")  # the remote copy lost
    seen = len(workspaces.requests("staging"))

    result = NativeEngine(hook).deploy(bundle)

    assert {key: resource.id for key, resource in result.resources.items()} == {
        key: resource.id for key, resource in first.resources.items()
    }
    requests = workspaces.requests("staging")[seen:]
    assert [r.path for r in requests if r.method == "POST" and r.path.endswith(CREATES)] == []


def test_a_local_state_of_another_lineage_is_a_stale_cache_the_workspace_state_overrides(
    hook: WorkspaceHook, tmp_path: Path
) -> None:
    bundle = pipeline_bundle(tmp_path)
    first = NativeEngine(hook).deploy(bundle)
    local = tmp_path / ".databricks" / "bundle" / "default" / "resources.json"
    document = json.loads(local.read_text())
    foreign = {key: {**entry, "__id__": "999999"} for key, entry in document["state"].items()}
    local.write_text(
        json.dumps(
            {**document, "lineage": "00000000-0000-4000-8000-000000000000", "serial": 99, "state": foreign}
        )
    )

    result = NativeEngine(hook).deploy(bundle)

    assert {resource.action for resource in result.resources.values()} == {"skip"}
    assert result.resources["resources.jobs.refresh"].id == first.resources["resources.jobs.refresh"].id


# --- summary ----------------------------------------------------------------------------------------


def test_summary_adds_the_id_and_url_of_each_deployed_resource(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    bundle = pipeline_bundle(tmp_path)
    deployed = NativeEngine(hook).deploy(bundle).resources

    document = NativeEngine(hook).summary(bundle, "https://host.example.com")

    job_id, pipeline_id = deployed["resources.jobs.refresh"].id, deployed["resources.pipelines.sales"].id
    assert document["resources"]["jobs"]["refresh"]["id"] == job_id
    assert document["resources"]["jobs"]["refresh"]["url"] == f"https://host.example.com/jobs/{job_id}"
    assert (
        document["resources"]["pipelines"]["sales"]["url"]
        == f"https://host.example.com/pipelines/{pipeline_id}"
    )


def test_the_permissions_of_a_job_that_is_gone_are_not_found(hook: WorkspaceHook) -> None:
    from bundle_promotion.bundle.resources import permissions as permissions_resource

    assert permissions_resource.read(hook, "/jobs/999") is None
    permissions_resource.delete(hook, "/jobs/999")  # nothing left to remove is fine


def test_one_checkout_deploys_a_target_to_two_workspaces_with_local_states_apart(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path
) -> None:
    bundle = pipeline_bundle(tmp_path / "checkout")
    prod = WorkspaceHook("databricks_prod", retry_args=FAST_RETRIES)

    staging_cache = StateCache(tmp_path / "states", hook.workspace_host_url())
    prod_cache = StateCache(tmp_path / "states", prod.workspace_host_url())

    NativeEngine(hook, state_cache=staging_cache).deploy(bundle)
    result = NativeEngine(prod, state_cache=prod_cache).deploy(bundle)

    assert {resource.action for resource in result.resources.values()} == {"create"}
    state_path = bundle.workspace.state_path
    assert (staging_cache.folder(state_path) / "resources.json").is_file()
    assert (prod_cache.folder(state_path) / "resources.json").is_file()
    assert staging_cache.folder(state_path) != prod_cache.folder(state_path)
    assert not (tmp_path / "checkout" / ".databricks").exists()


def test_a_state_the_cli_wrote_under_users_is_the_one_read_under_workspace_users(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, me: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "databricks.yml").write_text("bundle: {name: demo}\nresources: {jobs: {etl: {name: etl}}}\n")
    job_id = str(hook.call("POST", "2.2/jobs/create", body={"name": "etl"})["job_id"])
    cli_state_path = f"/Users/{me['userName']}/.bundle/demo/default/state"
    cli_state = {
        "state_version": 2,
        "cli_version": "1.13.0",
        "lineage": "l-1",
        "serial": 4,
        "state": {"resources.jobs.etl": {"__id__": job_id, "state": {"name": "etl"}}},
    }
    workspace_files.make_dirs(hook, cli_state_path)
    workspace_files.write_json(hook, f"{cli_state_path}/resources.json", cli_state)
    bundle = load_bundle(tmp_path, "", current_user=me)

    result = NativeEngine(hook).deploy(bundle)

    assert bundle.workspace.state_path == f"/Workspace{cli_state_path}"
    assert (result.resources["resources.jobs.etl"].action, result.resources["resources.jobs.etl"].id) == (
        "update",
        job_id,
    )
    assert len(hook.call("GET", "2.2/jobs/list")["jobs"]) == 1
    assert workspace_files.read_json(hook, f"{cli_state_path}/resources.json")["serial"] == 5


def test_the_state_we_write_has_the_clis_shape(hook: WorkspaceHook, tmp_path: Path) -> None:
    NativeEngine(hook).deploy(pipeline_bundle(tmp_path))

    state = remote_state(hook)

    assert list(state) == ["state_version", "cli_version", "lineage", "serial", "state"]
    assert (state["state_version"], state["serial"]) == (2, 1)
    for entry in state["state"].values():
        assert set(entry) <= {"__id__", "state", "depends_on"}
        assert isinstance(entry["__id__"], str)
    local = json.loads((tmp_path / ".databricks" / "bundle" / "default" / "resources.json").read_text())
    assert local == state


# --- lookups ----------------------------------------------------------------------------------------


def test_a_lookup_variable_is_resolved_by_the_workspace(hook: WorkspaceHook, tmp_path: Path) -> None:
    upstream = str(hook.call("POST", "2.2/jobs/create", body={"name": "upstream ingest"})["job_id"])
    (tmp_path / "databricks.yml").write_text(
        dedent("""
        bundle: {name: demo}
        workspace: {root_path: /Shared/demo}
        variables:
          upstream: {lookup: {job: upstream ingest}}
        resources:
          jobs:
            after: {name: after, tasks: [{task_key: t, run_job_task: {job_id: "${var.upstream}"}}]}
        """)
    )

    bundle = NativeEngine(hook).load(tmp_path, "")

    assert bundle.variables["upstream"] == upstream
    assert bundle.resources["jobs"]["after"]["tasks"][0]["run_job_task"]["job_id"] == upstream


def test_a_lookup_that_finds_nothing_names_the_kind_and_the_name(hook: WorkspaceHook, tmp_path: Path) -> None:
    from bundle_promotion.errors import BundleConfigError

    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: demo}\nworkspace: {root_path: /Shared/demo}\n"
        "variables: {upstream: {lookup: {job: missing}}}\n"
    )

    with pytest.raises(BundleConfigError, match="failed to resolve job: missing"):
        NativeEngine(hook).load(tmp_path, "")


def test_the_summary_command_prints_ids_and_urls(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.cli import main

    deployed = NativeEngine(hook).deploy(pipeline_bundle(tmp_path)).resources
    arguments = ["--databricks-conn-id", "databricks_staging", "--bundle-dir", str(tmp_path)]

    code = main(["bundle", "summary", "-o", "json", *arguments])

    job = json.loads(capsys.readouterr().out)["resources"]["jobs"]["refresh"]
    assert code == 0
    assert job["id"] == deployed["resources.jobs.refresh"].id
    assert job["url"] == f"{workspaces.base_url('staging')}/jobs/{job['id']}"
