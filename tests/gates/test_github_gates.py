"""GitHub gates: the release commit's check runs, and pull-request reviews counted as approvals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bundle_promotion.errors import SpecError
from bundle_promotion.gates.approvals import ApprovalGate, ApprovalGroup, ApprovalPolicy
from bundle_promotion.gates.contract import GateContext, evaluate_all
from bundle_promotion.gates.github import ChecksPassedGate, GitHubReviewApprovals
from bundle_promotion.github.facts import GitHubFacts
from bundle_promotion.hooks.github import GitHubRepositoryHook
from bundle_promotion.identity import IdentityMap
from bundle_promotion.ledger import Ledger
from bundle_promotion.ledger.records import Approval, Release
from bundle_promotion.spec import load_spec
from bundle_promotion.testing.github import GitHubEmulator
from tests.conftest import git

REPO = "acme/sales"
AUTHOR = "alice"


@pytest.fixture
def commit(github: GitHubEmulator) -> str:
    github.add_repo(REPO)
    return github.add_commit(REPO, {"databricks.yml": "bundle: {name: sales}\n"}, author=AUTHOR)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


@pytest.fixture
def context(commit: str, ledger: Ledger) -> GateContext:
    return gate_context(commit, ledger, GitHubRepositoryHook(REPO))


def gate_context(commit: str, ledger: Ledger, github: GitHubFacts | None) -> GateContext:
    release = Release("sales", "v1.0.0", commit, (), "config-digest")
    return GateContext(
        bundle="sales",
        environment="prod",
        previous_environment="staging",
        release_id=1,
        release=release,
        repo="https://github.example.com/acme/sales.git",
        triggered_by="trigger-user",
        commit_authors=(AUTHOR,),
        now=datetime.now(UTC),
        ledger=ledger,
        github=github,
    )


# checks_passed --------------------------------------------------------------------------------


def test_checks_pass_when_every_check_run_succeeded(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_check_run(REPO, commit, "build")
    github.add_check_run(REPO, commit, "lint", conclusion="neutral")

    result = ChecksPassedGate().evaluate(context)

    assert (result.status, result.reason) == ("passed", f"2 of 2 checks passed on {REPO}@{commit[:12]}")


def test_a_failed_check_fails_the_gate_with_its_name_and_url(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_check_run(REPO, commit, "build")
    run_id = github.add_check_run(REPO, commit, "integration", conclusion="failure")
    github.add_check_run(REPO, commit, "lint", status="in_progress")

    result = ChecksPassedGate().evaluate(context)

    assert result.status == "failed"
    assert result.reason == (
        f"checks failed on {REPO}@{commit[:12]}: integration (failure) "
        f"{github.base_url.removesuffix('/api/v3')}/{REPO}/runs/{run_id}"
    )


def test_checks_still_running_make_the_gate_wait(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_check_run(REPO, commit, "build")
    github.add_check_run(REPO, commit, "integration", status="queued")

    result = ChecksPassedGate().evaluate(context)

    assert (result.status, result.reason) == (
        "waiting",
        f"checks running on {REPO}@{commit[:12]}: integration (queued)",
    )
    assert result.recheck_after is not None


def test_a_missing_required_check_makes_the_gate_wait_naming_it(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_check_run(REPO, commit, "build")

    result = ChecksPassedGate(required=("build", "integration")).evaluate(context)

    assert (result.status, result.reason) == (
        "waiting",
        f"required checks not reported on {REPO}@{commit[:12]}: integration",
    )


def test_with_required_checks_other_checks_do_not_count(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_check_run(REPO, commit, "build")
    github.add_check_run(REPO, commit, "experimental", conclusion="failure")

    result = ChecksPassedGate(required=("build",)).evaluate(context)

    assert (result.status, result.reason) == ("passed", f"1 of 1 checks passed on {REPO}@{commit[:12]}")


def test_a_commit_without_check_runs_waits_for_them(commit: str, context: GateContext) -> None:
    result = ChecksPassedGate().evaluate(context)

    assert (result.status, result.reason) == (
        "waiting",
        f"no check runs reported on {REPO}@{commit[:12]} yet",
    )


def test_checks_passed_without_a_github_repository_fails_saying_what_to_add(
    commit: str, ledger: Ledger
) -> None:
    result = ChecksPassedGate().evaluate(gate_context(commit, ledger, github=None))

    assert result.status == "failed"
    assert "github: section" in result.reason


# Pull-request reviews as approvals ----------------------------------------------------------


# Each reviewer's GitHub login is mapped to their Airflow user: without it a review counts for no one.
REVIEWERS = IdentityMap.of({user: ([user], []) for user in ("bob", "carol", AUTHOR)})


def review_gate(minimum: int = 1) -> ApprovalGate:
    qc = ApprovalGroup("qc", minimum, users=("bob", "carol", AUTHOR))
    return ApprovalGate(
        ApprovalPolicy(groups=(qc,), identities=REVIEWERS), sources=(GitHubReviewApprovals(),)
    )


def test_an_approving_review_of_the_release_commit_counts(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_review(REPO, github.add_pull(REPO, commit), "bob", body="verified in staging")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == ("passed", "1 of 1 qc approvals (have: bob)")


def test_a_review_of_another_commit_does_not_count(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    later = github.add_commit(REPO, {"databricks.yml": "changed"}, author="dave", parent=commit)
    github.add_review(REPO, github.add_pull(REPO, later), "bob", body="verified")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == ("waiting", "0 of 1 qc approvals")


def test_requested_changes_reject_the_release(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    pull = github.add_pull(REPO, commit)
    github.add_review(REPO, pull, "bob", body="verified")
    github.add_review(REPO, pull, "carol", state="CHANGES_REQUESTED", body="the schema change breaks finance")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == ("failed", "rejected by carol: the schema change breaks finance")


def test_a_reviewers_latest_decision_replaces_their_earlier_one(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    pull = github.add_pull(REPO, commit)
    github.add_review(REPO, pull, "bob", state="CHANGES_REQUESTED", body="missing migration")
    github.add_review(REPO, pull, "bob", state="COMMENTED", body="looking again")
    github.add_review(REPO, pull, "bob", body="migration added, approved")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == ("passed", "1 of 1 qc approvals (have: bob)")


def test_a_dismissed_review_no_longer_approves(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    pull = github.add_pull(REPO, commit)
    github.add_review(REPO, pull, "bob", body="verified")
    github.add_review(REPO, pull, "bob", state="DISMISSED", body="")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == ("waiting", "0 of 1 qc approvals")


def test_the_commit_authors_own_review_is_refused(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_review(REPO, github.add_pull(REPO, commit), AUTHOR, body="I approve my own change")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == (
        "waiting",
        "0 of 1 qc approvals; ignored: alice (authored a commit of this release)",
    )


def test_a_review_without_a_body_gives_no_reason_and_is_ignored(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.add_review(REPO, github.add_pull(REPO, commit), "bob")

    result = review_gate().evaluate(context)

    assert (result.status, result.reason) == (
        "waiting",
        "0 of 1 qc approvals; ignored: bob (no reason given)",
    )


def test_reviews_and_approvals_given_in_airflow_count_toward_one_quorum(
    github: GitHubEmulator, commit: str, context: GateContext, ledger: Ledger
) -> None:
    github.add_review(REPO, github.add_pull(REPO, commit), "bob", body="verified")
    ledger.record_approval(
        Approval(
            "sales", "prod", context.release.digest, "carol", "approve", "checked the dashboards", context.now
        )
    )

    result = review_gate(minimum=2).evaluate(context)

    assert (result.status, result.reason) == ("passed", "2 of 2 qc approvals (have: bob, carol)")


def test_github_failing_to_answer_makes_the_checks_gate_wait(
    github: GitHubEmulator, commit: str, context: GateContext
) -> None:
    github.fail_next(503, count=50)  # more than PyGithub's retries

    result = ChecksPassedGate().evaluate(context)

    assert result.status == "waiting"
    assert result.reason.startswith(f"cannot read the checks of {REPO}@{commit[:12]} yet: ")
    assert "too many 503 error responses" in result.reason
    assert github.token not in result.reason


def test_a_repository_github_does_not_know_fails_the_checks_gate(commit: str, ledger: Ledger) -> None:
    context = gate_context(commit, ledger, GitHubRepositoryHook("acme/renamed"))

    (result,) = evaluate_all([ChecksPassedGate()], context)

    assert result.status == "failed"
    assert result.reason == "GitHub acme/renamed: open the repository failed with HTTP 404: Not Found"


# The spec's github: section --------------------------------------------------------------------


def spec_file(tmp_path: Path, github: str) -> Path:
    spec = tmp_path / "sales.yaml"
    spec.write_text(
        "bundle: sales\n"
        "source: {repo: https://github.example.com/acme/sales.git}\n"
        f"{github}"
        "environments:\n"
        "  - name: prod\n"
        "    target: prod\n"
        "    databricks_conn_id: databricks_prod\n"
        "    schedules: paused\n"
        "    gates: [checks_passed]\n"
    )
    return spec


def test_a_checks_passed_gate_needs_the_spec_to_name_its_github_repository(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec(spec_file(tmp_path, github=""))

    assert (raised.value.field, raised.value.line) == ("environments[0].gates[0]", 8)
    assert "add a top-level 'github: {repo: owner/name}' section" in raised.value.problem


def test_the_github_repository_is_owner_and_name_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as raised:
        load_spec(spec_file(tmp_path, github="github: {repo: 'https://github.com/acme/sales'}\n"))

    assert raised.value.field == "github.repo"
    assert "must be owner/name, like acme/sales-etl (not a URL)" in raised.value.problem


def test_the_github_section_defaults_to_github_default_and_records_deployments(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, github="github: {repo: acme/sales}\n"))

    assert spec.github is not None
    assert (
        spec.github.github_conn_id,
        spec.github.record_deployments,
        spec.github.approvals_from_reviews,
    ) == (
        "github_default",
        True,
        False,
    )


# Through the gate sensor ------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.usefixtures("airflow_db", "workspaces")
def test_a_failed_check_stops_the_promotion_before_the_deploy(
    github: GitHubEmulator, bundle_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bundle_promotion.hooks.ledger import LedgerHook
    from tests.e2e.test_promotion_e2e import promote, task_states

    checkout = bundle_repo()
    github.add_repo(REPO)
    github.mirror_git(REPO, checkout)
    commit = git(checkout, "rev-parse", "v1.0.0^{commit}")
    github.add_check_run(REPO, commit, "build")
    github.add_check_run(REPO, commit, "integration", conclusion="failure")
    specs = tmp_path / "promotions"
    specs.mkdir()
    (specs / "example_checks.yaml").write_text(
        yaml.safe_dump(
            {
                "bundle": "example_checks",
                "source": {"repo": str(checkout)},
                "github": {"repo": REPO},
                "environments": [
                    {
                        "name": "dev",
                        "target": "dev",
                        "databricks_conn_id": "databricks_dev",
                        "schedules": "paused",
                        "gates": ["checks_passed"],
                    }
                ],
            }
        )
    )

    dag_run = promote(monkeypatch, specs, "promote__example_checks", "v1.0.0")

    states = task_states(dag_run)
    assert (dag_run.state, states["dev.gates"], states["dev.deploy"]) == (
        "failed",
        "failed",
        "upstream_failed",
    )
    assert github.deployments(REPO) == []
    (evaluation,) = LedgerHook().get_conn().latest_gate_evaluations("example_checks")
    assert [(result.status, result.reason.split(" http")[0]) for result in evaluation.results] == [
        ("failed", f"checks failed on {REPO}@{commit[:12]}: integration (failure)")
    ]
