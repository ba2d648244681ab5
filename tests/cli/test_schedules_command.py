"""`bundle-promotion schedules pause|resume|status -t TARGET`: the schedules__ DAG's steps from a shell."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tenacity import stop_after_attempt, wait_none

from bundle_promotion import settings
from bundle_promotion.bundle.deploy.engine import NativeEngine
from bundle_promotion.cli import main
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Release
from bundle_promotion.testing.workspace import WorkspaceEmulator
from tests.conftest import git

SPEC = """
bundle: example
owner: data-platform
source: {{repo: {repo}}}
environments:
  - {{name: live, target: prod, databricks_conn_id: databricks_prod, schedules: unpaused}}
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


@pytest.fixture
def deployed(
    workspaces: WorkspaceEmulator,
    ledger: Ledger,
    bundle_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """The example bundle deployed to prod, recorded in the ledger, with its spec in a specs folder.

    Returns the flags every command needs, by name.
    """
    repo = bundle_repo()
    (repo / "dist").mkdir()
    (repo / "dist" / "example_etl-1.0.0-py3-none-any.whl").write_bytes(b"a wheel")
    engine = NativeEngine(
        WorkspaceHook("databricks_prod", retry_args={"stop": stop_after_attempt(3), "wait": wait_none()})
    )
    engine.deploy(engine.load(repo, "prod"))
    release_id = ledger.record_release(Release("example", "v1.0.0", git(repo, "rev-parse", "HEAD"), (), "0"))
    ledger.start_deployment(
        bundle="example", environment="live", target="prod", release_id=release_id, run_id="r1"
    )
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "example.yaml").write_text(SPEC.format(repo=repo))
    monkeypatch.setattr(settings, "checkouts", lambda: tmp_path / "checkouts")
    return {"--specs": str(specs), "--ledger": f"sqlite:///{tmp_path / 'ledger.db'}"}


def schedules(capsys: pytest.CaptureFixture[str], *arguments: str, flags: dict[str, str]) -> tuple[int, str]:
    code = main(["schedules", *arguments, "-t", "prod", *(part for pair in flags.items() for part in pair)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return code, captured.out


def nightly_schedule(out: str) -> str:
    return next(line for line in out.splitlines() if "nightly schedule" in line)


def test_pause_records_the_states_then_pauses_and_resume_restores_them(
    deployed: dict[str, str], ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    _, before = schedules(capsys, "status", flags=deployed)
    _, paused = schedules(
        capsys, "pause", "--reason", "patching the cluster", "--actor", "alice", flags=deployed
    )
    hold = ledger.schedule_hold("example", "live")
    _, resumed = schedules(capsys, "resume", "--actor", "alice", flags=deployed)

    assert nightly_schedule(before).endswith("UNPAUSED")
    assert nightly_schedule(paused).endswith(": PAUSED")
    assert hold is not None
    assert (hold.reason, hold.actor) == ("patching the cluster", "alice")
    assert nightly_schedule(resumed).endswith("UNPAUSED")
    assert ledger.schedule_hold("example", "live") is None


def test_status_names_the_hold_in_force(deployed: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    schedules(capsys, "pause", "--reason", "maintenance", "--actor", "bob", flags=deployed)

    _, out = schedules(capsys, "status", flags=deployed)

    assert "by bob: maintenance" in out.splitlines()[0]
    assert nightly_schedule(out).endswith(": PAUSED")


def test_only_pauses_the_named_job_and_leaves_the_others(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = schedules(capsys, "pause", "--only", "etl", "--reason", "one job", flags=deployed)

    assert [line.split(":")[0] for line in out.splitlines()] == ["job [prod] example_etl nightly schedule"]


def test_an_unknown_key_fails_naming_what_is_deployed(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["schedules", "pause", "-t", "prod", "--only", "weekly", "--reason", "x", *sum(deployed.items(), ())]
    )

    assert code == 1
    assert (
        "weekly: no such job or pipeline deployed in live; deployed: etl, integration_tests"
        in capsys.readouterr().err
    )


def test_a_target_no_environment_deploys_is_an_error(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["schedules", "status", "-t", "qa", *sum(deployed.items(), ())])

    assert code == 1
    assert (
        "no single environment deploys target qa; the environments are live (target prod)"
        in capsys.readouterr().err
    )


def test_a_tag_pauses_only_what_carries_it(
    deployed: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    schedules(capsys, "pause", "--tag", "purpose=tests", "--reason", "tests only", flags=deployed)

    _, out = schedules(capsys, "status", flags=deployed)

    assert nightly_schedule(out).endswith(": UNPAUSED")
