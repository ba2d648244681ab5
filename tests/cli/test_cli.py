"""The `bundle-promotion` command, run in-process through `main`."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.cli import main
from bundle_promotion.spec import spec_json_schema

PROJECT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = PROJECT / "include" / "promotions" / "example.yaml"
BAD_SPEC = "bundle: Sales\nsource: {repo: https://github.com/acme/sales.git}\nenvironments: []\n"


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert "spec" in capsys.readouterr().out


def test_importing_the_cli_loads_neither_pydantic_nor_yaml() -> None:
    probe = "import sys, bundle_promotion.cli; print(sorted({'pydantic', 'yaml'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "[]"


def test_spec_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "schema"]) == 0
    output = capsys.readouterr().out
    assert json.loads(output) == spec_json_schema()
    assert output.startswith('{\n  "$schema"')


def test_spec_check_prints_ok_for_a_valid_spec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "check", str(EXAMPLE_SPEC)]) == 0
    assert capsys.readouterr().out == f"ok {EXAMPLE_SPEC}\n"


def test_spec_check_prints_the_error_and_fails_for_a_bad_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_SPEC)
    assert main(["spec", "check", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}:1: bundle: must start with a lowercase letter")


def test_spec_check_of_a_folder_reports_every_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a_bad.yaml").write_text(BAD_SPEC)
    (tmp_path / "b_good.yaml").write_text(EXAMPLE_SPEC.read_text())
    assert main(["spec", "check", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'a_bad.yaml'}:1: bundle:")
    assert lines[-1] == f"ok {tmp_path / 'b_good.yaml'}"


def test_spec_check_reads_the_specs_the_dag_file_reads_wherever_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "project" / "include" / "promotions"
    specs.mkdir(parents=True)
    (specs / "example.yaml").write_text(EXAMPLE_SPEC.read_text())
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "project" / "dags"))
    monkeypatch.delenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["spec", "check"]) == 0
    assert capsys.readouterr().out == f"ok {specs / 'example.yaml'}\n"


def test_spec_check_of_a_folder_without_specs_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["spec", "check", str(tmp_path)]) == 1
    assert "no promotion specs" in capsys.readouterr().err


def test_spec_check_of_a_missing_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "check", str(tmp_path / "nowhere.yaml")]) == 1
    assert "cannot read the file" in capsys.readouterr().out


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replaces the workspace emulator's `serve` and records its calls: workspaces, host and,
    when there is one, the webhook's port."""
    calls: list[tuple[Any, ...]] = []
    fake = types.ModuleType("bundle_promotion.testing.workspace")

    def serve(workspaces: dict[str, int], host: str, webhook_port: int | None) -> None:
        calls.append((workspaces, host) if webhook_port is None else (workspaces, host, webhook_port))

    fake.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bundle_promotion.testing.workspace", fake)
    return calls


def test_workspace_emulator_serves_each_named_workspace_on_its_port(served: list[Any]) -> None:
    assert main(["workspace-emulator", "--workspace", "dev=8001", "--workspace", "staging=8002"]) == 0
    assert served == [({"dev": 8001, "staging": 8002}, "127.0.0.1")]


def test_workspace_emulator_listens_on_the_given_host(served: list[Any]) -> None:
    assert main(["workspace-emulator", "--workspace", "dev=8001", "--host", "0.0.0.0"]) == 0
    assert served == [({"dev": 8001}, "0.0.0.0")]


def test_workspace_emulator_also_receives_webhooks_on_the_given_port(served: list[Any]) -> None:
    assert main(["workspace-emulator", "--workspace", "dev=8001", "--webhook", "8004"]) == 0
    assert served == [({"dev": 8001}, "127.0.0.1", 8004)]


def test_workspace_emulator_refuses_a_webhook_port_a_workspace_has(
    served: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workspace-emulator", "--workspace", "dev=8001", "--webhook", "8001"]) == 2
    assert "--webhook 8001 is a workspace's port already" in capsys.readouterr().err
    assert served == []


@pytest.mark.parametrize("port", ["http", "0", "70000"])
def test_workspace_emulator_refuses_a_webhook_port_that_is_no_port(
    served: list[Any], capsys: pytest.CaptureFixture[str], port: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["workspace-emulator", "--workspace", "dev=8001", "--webhook", port])
    assert exited.value.code == 2
    assert "expected a port from 1 to 65535" in capsys.readouterr().err
    assert served == []


@pytest.mark.parametrize("workspace", ["dev", "dev=", "=8001", "dev=http", "dev=70000"])
def test_workspace_emulator_rejects_a_workspace_that_is_not_name_equals_port(
    served: list[Any], capsys: pytest.CaptureFixture[str], workspace: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["workspace-emulator", "--workspace", workspace])
    assert exited.value.code == 2
    assert "expected NAME=PORT" in capsys.readouterr().err
    assert served == []


def test_workspace_emulator_rejects_two_workspaces_on_one_port(
    served: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["workspace-emulator", "--workspace", "dev=8001", "--workspace", "prod=8001"]) == 2
    assert "a name and a port of its own" in capsys.readouterr().err
    assert served == []


def test_installed_command_prints_the_schema() -> None:
    command = Path(sys.executable).parent / "bundle-promotion"
    result = subprocess.run([str(command), "spec", "schema"], check=True, capture_output=True, text=True)
    assert json.loads(result.stdout)["title"] == "PromotionSpec"


def test_approve_without_a_token_or_user_says_how_to_authenticate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BUNDLE_PROMOTION_TOKEN", raising=False)

    assert main(["approve", "example", "prod", "--version", "v1.0.0", "--reason", "ok"]) == 2
    assert "set BUNDLE_PROMOTION_TOKEN to a JWT of Airflow's API, or pass --user" in capsys.readouterr().err


def test_approve_needs_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["approve", "example", "prod", "--version", "v1.0.0"])
    assert exited.value.code == 2
    assert "--reason" in capsys.readouterr().err


def test_approve_withdraw_sends_a_withdrawal_of_ones_own_rejection() -> None:
    from bundle_promotion.cli import _decision, _parser

    arguments = _parser().parse_args(
        ["approve", "sales", "prod", "--digest", "d" * 64, "--withdraw", "--reason", "finance signed off"]
    )

    assert _decision(arguments, "d" * 64)["decision"] == "withdraw"


def test_hold_clear_goes_through_the_api_as_the_tokens_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.web import client

    sent: list[tuple[str, str, Any, Any]] = []

    def answer(method: str, url: str, *, json: Any, headers: Any, timeout: float) -> Any:
        sent.append((method, url, json, headers["Authorization"]))
        return types.SimpleNamespace(status_code=200, json=lambda: {"reason": "rolled back"})

    monkeypatch.setenv("BUNDLE_PROMOTION_TOKEN", "jwt-of-alice")
    monkeypatch.setattr(client.requests, "request", answer)

    code = main(["hold", "clear", "sales", "prod", "--reason", "fixed", "--api-url", "http://airflow:8080"])

    assert code == 0
    assert sent == [
        (
            "POST",
            "http://airflow:8080/bundle-promotion/dags/promote__sales/environments/prod/hold/clear",
            {"reason": "fixed"},
            "Bearer jwt-of-alice",
        )
    ]
    assert "hold on sales/prod cleared (was: rolled back)" in capsys.readouterr().out


def test_signature_unlock_goes_through_the_api_as_the_tokens_user(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bundle_promotion.web import client

    sent: list[tuple[str, str, Any, Any]] = []

    def answer(method: str, url: str, *, json: Any, headers: Any, timeout: float) -> Any:
        sent.append((method, url, json, headers["Authorization"]))
        return types.SimpleNamespace(status_code=200, json=lambda: {"signer": "alice", "lifted": True})

    monkeypatch.setenv("BUNDLE_PROMOTION_TOKEN", "jwt-of-an-admin")
    monkeypatch.setattr(client.requests, "request", answer)

    code = main(
        ["signature", "unlock", "alice", "--reason", "seen in person", "--api-url", "http://airflow:8080"]
    )

    assert code == 0
    assert sent == [
        (
            "POST",
            "http://airflow:8080/bundle-promotion/signers/alice/lockout/lift",
            {"reason": "seen in person"},
            "Bearer jwt-of-an-admin",
        )
    ]
    assert "alice may sign again" in capsys.readouterr().out
