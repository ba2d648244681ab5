"""What the core asks of one GitHub repository, as plain frozen data.

Gates and the deployment recorder depend on the ``GitHubFacts`` protocol only; the one
implementation over the GitHub provider lives in ``hooks/github.py`` and tests may pass
their own. Nothing here imports PyGithub or Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = [
    "CheckRun",
    "Deployment",
    "DeploymentState",
    "DeploymentStatus",
    "GitHubFacts",
    "Review",
]

# The states a deployment status can take in the GitHub REST API.
DeploymentState = Literal["error", "failure", "inactive", "in_progress", "queued", "pending", "success"]


@dataclass(frozen=True)
class CheckRun:
    """One check run on a commit. ``conclusion`` is None until ``status`` is ``completed``."""

    name: str
    status: str
    conclusion: str | None
    url: str

    @property
    def completed(self) -> bool:
        return self.status == "completed"


@dataclass(frozen=True)
class Review:
    """A pull-request review, as submitted for one exact commit."""

    reviewer: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED or DISMISSED
    commit: str
    pull_number: int
    submitted_at: datetime
    body: str
    url: str


@dataclass(frozen=True)
class Deployment:
    """A GitHub deployment: one ref sent to one environment. ``payload`` carries our release identity."""

    id: int
    environment: str
    sha: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentStatus:
    state: str
    description: str
    created_at: datetime


class GitHubFacts(Protocol):
    """Read (and, for deployments, write) the facts of one repository, ``owner/name``.

    Reads answer None or an empty tuple when the thing does not exist, so a gate can wait
    for it; transport and permission problems raise ``GitHubApiError``.
    """

    @property
    def repo(self) -> str: ...

    def check_runs(self, commit: str) -> tuple[CheckRun, ...]:
        """Every check run reported on ``commit``."""
        ...

    def reviews(self, commit: str) -> tuple[Review, ...]:
        """Reviews submitted on ``commit`` itself, in the pull requests that contain it, oldest first."""
        ...

    def tag_commit(self, tag: str) -> str | None:
        """The commit ``tag`` points at (annotated tags peeled), or None when there is no such tag."""
        ...

    def file_text(self, path: str, commit: str) -> str | None:
        """The text of the file at ``path`` as of ``commit``, or None when there is no such file."""
        ...

    def deployments(self, commit: str, environment: str) -> tuple[Deployment, ...]:
        """Deployments of ``commit`` to ``environment``, newest first."""
        ...

    def create_deployment(
        self, commit: str, environment: str, *, description: str, payload: dict[str, Any]
    ) -> Deployment: ...

    def deployment_statuses(self, deployment_id: int) -> tuple[DeploymentStatus, ...]:
        """The statuses of a deployment, newest first."""
        ...

    def create_deployment_status(
        self, deployment_id: int, state: DeploymentState, *, description: str, log_url: str | None = None
    ) -> DeploymentStatus: ...
