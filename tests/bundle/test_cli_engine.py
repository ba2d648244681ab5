"""The CLI engine against a recorded-output stand-in for `databricks` on PATH.

These tests check what the engine asks of the CLI (arguments, folder, environment)
and how it reads the answers and maps failures, not deploys.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.bundle.deploy.cli_engine import CliCredentials, CliEngine
from bundle_promotion.errors import BundleConfigError, DeployError, LockHeld

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
RECORDINGS = Path(__file__).resolve().parents[1] / "cli_recordings"
TOKEN = "dapi-secret-token-0123456789"
CREDENTIALS = CliCredentials("https://staging.example.com", {"DATABRICKS_TOKEN": TOKEN})
STAND_IN = """#!{python}
import json, os, sys
from pathlib import Path
folder = Path(sys.argv[0]).resolve().parent.parent
with (folder / "calls.jsonl").open("a") as calls:
    calls.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}) + "\\n")
command = sys.argv[2]
for stream, name in ((sys.stdout, "stdout"), (sys.stderr, "stderr")):
    recorded = folder / "scenario" / f"{{command}}.{{name}}"
    stream.write(recorded.read_text() if recorded.exists() else "")
rc = folder / "scenario" / f"{{command}}.rc"
sys.exit(int(rc.read_text()) if rc.exists() else 0)
"""


class StandIn:
    """A `databricks` on PATH that replays one recorded scenario and records each call."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def play(self, scenario: str) -> None:
        shutil.rmtree(self.folder / "scenario", ignore_errors=True)
        shutil.copytree(RECORDINGS / scenario, self.folder / "scenario")

    def calls(self) -> list[dict[str, Any]]:
        lines = (self.folder / "calls.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    binary = tmp_path / "bin" / "databricks"
    binary.parent.mkdir()
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "someone-elses-profile")
    stand_in = StandIn(tmp_path)
    stand_in.play("deployed")
    return stand_in


@pytest.fixture
def engine() -> CliEngine:
    return CliEngine(CREDENTIALS)


def test_load_runs_validate_for_the_target_in_the_bundle_folder(stand_in: StandIn, engine: CliEngine) -> None:
    bundle = engine.load(EXAMPLE_BUNDLE, "staging")

    (call,) = stand_in.calls()
    assert call["argv"] == ["bundle", "validate", "-t", "staging", "-o", "json"]
    assert Path(call["cwd"]) == EXAMPLE_BUNDLE
    assert (bundle.name, bundle.target, bundle.mode) == ("example_etl", "staging", "production")
    assert bundle.workspace.state_path == "/Workspace/Shared/.bundle/example_etl/staging/state"
    assert bundle.resources["jobs"]["etl"]["name"] == "[staging] example_etl nightly"


def test_credentials_go_in_the_environment_never_on_the_command_line(
    stand_in: StandIn, engine: CliEngine
) -> None:
    engine.deploy(engine.load(EXAMPLE_BUNDLE, "staging"))

    for call in stand_in.calls():
        assert TOKEN not in " ".join(call["argv"])
        assert call["env"]["DATABRICKS_TOKEN"] == TOKEN
        assert call["env"]["DATABRICKS_HOST"] == "https://staging.example.com"
        assert "DATABRICKS_CONFIG_PROFILE" not in call["env"]  # the worker's own settings stay out


def test_deploy_auto_approves_and_reads_the_ids_from_summary(stand_in: StandIn, engine: CliEngine) -> None:
    result = engine.deploy(engine.load(EXAMPLE_BUNDLE, "staging"))

    assert [call["argv"][1:] for call in stand_in.calls()] == [
        ["validate", "-t", "staging", "-o", "json"],
        ["deploy", "-t", "staging", "--auto-approve"],
        ["summary", "-t", "staging", "-o", "json"],
    ]
    assert {key: resource.id for key, resource in result.resources.items()} == {
        "resources.jobs.etl": "1000000000101",
        "resources.jobs.integration_tests": "1000000000102",
        "resources.pipelines.sales": "0fa5c3b2-1111-4111-8111-111111111111",
    }
    assert result.write_calls is None


def test_force_lock_is_a_flag_and_variables_go_in_the_environment(stand_in: StandIn) -> None:
    engine = CliEngine(CREDENTIALS, variables={"catalog": "staging"})

    engine.deploy(engine.load(EXAMPLE_BUNDLE, "staging"), force_lock=True)

    deploy = stand_in.calls()[1]
    assert deploy["argv"] == ["bundle", "deploy", "-t", "staging", "--auto-approve", "--force-lock"]
    assert deploy["env"]["BUNDLE_VAR_catalog"] == "staging"


def test_the_cli_sees_none_of_the_workers_other_connections_or_databases(
    stand_in: StandIn, engine: CliEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_PROD", "databricks://:dapi-prod-token@prod.example.com")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow:db-password@db/airflow")
    monkeypatch.setenv("BUNDLE_VAR_catalog", "prod")  # a variable of the worker's, not of this deploy

    engine.load(EXAMPLE_BUNDLE, "staging")

    (call,) = stand_in.calls()
    assert sorted(
        name for name in call["env"] if name.startswith(("AIRFLOW", "BUNDLE_VAR_", "DATABRICKS_"))
    ) == [
        "DATABRICKS_HOST",
        "DATABRICKS_TOKEN",
    ]
    assert call["env"]["PATH"] == os.environ["PATH"]


def test_the_token_is_scrubbed_from_what_the_cli_prints_on_stdout(
    stand_in: StandIn, engine: CliEngine, tmp_path: Path
) -> None:
    (tmp_path / "scenario" / "validate.stdout").write_text(f"Using token {TOKEN}, not JSON\n")

    with pytest.raises(DeployError) as raised:
        engine.load(EXAMPLE_BUNDLE, "staging")

    assert "Using token ***" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_a_held_lock_is_lock_held_with_the_clis_message(stand_in: StandIn, engine: CliEngine) -> None:
    bundle = engine.load(EXAMPLE_BUNDLE, "staging")
    stand_in.play("lock_held")

    with pytest.raises(LockHeld) as raised:
        engine.deploy(bundle)

    assert str(raised.value) == (
        "deploy lock acquired by ci-bot@example.com at 2026-11-22 03:00:00.000 +0000 UTC. "
        "Another deployment may be in progress. Use --force-lock to override, "
        "but this may conflict with the other deployment if it is still active"
    )


def test_a_failed_validation_is_a_bundle_config_error(stand_in: StandIn, engine: CliEngine) -> None:
    stand_in.play("validation_failed")

    with pytest.raises(BundleConfigError) as raised:
        engine.load(EXAMPLE_BUNDLE, "staging")

    assert raised.value.file == str(EXAMPLE_BUNDLE / "databricks.yml")
    assert raised.value.problem.startswith("no value assigned to required variable catalog.")


def test_other_failures_are_deploy_errors_without_the_token(
    stand_in: StandIn, engine: CliEngine, tmp_path: Path
) -> None:
    scenario = tmp_path / "scenario"
    (scenario / "deploy.stderr").write_text(f"Error: Invalid access token {TOKEN}\n")
    (scenario / "deploy.rc").write_text("1")
    bundle = engine.load(EXAMPLE_BUNDLE, "staging")

    with pytest.raises(DeployError) as raised:
        engine.deploy(bundle)

    assert "Invalid access token ***" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_a_missing_cli_says_so(engine: CliEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(DeployError, match="needs the Databricks CLI: `databricks` is not on PATH"):
        engine.load(EXAMPLE_BUNDLE, "staging")


def test_destroy_reports_what_it_deleted(stand_in: StandIn, engine: CliEngine) -> None:
    result = engine.destroy(engine.load(EXAMPLE_BUNDLE, "staging"))

    assert stand_in.calls()[2]["argv"] == ["bundle", "destroy", "-t", "staging", "--auto-approve"]
    assert {resource.action for resource in result.resources.values()} == {"delete"}


def test_deployed_lists_the_jobs_only(stand_in: StandIn, engine: CliEngine) -> None:
    deployed = engine.deployed(engine.load(EXAMPLE_BUNDLE, "staging"))

    assert sorted(deployed) == ["resources.jobs.etl", "resources.jobs.integration_tests"]


def test_the_hook_gives_the_cli_its_host_and_token(workspaces: Any) -> None:
    from bundle_promotion.hooks.workspace import WorkspaceHook

    credentials = WorkspaceHook("databricks_staging").cli_credentials()

    assert credentials.host == workspaces.base_url("staging")
    assert credentials.environment == {"DATABRICKS_TOKEN": workspaces.token("staging")}
    assert workspaces.token("staging") not in repr(credentials)
