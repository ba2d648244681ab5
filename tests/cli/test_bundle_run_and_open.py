"""`bundle-promotion bundle run KEY` and `bundle open KEY` against the emulator, authenticated by env vars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundle_promotion.cli import bundle_run, main
from bundle_promotion.testing.workspace import WorkspaceEmulator

BUNDLE = """
bundle: {name: runner}
workspace: {root_path: /Shared/runner}
resources:
  jobs:
    nightly:
      name: nightly
      parameters: [{name: emulator_result, default: SUCCESS}, {name: emulator_run_seconds, default: "0.2"}]
      tasks: [{task_key: main, spark_python_task: {python_file: /Shared/main.py}}]
  pipelines:
    sales:
      name: sales
      configuration: {emulator.update_seconds: "0.2"}
"""


@pytest.fixture
def deployed(
    workspaces: WorkspaceEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """The bundle, deployed to the dev workspace, with the CLI's env-var auth in force."""
    monkeypatch.delenv("DATABRICKS_BUNDLE_TARGET", raising=False)
    monkeypatch.setenv("DATABRICKS_HOST", workspaces.base_url("dev"))
    monkeypatch.setenv("DATABRICKS_TOKEN", workspaces.token("dev"))
    monkeypatch.setattr(bundle_run, "POLL_SECONDS", 0.05)
    (tmp_path / "databricks.yml").write_text(BUNDLE)
    assert main(["bundle", "deploy", "--bundle-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(["bundle", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_waits_for_the_job_and_prints_its_url_and_result(
    deployed: Path, workspaces: WorkspaceEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "nightly", "--bundle-dir", str(deployed))

    assert code == 0, err
    assert out.strip() == "SUCCESS"
    assert f"Run URL: {workspaces.base_url('dev')}" in err
    assert "RUNNING" in err
    assert "TERMINATED" in err


def test_a_failed_run_exits_1_with_its_state(deployed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "run", "nightly", "--params", "emulator_result=FAILED", "--bundle-dir", str(deployed)
    )

    assert code == 1
    assert out.strip() == "FAILED"
    assert "Error: job nightly ended FAILED" in err


def test_run_json_is_one_document_on_stdout(deployed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "run", "nightly", "-o", "json", "--bundle-dir", str(deployed))

    document = json.loads(out)
    assert code == 0
    assert (document["result"], document["succeeded"]) == ("SUCCESS", True)
    assert document["run_page_url"]


def test_no_wait_prints_the_url_and_returns_at_once(
    deployed: Path, workspaces: WorkspaceEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "nightly", "--no-wait", "--bundle-dir", str(deployed))

    assert (code, out) == (0, "")
    assert "Run URL:" in err
    assert "TERMINATED" not in err


def test_run_of_a_pipeline_starts_an_update_and_waits_for_it(
    deployed: Path, workspaces: WorkspaceEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "run", "sales", "--full-refresh", "orders", "--bundle-dir", str(deployed))

    assert code == 0, err
    assert out.strip() == "COMPLETED"
    assert f"Update URL: {workspaces.base_url('dev')}/pipelines/" in err
    started = [r for r in workspaces.requests("dev") if r.method == "POST" and r.path.endswith("/updates")]
    assert started[-1].body == {"full_refresh_selection": ["orders"]}


def test_run_of_a_key_the_bundle_does_not_have_fails(
    deployed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "run", "weekly", "--bundle-dir", str(deployed))

    assert code == 1
    assert "resources.*.weekly: names no job or pipeline" in err


def test_open_prints_the_deployed_jobs_page(
    deployed: Path, workspaces: WorkspaceEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "open", "nightly", "--bundle-dir", str(deployed))

    assert code == 0
    assert out.strip().startswith(f"{workspaces.base_url('dev')}/jobs/")


def test_open_of_a_resource_not_yet_deployed_says_to_deploy(
    workspaces: WorkspaceEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", workspaces.base_url("dev"))
    monkeypatch.setenv("DATABRICKS_TOKEN", workspaces.token("dev"))
    (tmp_path / "databricks.yml").write_text(BUNDLE)

    code, _, err = run(capsys, "open", "sales", "--bundle-dir", str(tmp_path))

    assert code == 1
    assert "not deployed to target default; run `bundle-promotion bundle deploy` first" in err


def test_a_variable_given_twice_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: demo}\nworkspace: {root_path: /Shared/demo}\nvariables: {a: {default: x}}\n"
    )

    code, _, err = run(capsys, "validate", "--var", "a=1", "--var", "a=2", "--bundle-dir", str(tmp_path))

    assert code == 1
    assert "variable a is set more than once" in err
