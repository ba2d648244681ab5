"""The bundle commands authenticate as `databricks` does: environment, profiles, databricks-sdk, Airflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_promotion.cli import main
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace.auth import AuthError, resolve_cli_auth

BUNDLE = "bundle: {name: authed}\nworkspace: {root_path: /Shared/authed}\n"
NO_AUTH = ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CLIENT_ID")


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    (tmp_path / "databricks.yml").write_text(BUNDLE)
    return tmp_path


@pytest.fixture(autouse=True)
def no_auth_from_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials of the machine's user leak in; the config file is the test's own."""
    for name in NO_AUTH:
        monkeypatch.delenv(name, raising=False)
    config_file = tmp_path / "databrickscfg"
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config_file))
    return config_file


def validated_user(capsys: pytest.CaptureFixture[str], bundle_dir: Path, *flags: str) -> str:
    code = main(["bundle", "validate", "-o", "json", "--bundle-dir", str(bundle_dir), *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return str(json.loads(captured.out)["workspace"]["current_user"]["userName"])


def test_host_and_token_in_the_environment_authenticate(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", workspaces.base_url("dev"))
    monkeypatch.setenv("DATABRICKS_TOKEN", workspaces.token("dev"))

    assert validated_user(capsys, bundle_dir) == workspaces.user_name("dev")


def test_a_profile_named_with_p_authenticates_and_beats_the_environment(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    no_auth_from_the_machine: Path,
) -> None:
    no_auth_from_the_machine.write_text(
        f"[prod]\nhost = {workspaces.base_url('prod')}\ntoken = {workspaces.token('prod')}\n"
    )
    monkeypatch.setenv("DATABRICKS_HOST", workspaces.base_url("dev"))
    monkeypatch.setenv("DATABRICKS_TOKEN", workspaces.token("dev"))

    assert validated_user(capsys, bundle_dir, "-p", "prod") == workspaces.user_name("prod")


def test_the_default_profile_is_used_when_nothing_else_is_set(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    no_auth_from_the_machine: Path,
) -> None:
    no_auth_from_the_machine.write_text(
        f"[DEFAULT]\nhost = {workspaces.base_url('staging')}\ntoken = {workspaces.token('staging')}\n"
    )

    assert validated_user(capsys, bundle_dir) == workspaces.user_name("staging")


def test_other_auth_types_go_through_databricks_sdk(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    no_auth_from_the_machine: Path,
) -> None:
    """An explicit auth_type is the SDK's to resolve; here its own `pat` reaches the workspace."""
    no_auth_from_the_machine.write_text(
        f"[sdk]\nhost = {workspaces.base_url('dev')}\ntoken = {workspaces.token('dev')}\nauth_type = pat\n"
    )
    auth = resolve_cli_auth("sdk")
    assert auth is not None
    assert "through databricks-sdk" in auth.source

    assert validated_user(capsys, bundle_dir, "-p", "sdk") == workspaces.user_name("dev")


def test_an_unknown_profile_fails_naming_the_file_and_the_profiles(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str], no_auth_from_the_machine: Path
) -> None:
    no_auth_from_the_machine.write_text("[dev]\nhost = https://dev.example.com\ntoken = x\n")

    code = main(["bundle", "validate", "--bundle-dir", str(bundle_dir), "-p", "prod"])

    err = capsys.readouterr().err
    assert code == 1
    assert f"Error: {no_auth_from_the_machine} has no prod profile configured (profiles: dev)" in err


def test_a_profile_without_a_host_is_an_error(no_auth_from_the_machine: Path) -> None:
    no_auth_from_the_machine.write_text("[dev]\ntoken = x\n")

    with pytest.raises(AuthError, match="has no host"):
        resolve_cli_auth("dev")


def test_without_any_credentials_validate_runs_unauthenticated(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert resolve_cli_auth() is None
    code = main(["bundle", "validate", "-o", "json", "--bundle-dir", str(bundle_dir)])

    assert code == 0
    assert "current_user" not in json.loads(capsys.readouterr().out)["workspace"]


def test_a_wrong_token_is_an_error_that_does_not_show_the_token(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", workspaces.base_url("dev"))
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-not-the-right-one")

    code = main(["bundle", "validate", "--bundle-dir", str(bundle_dir)])

    err = capsys.readouterr().err
    assert code == 1
    assert "HTTP 403 PERMISSION_DENIED" in err
    assert "dapi-not-the-right-one" not in err


def test_a_create_whose_answer_is_lost_is_not_sent_again(workspaces: WorkspaceEmulator) -> None:
    auth = resolve_cli_auth(
        environ={"DATABRICKS_HOST": workspaces.base_url("dev"), "DATABRICKS_TOKEN": workspaces.token("dev")}
    )
    assert auth is not None
    workspaces.fail_next("dev", 503)
    before = len(workspaces.requests("dev"))

    with pytest.raises(WorkspaceApiError) as failed:
        auth.workspace().call("POST", "2.2/jobs/create", {"name": "once"}, idempotent=False)

    assert failed.value.outcome_unknown
    assert len(workspaces.requests("dev")) == before + 1


def test_env_var_auth_never_imports_airflow(workspaces: WorkspaceEmulator, bundle_dir: Path) -> None:
    """Airflow takes seconds to import: a validate authenticated as the CLI is must not pay for it."""
    probe = (
        "import sys\nfrom bundle_promotion.cli import main\n"
        f"code = main(['bundle', 'validate', '-o', 'json', '--bundle-dir', {str(bundle_dir)!r}])\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'airflow'), file=sys.stderr)\n"
        "sys.exit(code)"
    )
    environment = {
        "PATH": "/usr/bin:/bin",
        "DATABRICKS_HOST": workspaces.base_url("dev"),
        "DATABRICKS_TOKEN": workspaces.token("dev"),
        "DATABRICKS_CONFIG_FILE": str(bundle_dir / "none"),
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environment, check=False
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["workspace"]["current_user"]["userName"] == workspaces.user_name("dev")
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_a_read_that_meets_a_server_error_is_sent_again(workspaces: WorkspaceEmulator) -> None:
    auth = resolve_cli_auth(
        environ={"DATABRICKS_HOST": workspaces.base_url("dev"), "DATABRICKS_TOKEN": workspaces.token("dev")}
    )
    assert auth is not None
    workspaces.fail_next("dev", 503)

    me = auth.workspace().call("GET", "2.0/preview/scim/v2/Me")

    assert me["userName"] == workspaces.user_name("dev")


def test_the_profile_whose_host_is_the_targets_workspace_host_is_used(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    no_auth_from_the_machine: Path,
) -> None:
    no_auth_from_the_machine.write_text(
        f"[DEFAULT]\nhost = {workspaces.base_url('dev')}\ntoken = {workspaces.token('dev')}\n"
        f"[prod]\nhost = {workspaces.base_url('prod')}\ntoken = {workspaces.token('prod')}\n"
    )
    prod_host = workspaces.base_url("prod")
    targets = f"targets:\n  dev: {{default: true}}\n  prod:\n    workspace: {{host: {prod_host}}}\n"
    (bundle_dir / "databricks.yml").write_text(BUNDLE + targets)

    assert validated_user(capsys, bundle_dir, "-t", "prod") == workspaces.user_name("prod")
    assert validated_user(capsys, bundle_dir, "-t", "dev") == workspaces.user_name("dev")


def test_the_targets_workspace_profile_names_the_profile(
    workspaces: WorkspaceEmulator,
    bundle_dir: Path,
    capsys: pytest.CaptureFixture[str],
    no_auth_from_the_machine: Path,
) -> None:
    no_auth_from_the_machine.write_text(
        f"[staging-sp]\nhost = {workspaces.base_url('staging')}\ntoken = {workspaces.token('staging')}\n"
    )
    (bundle_dir / "databricks.yml").write_text(
        BUNDLE + "targets:\n  staging:\n    workspace: {profile: staging-sp}\n"
    )

    assert validated_user(capsys, bundle_dir) == workspaces.user_name("staging")


def test_two_profiles_for_the_targets_host_are_an_error(
    bundle_dir: Path, capsys: pytest.CaptureFixture[str], no_auth_from_the_machine: Path
) -> None:
    no_auth_from_the_machine.write_text(
        "[a]\nhost = https://adb-1.example.com\ntoken = x\n"
        "[b]\nhost = https://adb-1.example.com/\ntoken = y\n"
    )
    (bundle_dir / "databricks.yml").write_text(
        BUNDLE.replace("{root_path", "{host: https://adb-1.example.com, root_path")
    )

    code = main(["bundle", "validate", "--bundle-dir", str(bundle_dir)])

    assert code == 1
    assert "multiple profiles of" in capsys.readouterr().err
