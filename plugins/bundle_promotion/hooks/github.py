"""`GitHubFacts` over the GitHub provider's `GithubHook`: PyGithub objects in, our dataclasses out.

Auth (token or GitHub App) and the host come from the provider, so GitHub Enterprise works
by setting the connection's host to ``https://<host>/api/v3``. PyGithub retries 5xx answers
and waits out rate limits itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from bundle_promotion.errors import GitHubApiError
from bundle_promotion.github.facts import CheckRun, Deployment, DeploymentState, DeploymentStatus, Review

if TYPE_CHECKING:
    from github import GithubException
    from github.Deployment import Deployment as GithubDeployment
    from github.DeploymentStatus import DeploymentStatus as GithubDeploymentStatus
    from github.Repository import Repository

_T = TypeVar("_T")
_RAISE = object()  # the default of ``missing``: a missing object is an error
_NOT_FOUND = (404, 422)  # GitHub answers 422 for a commit SHA it does not know
_MAX_ERROR_TEXT = 300


class GitHubRepositoryHook:
    """The facts of the repository ``repo`` (``owner/name``), read through ``github_conn_id``.

    The provider's hook reads its connection when built, so it is built on the first call,
    in the task that needs it, never while a DAG is parsed.
    """

    def __init__(self, repo: str, github_conn_id: str = "github_default") -> None:
        self._repo_name = repo
        self.github_conn_id = github_conn_id

    @property
    def repo(self) -> str:
        return self._repo_name

    @cached_property
    def _repository(self) -> Repository:
        from airflow.providers.github.hooks.github import GithubHook

        def open_repository() -> Repository:
            # Lazy objects fetch nothing until read: a commit's check runs cost one request, not two
            # plus the commit's diff. The repository itself is read once, so a wrong name fails here.
            client = GithubHook(github_conn_id=self.github_conn_id).get_conn().withLazy(True)
            return client.get_repo(self._repo_name).complete()

        return self._call("open the repository", open_repository)

    def check_runs(self, commit: str) -> tuple[CheckRun, ...]:
        def read() -> tuple[CheckRun, ...]:
            return tuple(
                CheckRun(run.name, run.status, run.conclusion, run.html_url or run.details_url or "")
                for run in self._repository.get_commit(commit).get_check_runs()
            )

        return self._call(f"list the check runs of {commit}", read, missing=())

    def reviews(self, commit: str) -> tuple[Review, ...]:
        def read() -> tuple[Review, ...]:
            found = [
                Review(
                    reviewer=review.user.login,
                    state=review.state,
                    commit=review.commit_id,
                    pull_number=pull.number,
                    submitted_at=review.submitted_at,
                    body=review.body or "",
                    url=review.html_url,
                )
                for pull in self._repository.get_commit(commit).get_pulls()
                for review in pull.get_reviews()
                if review.commit_id == commit and review.submitted_at is not None
            ]
            return tuple(sorted(found, key=lambda review: review.submitted_at))

        return self._call(f"list the reviews of {commit}", read, missing=())

    def tag_commit(self, tag: str) -> str | None:
        def read() -> str:
            target = self._repository.get_git_ref(f"tags/{tag}").object
            if target.type == "tag":  # an annotated tag: a tag object that points at the commit
                return self._repository.get_git_tag(target.sha).object.sha
            return target.sha

        return self._call(f"read the tag {tag}", read, missing=None)

    def file_text(self, path: str, commit: str) -> str | None:
        def read() -> str | None:
            content = self._repository.get_contents(path, ref=commit)
            if isinstance(content, list) or content.type != "file":
                return None
            return content.decoded_content.decode("utf-8", errors="replace")

        return self._call(f"read {path} at {commit}", read, missing=None)

    def deployments(self, commit: str, environment: str) -> tuple[Deployment, ...]:
        return self._call(
            f"list the deployments of {commit} to {environment}",
            lambda: tuple(
                map(_deployment, self._repository.get_deployments(sha=commit, environment=environment))
            ),
        )

    def create_deployment(
        self, commit: str, environment: str, *, description: str, payload: dict[str, Any]
    ) -> Deployment:
        # No auto-merge and no required contexts: the deployment records what was deployed;
        # whether the checks passed is the checks_passed gate's question, asked before.
        return self._call(
            f"create a deployment of {commit} to {environment}",
            lambda: _deployment(
                self._repository.create_deployment(
                    ref=commit,
                    environment=environment,
                    description=description,
                    payload=payload,
                    auto_merge=False,
                    required_contexts=[],
                )
            ),
        )

    def deployment_statuses(self, deployment_id: int) -> tuple[DeploymentStatus, ...]:
        return self._call(
            f"list the statuses of deployment {deployment_id}",
            lambda: tuple(map(_status, self._repository.get_deployment(deployment_id).get_statuses())),
        )

    def create_deployment_status(
        self, deployment_id: int, state: DeploymentState, *, description: str, log_url: str | None = None
    ) -> DeploymentStatus:
        from github.GithubObject import NotSet

        def create() -> DeploymentStatus:
            deployment = self._repository.get_deployment(deployment_id)
            # The REST API's log_url; PyGithub still calls it by its older name, target_url.
            return _status(
                deployment.create_status(state, target_url=log_url or NotSet, description=description)
            )

        return self._call(f"set deployment {deployment_id} to {state}", create)

    def _call(self, action: str, request: Callable[[], _T], *, missing: Any = _RAISE) -> _T:
        """Run ``request``; failures become `GitHubApiError`, a missing object ``missing`` when given."""
        from github import GithubException
        from requests import RequestException

        try:
            return request()
        except GithubException as error:
            if missing is not _RAISE and error.status in _NOT_FOUND:
                return cast(_T, missing)
            raise GitHubApiError(self._repo_name, action, error.status, _message(error)) from None
        except RequestException as error:
            # No answer, or retries used up; the text names the URL and the cause, never the token.
            raise GitHubApiError(self._repo_name, action, 0, str(error)[:_MAX_ERROR_TEXT]) from None


def _deployment(found: GithubDeployment) -> Deployment:
    payload = found.payload if isinstance(found.payload, dict) else {}
    return Deployment(found.id, found.environment, found.sha, payload)


def _status(found: GithubDeploymentStatus) -> DeploymentStatus:
    return DeploymentStatus(found.state, found.description or "", found.created_at)


def _message(error: GithubException) -> str:
    data = error.data if isinstance(error.data, dict) else {}
    return str(data.get("message") or error.message or "no message")[:_MAX_ERROR_TEXT]
