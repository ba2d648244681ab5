"""`bundle-promotion bundle deploy|plan|destroy`, against the workspace emulator, as `databricks bundle`."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion.cli import main
from bundle_promotion.cli.bundle import PIPELINE_APPROVAL_MESSAGE
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace import files as workspace_files

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
COMMAND = Path(sys.executable).parent / "bundle-promotion"
STAGING_ROOT = "/Workspace/Shared/.bundle/example_etl/staging"
LOCK = f"{STAGING_ROOT}/state/deploy.lock"
EXAMPLE_JOBS = ["[staging] example_etl integration tests", "[staging] example_etl nightly"]
STAGING = ["-t", "staging", "--databricks-conn-id", "databricks_staging"]
NO_TTY = "please specify --auto-approve to skip interactive confirmation checks for non tty consoles"
PIPELINE_BUNDLE = """
bundle: {{name: demo}}
workspace: {{root_path: /Shared/demo}}
resources:
  pipelines:
    sales: {{name: sales pipeline, catalog: main, schema: sales, storage: {storage}}}
"""


@pytest.fixture(autouse=True)
def no_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_BUNDLE_TARGET", raising=False)


@pytest.fixture
def hook(workspaces: WorkspaceEmulator) -> WorkspaceHook:
    return WorkspaceHook(
        "databricks_staging", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()}
    )


@pytest.fixture
def bundle_dir(workspaces: WorkspaceEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example bundle with its wheel "built", as the current folder; the emulator emptied."""
    folder = tmp_path / "example_bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder, ignore=shutil.ignore_patterns("dist", ".databricks"))
    (folder / "dist").mkdir()
    (folder / "dist" / "example_etl-1.0.0-py3-none-any.whl").write_bytes(b"a wheel")
    monkeypatch.chdir(folder)
    return folder


def bundle(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    """Run `bundle-promotion bundle ...` in-process: the exit code, stdout and stderr."""
    code = main(["bundle", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def job_names(hook: WorkspaceHook) -> list[str]:
    return sorted(job["settings"]["name"] for job in hook.call("GET", "2.2/jobs/list").get("jobs", []))


def writes(emulator: WorkspaceEmulator, since: int = 0) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests("staging")[since:] if r.method != "GET"]


def hold_the_lock(hook: WorkspaceHook, user: str) -> None:
    workspace_files.make_dirs(hook, f"{STAGING_ROOT}/state")
    holder = {"ID": "another-run", "AcquisitionTime": "2026-11-30T01:00:00Z", "IsForced": False, "User": user}
    workspace_files.write_json(hook, LOCK, holder)


# --- deploy ----------------------------------------------------------------------------------------


def test_deploy_creates_the_jobs_and_reports_progress_on_stderr(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = bundle(capsys, "deploy", *STAGING)

    assert code == 0
    assert job_names(hook) == EXAMPLE_JOBS
    assert out == ""
    assert err.splitlines() == [
        f"Uploading bundle files to {STAGING_ROOT}/files...",
        "Deploying resources...",
        "Deployment complete!",
    ]


def test_a_second_deploy_writes_nothing(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0
    before = len(workspaces.requests("staging"))

    code, out, _ = bundle(capsys, "deploy", *STAGING, "-o", "json")

    assert code == 0
    assert writes(workspaces, since=before) == []
    assert {resource["action"] for resource in json.loads(out)["resources"].values()} == {"skip"}
    assert job_names(hook) == EXAMPLE_JOBS


def test_deploy_json_names_each_resource_its_id_and_what_was_done(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = bundle(capsys, "deploy", *STAGING, "-o", "json")

    resources = json.loads(out)["resources"]
    assert code == 0
    etl = resources["resources.jobs.etl"]
    assert etl["type"] == "jobs"
    assert etl["action"] == "create"
    assert etl["name"] == "[staging] example_etl nightly"
    assert hook.call("GET", "2.2/jobs/get", query={"job_id": etl["id"]})["settings"]["name"] == etl["name"]


def test_deploy_takes_the_target_from_databricks_bundle_target(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_BUNDLE_TARGET", "staging")

    code, _, _ = bundle(capsys, "deploy", "--databricks-conn-id", "databricks_staging")

    assert code == 0
    assert job_names(hook) == EXAMPLE_JOBS


def test_deploy_with_variables_uses_them(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = bundle(capsys, "deploy", *STAGING, "--var", "schema=finance", "-o", "json")

    etl_id = json.loads(out)["resources"]["resources.jobs.etl"]["id"]
    settings = hook.call("GET", "2.2/jobs/get", query={"job_id": etl_id})["settings"]
    assert code == 0
    assert settings["tasks"][0]["python_wheel_task"]["parameters"][-2:] == ["--schema", "finance"]


def test_a_held_lock_fails_with_the_clis_message_and_prints_nothing_on_stdout(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_the_lock(hook, "alice@example.com")
    before = len(workspaces.requests("staging"))

    code, out, err = bundle(capsys, "deploy", *STAGING, "-o", "json")

    assert code == 1
    assert out == ""
    error = err.split("Error: ", 1)[1]
    assert error.startswith("deploy lock acquired by alice@example.com at 2026-11-30T01:00:00Z")
    assert "Use --force-lock to override" in error
    assert writes(workspaces, since=before) == []
    assert job_names(hook) == []


def test_force_lock_deploys_over_a_held_lock_and_releases_it(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hold_the_lock(hook, "alice@example.com")

    code, _, err = bundle(capsys, "deploy", *STAGING, "--force-lock")

    assert code == 0
    assert job_names(hook) == EXAMPLE_JOBS
    assert workspace_files.read_json(hook, LOCK) is None
    assert "Warning: broke the deploy lock acquired by alice@example.com at 2026-11-30T01:00:00Z" in err


def test_a_forced_deploy_that_changes_nothing_still_clears_a_stale_lock(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0
    hold_the_lock(hook, "alice@example.com")

    code, _, err = bundle(capsys, "deploy", *STAGING, "--force-lock")

    assert code == 0
    assert workspace_files.read_json(hook, LOCK) is None
    assert "broke the deploy lock acquired by alice@example.com" in err


def test_deploy_to_a_connection_that_does_not_exist_fails_with_exit_1(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = bundle(capsys, "deploy", "-t", "staging", "--databricks-conn-id", "nowhere")

    assert code == 1
    assert out == ""
    assert err.startswith("Error: ")
    assert "nowhere" in err


def test_validate_against_a_connection_that_does_not_exist_fails_with_exit_1(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = bundle(capsys, "validate", "-t", "staging", "--databricks-conn-id", "nowhere")

    assert (code, out) == (1, "")
    assert err.startswith("Error: ")
    assert "nowhere" in err


def test_an_invalid_bundle_fails_deploy_with_exit_1(
    workspaces: WorkspaceEmulator, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = bundle(
        capsys, "deploy", "-t", "nosuchtarget", "--databricks-conn-id", "databricks_staging"
    )

    assert code == 1
    assert err.startswith("Error: ")
    assert "nosuchtarget" in err
    assert writes(workspaces) == []


def test_an_unknown_flag_exits_1_as_the_cli_does(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "deploy", *STAGING, "--no-such-flag"])

    assert exited.value.code == 1
    assert "Error: unrecognized arguments: --no-such-flag" in capsys.readouterr().err


# --- deleting or recreating a pipeline needs approval ----------------------------------------------


@pytest.fixture
def deployed_pipeline(hook: WorkspaceHook, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A bundle whose pipeline is deployed, then given a new `storage`: the next deploy recreates it."""
    folder = tmp_path / "pipeline_bundle"
    folder.mkdir()
    (folder / "databricks.yml").write_text(PIPELINE_BUNDLE.format(storage="/mnt/sales"))
    assert (
        bundle(capsys, "deploy", "--databricks-conn-id", "databricks_staging", "--bundle-dir", str(folder))[0]
        == 0
    )
    (folder / "databricks.yml").write_text(PIPELINE_BUNDLE.format(storage="/mnt/elsewhere"))
    return folder


def pipeline_storages(hook: WorkspaceHook) -> list[str]:
    listed = hook.call("GET", "2.0/pipelines").get("statuses", [])
    return [
        hook.call("GET", f"2.0/pipelines/{pipeline['pipeline_id']}")["spec"]["storage"] for pipeline in listed
    ]


def test_recreating_a_pipeline_without_auto_approve_and_no_tty_fails(
    workspaces: WorkspaceEmulator,
    hook: WorkspaceHook,
    deployed_pipeline: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = len(workspaces.requests("staging"))

    code, _, err = bundle(
        capsys, "deploy", "--databricks-conn-id", "databricks_staging", "--bundle-dir", str(deployed_pipeline)
    )

    assert code == 1
    assert f"{PIPELINE_APPROVAL_MESSAGE}\n  recreate resources.pipelines.sales\n" in err
    assert "Error: the deployment requires destructive actions" in err
    assert "Please specify --auto-approve" in err
    assert writes(workspaces, since=before) == []


def test_auto_approve_recreates_the_pipeline(
    hook: WorkspaceHook, deployed_pipeline: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--databricks-conn-id", "databricks_staging", "--bundle-dir", str(deployed_pipeline)]

    code, out, _ = bundle(capsys, "deploy", *arguments, "--auto-approve", "-o", "json")

    assert code == 0
    assert json.loads(out)["resources"]["resources.pipelines.sales"]["action"] == "recreate"
    assert pipeline_storages(hook) == ["/mnt/elsewhere"]


# --- plan ------------------------------------------------------------------------------------------


def test_plan_json_lists_the_changes_and_writes_nothing(
    workspaces: WorkspaceEmulator, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = bundle(capsys, "plan", *STAGING, "-o", "json")

    plan = json.loads(out)
    assert code == 0
    assert plan["plan_version"] == 2
    assert {key: change["action"] for key, change in plan["plan"].items()} == {
        "resources.jobs.etl": "create",
        "resources.jobs.integration_tests": "create",
    }
    assert writes(workspaces) == []


def test_plan_after_a_config_change_shows_the_update_in_the_clis_text(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0

    code, out, _ = bundle(capsys, "plan", *STAGING, "--var", "schema=finance")

    assert code == 0
    assert out == "update jobs.etl\n\nPlan: 0 to add, 1 to change, 0 to delete, 1 unchanged\n"


def test_plan_with_nothing_to_do_prints_only_the_counts(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0

    assert bundle(capsys, "plan", *STAGING)[:2] == (
        0,
        "Plan: 0 to add, 0 to change, 0 to delete, 2 unchanged\n",
    )


# --- destroy ---------------------------------------------------------------------------------------


def test_destroy_with_auto_approve_removes_the_jobs_and_the_folder(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0

    code, out, err = bundle(capsys, "destroy", *STAGING, "--auto-approve")

    assert code == 0
    assert out == ""
    assert job_names(hook) == []
    assert workspace_files.read_bytes(hook, f"{STAGING_ROOT}/state/resources.json") is None
    assert "  delete resources.jobs.etl\n" in err
    assert err.endswith("Destroy complete!\n")


def test_destroy_of_a_target_never_deployed_says_so_and_writes_nothing(
    workspaces: WorkspaceEmulator, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = bundle(capsys, "destroy", *STAGING, "--auto-approve")

    assert (code, out, err) == (0, "", "No active deployment found to destroy!\n")
    assert writes(workspaces) == []


def test_destroy_without_auto_approve_and_no_tty_fails_and_deletes_nothing(
    workspaces: WorkspaceEmulator, hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0
    before = len(workspaces.requests("staging"))

    code, out, err = bundle(capsys, "destroy", *STAGING)

    assert (code, out, err) == (1, "", f"Error: {NO_TTY}\n")
    assert workspaces.requests("staging")[before:] == []
    assert job_names(hook) == EXAMPLE_JOBS


def test_destroy_while_another_deployment_holds_the_lock_fails(
    hook: WorkspaceHook, bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0
    hold_the_lock(hook, "alice@example.com")

    code, _, err = bundle(capsys, "destroy", *STAGING, "--auto-approve")

    assert code == 1
    assert "Error: deploy lock acquired by alice@example.com" in err
    assert job_names(hook) == EXAMPLE_JOBS


# --- as a process: stdout carries only the result --------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "plan", "deploy", "summary"])
def test_the_installed_command_prints_only_json_on_stdout(
    workspaces: WorkspaceEmulator, bundle_dir: Path, command: str
) -> None:
    """Airflow, imported by the hook, logs to stdout unless the command keeps stdout for its result."""
    result = subprocess.run(
        [str(COMMAND), "bundle", command, "-o", "json", *STAGING],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), dict)


def at_a_terminal(arguments: list[str], answer: bytes) -> tuple[int, str]:
    """Run the installed command with stdin and stderr on a terminal; answer its question."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [str(COMMAND), *arguments], stdin=secondary, stderr=secondary, stdout=subprocess.DEVNULL
    )
    os.close(secondary)
    transcript = b""
    deadline = time.monotonic() + 60
    while b"[y/n]: " not in transcript and time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], deadline - time.monotonic())
        if not ready:
            break
        transcript += os.read(primary, 4096)
    os.write(primary, answer)
    code = process.wait(timeout=60)
    transcript += _drain(primary)
    os.close(primary)
    return code, transcript.decode()


def _drain(terminal: int) -> bytes:
    read = b""
    while select.select([terminal], [], [], 0)[0]:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the other end is closed
            break
        if not chunk:
            break
        read += chunk
    return read


@pytest.mark.parametrize(
    ("answer", "jobs_left", "said"),
    [(b"n\n", EXAMPLE_JOBS, "Destroy cancelled!"), (b"y\n", [], "Destroy complete!")],
)
def test_destroy_at_a_terminal_asks_first(
    hook: WorkspaceHook,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    answer: bytes,
    jobs_left: list[str],
    said: str,
) -> None:
    assert bundle(capsys, "deploy", *STAGING)[0] == 0

    code, transcript = at_a_terminal(["bundle", "destroy", *STAGING], answer)

    assert code == 0
    assert "Would you like to proceed? [y/n]: " in transcript
    assert said in transcript
    assert job_names(hook) == jobs_left


def test_declining_a_pipeline_recreate_at_a_terminal_cancels_the_deploy(
    hook: WorkspaceHook, deployed_pipeline: Path
) -> None:
    arguments = ["--databricks-conn-id", "databricks_staging", "--bundle-dir", str(deployed_pipeline)]

    code, transcript = at_a_terminal(["bundle", "deploy", *arguments], b"n\n")

    assert code == 0
    assert "  recreate resources.pipelines.sales" in transcript
    assert "Deployment cancelled!" in transcript
    assert pipeline_storages(hook) == ["/mnt/sales"]
