"""Each environment deploy is mirrored as one GitHub deployment per release, with its statuses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml

from bundle_promotion.github.deployment_mirror import record_deploy_finished, record_deploy_started
from bundle_promotion.hooks.github import GitHubRepositoryHook
from bundle_promotion.ledger.records import Release
from bundle_promotion.testing.github import GitHubEmulator
from tests.conftest import git

REPO = "acme/sales"


@pytest.fixture
def release(github: GitHubEmulator) -> Release:
    github.add_repo(REPO)
    commit = github.add_commit(REPO, {"databricks.yml": "bundle: {name: sales}\n"})
    return Release("sales", "v1.0.0", commit, (), "config-digest")


@pytest.fixture
def facts(github: GitHubEmulator) -> GitHubRepositoryHook:
    return GitHubRepositoryHook(REPO)


def test_a_started_deploy_is_an_in_progress_deployment_naming_the_release(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    deployment_id = record_deploy_started(facts, release, "staging", log_url="http://airflow/log")

    assert github.deployments(REPO) == [
        {
            "id": deployment_id,
            "sha": release.commit,
            "environment": "staging",
            "payload": {"bundle": "sales", "version": "v1.0.0", "release_digest": release.digest},
            "statuses": ["in_progress"],
        }
    ]


def test_a_retried_deploy_reuses_its_deployment_and_status(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    first = record_deploy_started(facts, release, "staging")

    again = record_deploy_started(facts, release, "staging")

    assert again == first
    assert [deployment["statuses"] for deployment in github.deployments(REPO)] == [["in_progress"]]


def test_a_finished_deploy_adds_its_final_status_once(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    record_deploy_started(facts, release, "staging")

    record_deploy_finished(facts, release, "staging", "success", description="deployed")
    record_deploy_finished(facts, release, "staging", "success", description="deployed")

    assert [deployment["statuses"] for deployment in github.deployments(REPO)] == [["in_progress", "success"]]


def test_each_environment_gets_its_own_deployment(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    record_deploy_started(facts, release, "dev")
    record_deploy_started(facts, release, "staging")

    assert [deployment["environment"] for deployment in github.deployments(REPO)] == ["dev", "staging"]


def test_another_release_of_the_same_commit_gets_its_own_deployment(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    rebuilt = Release("sales", "v1.0.1", release.commit, (), "other-config-digest")
    record_deploy_started(facts, release, "prod")
    record_deploy_finished(facts, release, "prod", "success", description="deployed")

    record_deploy_started(facts, rebuilt, "prod")
    record_deploy_finished(facts, rebuilt, "prod", "success", description="deployed")

    assert [deployment["statuses"] for deployment in github.deployments(REPO)] == [
        ["in_progress", "success", "inactive"],
        ["in_progress", "success"],
    ]


def test_finishing_a_deploy_that_never_started_on_github_creates_nothing(
    github: GitHubEmulator, facts: GitHubRepositoryHook, release: Release
) -> None:
    assert record_deploy_finished(facts, release, "prod", "failure", description="tests failed") is None
    assert github.deployments(REPO) == []


@pytest.mark.e2e
@pytest.mark.usefixtures("airflow_db", "workspaces")
def test_a_promotion_records_a_successful_deployment_per_environment(
    github: GitHubEmulator,
    bundle_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.e2e.test_promotion_e2e import promote

    checkout = published(github, bundle_repo())
    specs = spec_with_github(tmp_path, checkout, "example_github")

    dag_run = promote(monkeypatch, specs, "promote__example_github", "v1.0.0")

    assert dag_run.state == "success"
    commit = git(checkout, "rev-parse", "v1.0.0^{commit}")
    assert [(d["environment"], d["sha"], d["statuses"]) for d in github.deployments(REPO)] == [
        ("dev", commit, ["in_progress", "success"]),
        ("staging", commit, ["in_progress", "success"]),
    ]
    logs = task_logs(capfd, caplog)
    assert f"of {REPO} to staging: success" in logs
    assert github.token not in logs


@pytest.mark.e2e
@pytest.mark.usefixtures("airflow_db", "workspaces")
def test_failed_tests_mark_the_environments_deployment_failed(
    github: GitHubEmulator, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.e2e.test_promotion_e2e import fail_staging_tests, promote

    checkout = published(github, bundle_repo(edit=fail_staging_tests))
    specs = spec_with_github(tmp_path, checkout, "example_github_failing", tests=["integration_tests"])

    promote(monkeypatch, specs, "promote__example_github_failing", "v1.0.0")

    assert [(d["environment"], d["statuses"]) for d in github.deployments(REPO)] == [
        ("dev", ["in_progress", "success"]),
        ("staging", ["in_progress", "failure"]),
    ]


@pytest.mark.e2e
@pytest.mark.usefixtures("airflow_db", "workspaces")
def test_a_github_that_refuses_the_deployment_never_fails_the_promotion(
    github: GitHubEmulator,
    bundle_repo: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.e2e.test_promotion_e2e import promote

    specs = spec_with_github(
        tmp_path, bundle_repo(), "example_github_down"
    )  # the repository is not on GitHub

    dag_run = promote(monkeypatch, specs, "promote__example_github_down", "v1.0.0")

    assert dag_run.state == "success"
    assert f"Could not record the deploy as in progress on GitHub ({REPO})" in task_logs(capfd, caplog)


def task_logs(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    """What the tasks logged: dag.test() prints some records and hands others to logging."""
    return "".join(capfd.readouterr()) + caplog.text


def published(github: GitHubEmulator, checkout: Path) -> Path:
    github.add_repo(REPO)
    github.mirror_git(REPO, checkout)
    return checkout


def spec_with_github(folder: Path, checkout: Path, bundle: str, tests: Sequence[str] = ()) -> Path:
    spec = {
        "bundle": bundle,
        "source": {"repo": str(checkout)},
        "github": {"repo": REPO},
        "environments": [
            {
                "name": name,
                "target": name,
                "databricks_conn_id": f"databricks_{name}",
                "schedules": "paused",
                "tests": list(tests),
            }
            for name in ("dev", "staging")
        ],
    }
    specs = folder / "promotions"
    specs.mkdir()
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs
