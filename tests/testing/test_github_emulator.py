"""The GitHub emulator answers as GitHub Enterprise does, to PyGithub and to the provider's hook."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from github import Auth, BadCredentialsException, Github

from bundle_promotion.errors import GitHubApiError
from bundle_promotion.hooks.github import GitHubRepositoryHook
from bundle_promotion.testing.github import GitHubEmulator
from tests.conftest import git

REPO = "acme/sales"


@pytest.fixture
def sha(github: GitHubEmulator) -> str:
    github.add_repo(REPO)
    return github.add_commit(
        REPO,
        {"documentation/releases/1.0.0.md": "# 1.0.0\n", "databricks.yml": "bundle: {name: sales}\n"},
        author="alice",
    )


def client(github: GitHubEmulator, token: str | None = None) -> Github:
    return Github(auth=Auth.Token(token or github.token), base_url=github.base_url, seconds_between_writes=0)


def test_an_annotated_tag_is_a_tag_object_that_points_at_the_commit(github: GitHubEmulator, sha: str) -> None:
    github.add_tag(REPO, "v1.0.0", sha)
    repo = client(github).get_repo(REPO)

    target = repo.get_git_ref("tags/v1.0.0").object

    assert target.type == "tag"
    assert repo.get_git_tag(target.sha).object.sha == sha


def test_a_lightweight_tag_points_straight_at_the_commit(github: GitHubEmulator, sha: str) -> None:
    github.add_tag(REPO, "v1.0.0", sha, annotated=False)

    target = client(github).get_repo(REPO).get_git_ref("tags/v1.0.0").object

    assert (target.type, target.sha) == ("commit", sha)


def test_contents_at_a_commit_decode_to_the_file(github: GitHubEmulator, sha: str) -> None:
    file = client(github).get_repo(REPO).get_contents("documentation/releases/1.0.0.md", ref=sha)

    assert not isinstance(file, list)
    assert file.decoded_content == b"# 1.0.0\n"


def test_contents_of_a_folder_list_its_entries(github: GitHubEmulator, sha: str) -> None:
    entries = client(github).get_repo(REPO).get_contents("documentation", ref=sha)

    assert isinstance(entries, list)
    assert [(entry.type, entry.path) for entry in entries] == [("dir", "documentation/releases")]


def test_a_later_check_run_of_the_same_name_supersedes_the_earlier(github: GitHubEmulator, sha: str) -> None:
    github.add_check_run(REPO, sha, "build", conclusion="failure")
    github.add_check_run(REPO, sha, "build", status="in_progress")

    runs = client(github).get_repo(REPO).get_commit(sha).get_check_runs()

    assert [(run.name, run.status, run.conclusion) for run in runs] == [("build", "in_progress", None)]


def test_a_commit_belongs_to_the_pulls_whose_head_contains_it(github: GitHubEmulator, sha: str) -> None:
    child = github.add_commit(REPO, {"a.txt": "b"}, parent=sha)
    containing = github.add_pull(REPO, child)
    github.add_pull(REPO, github.add_commit(REPO, {"other.txt": "c"}))

    pulls = client(github).get_repo(REPO).get_commit(sha).get_pulls()

    assert [pull.number for pull in pulls] == [containing]


def test_reviews_carry_the_commit_they_were_given_for(github: GitHubEmulator, sha: str) -> None:
    pull = github.add_pull(REPO, sha)
    github.add_review(REPO, pull, "bob", body="looks right")

    (review,) = client(github).get_repo(REPO).get_pull(pull).get_reviews()

    assert (review.user.login, review.state, review.commit_id, review.body) == (
        "bob",
        "APPROVED",
        sha,
        "looks right",
    )


def test_lists_page_with_link_headers(github: GitHubEmulator, sha: str) -> None:
    for number in range(35):
        github.add_tag(REPO, f"v1.0.{number}", sha, annotated=False)

    tags = [tag.name for tag in client(github).get_repo(REPO).get_tags()]

    assert len(tags) == 35
    pages = [request.query.get("page") for request in github.requests() if request.path.endswith("/tags")]
    assert pages == [None, "2"]


def test_a_success_status_makes_the_environments_earlier_deployment_inactive(
    github: GitHubEmulator, sha: str
) -> None:
    repo = client(github).get_repo(REPO)
    first = repo.create_deployment(ref=sha, environment="prod", required_contexts=[])
    first.create_status("success")
    second = repo.create_deployment(ref=sha, environment="prod", required_contexts=[])

    second.create_status("success")

    assert [status.state for status in first.get_statuses()] == ["inactive", "success"]


def test_a_wrong_token_gets_bad_credentials(github: GitHubEmulator, sha: str) -> None:
    with pytest.raises(BadCredentialsException):
        client(github, token="ghp_wrong").get_repo(REPO)


def test_a_rate_limited_request_is_retried_after_the_reset(github: GitHubEmulator, sha: str) -> None:
    github.fail_next(403)

    assert client(github).get_repo(REPO).get_commit(sha).sha == sha
    assert [request.status for request in github.requests()][-3:-1] == [403, 200]


def test_a_server_error_is_retried(github: GitHubEmulator, sha: str) -> None:
    github.fail_next(502, count=2)

    assert client(github).get_repo(REPO).full_name == REPO
    assert [request.status for request in github.requests()] == [502, 502, 200]


def test_the_request_log_never_holds_the_token(github: GitHubEmulator, sha: str) -> None:
    client(github).get_repo(REPO).get_commit(sha)

    assert github.requests()
    assert github.token not in repr(github.requests())


def test_mirroring_a_git_repository_keeps_its_shas_and_files(
    github: GitHubEmulator, bundle_repo: Callable[..., Path]
) -> None:
    checkout = bundle_repo("v1.0.0")
    github.add_repo(REPO)

    github.mirror_git(REPO, checkout)

    commit = git(checkout, "rev-parse", "v1.0.0^{commit}")
    facts = GitHubRepositoryHook(REPO)
    assert facts.tag_commit("v1.0.0") == commit
    assert (
        facts.file_text("documentation/releases/1.0.0.md", commit)
        == (checkout / "documentation/releases/1.0.0.md").read_text()
    )


# Through the provider's GithubHook ------------------------------------------------------------


def test_the_hook_reaches_github_enterprise_through_the_connection_host(
    github: GitHubEmulator, sha: str
) -> None:
    github.add_tag(REPO, "v1.0.0", sha)

    assert GitHubRepositoryHook(REPO).tag_commit("v1.0.0") == sha
    assert {request.path.split("/repos/")[0] for request in github.requests()} == {"/api/v3"}


def test_the_hook_reads_its_connection_only_when_first_used(github: GitHubEmulator) -> None:
    facts = GitHubRepositoryHook(REPO, github_conn_id="no_such_connection")

    assert facts.repo == REPO
    assert github.requests() == []


def test_the_hook_answers_none_for_a_missing_tag_or_file(github: GitHubEmulator, sha: str) -> None:
    facts = GitHubRepositoryHook(REPO)

    assert facts.tag_commit("v9.9.9") is None
    assert facts.file_text("documentation/releases/9.9.9.md", sha) is None
    assert facts.file_text("documentation", sha) is None


def test_the_hook_reads_reviews_of_the_exact_commit_only(github: GitHubEmulator, sha: str) -> None:
    child = github.add_commit(REPO, {"b.txt": "b"}, parent=sha)
    pull = github.add_pull(REPO, child)
    github.add_review(REPO, pull, "bob", commit=sha, body="ship it")
    github.add_review(REPO, pull, "carol", commit=child, body="later commit")

    reviews = GitHubRepositoryHook(REPO).reviews(sha)

    assert [(review.reviewer, review.commit, review.pull_number) for review in reviews] == [
        ("bob", sha, pull)
    ]


def test_the_hook_records_deployments_and_statuses(github: GitHubEmulator, sha: str) -> None:
    facts = GitHubRepositoryHook(REPO)

    deployment = facts.create_deployment(
        sha, "prod", description="sales v1", payload={"release_digest": "d1"}
    )
    facts.create_deployment_status(
        deployment.id, "success", description="deployed", log_url="http://airflow/log"
    )

    assert facts.deployments(sha, "prod") == (deployment,)
    assert [status.state for status in facts.deployment_statuses(deployment.id)] == ["success"]
    assert github.deployments(REPO) == [
        {
            "id": deployment.id,
            "sha": sha,
            "environment": "prod",
            "payload": {"release_digest": "d1"},
            "statuses": ["success"],
        }
    ]


def test_a_hook_error_names_the_repository_and_never_the_token(github: GitHubEmulator, sha: str) -> None:
    with pytest.raises(
        GitHubApiError, match=r"acme/missing: open the repository failed with HTTP 404"
    ) as raised:
        GitHubRepositoryHook("acme/missing").check_runs(sha)

    assert github.token not in str(raised.value)
