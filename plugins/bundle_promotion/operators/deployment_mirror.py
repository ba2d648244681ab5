"""The deploy, record and failure steps' view of GitHub deployments, when the spec names a repository.

The deploy task decides whether an environment is mirrored on GitHub and says so in its
XCom (repository and connection id, never a token); the tasks after it read that back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from bundle_promotion.errors import GitHubApiError

if TYPE_CHECKING:
    from bundle_promotion.github.deployment_mirror import FinishedState
    from bundle_promotion.ledger.records import Release

log = logging.getLogger(__name__)
_XCOM_KEY = "github"


@dataclass(frozen=True)
class GitHubDeploymentMirror:
    """Best effort: a GitHub outage is logged and never fails a deploy; the ledger holds the record."""

    repo: str
    github_conn_id: str
    environment: str
    release_id: int

    def started(self, context: Context) -> None:
        from bundle_promotion.github.deployment_mirror import record_deploy_started

        with self._best_effort("record the deploy as in progress"):
            deployment_id = record_deploy_started(
                self._facts(), self._release(), self.environment, log_url=_log_url(context)
            )
            log.info(
                "GitHub deployment %s of %s to %s: in_progress", deployment_id, self.repo, self.environment
            )

    def succeeded(self, context: Context) -> None:
        self._finished(context, "success", f"deployed to {self.environment}")

    def failed(self, context: Context, detail: str) -> None:
        self._finished(context, "failure", detail)

    def _finished(self, context: Context, state: FinishedState, description: str) -> None:
        from bundle_promotion.github.deployment_mirror import record_deploy_finished

        with self._best_effort(f"record the deploy as {state}"):
            deployment_id = record_deploy_finished(
                self._facts(),
                self._release(),
                self.environment,
                state,
                description=description,
                log_url=_log_url(context),
            )
            if deployment_id is not None:
                log.info(
                    "GitHub deployment %s of %s to %s: %s", deployment_id, self.repo, self.environment, state
                )

    @contextmanager
    def _best_effort(self, action: str) -> Iterator[None]:
        try:
            yield
        except GitHubApiError as error:
            log.warning("Could not %s on GitHub (%s); the ledger has it: %s", action, self.repo, error)

    def to_xcom(self) -> dict[str, Any]:
        return {_XCOM_KEY: asdict(self)}

    @classmethod
    def from_xcom(cls, value: dict[str, Any] | None) -> GitHubDeploymentMirror | None:
        """The mirror a deploy task's XCom names, or None when its environment is not mirrored."""
        recorded = (value or {}).get(_XCOM_KEY)
        return cls(**recorded) if recorded else None

    def _release(self) -> Release:
        from bundle_promotion import settings

        return settings.ledger().release(self.release_id)

    def _facts(self) -> Any:
        from bundle_promotion.hooks.github import GitHubRepositoryHook

        return GitHubRepositoryHook(self.repo, self.github_conn_id)


def mirror(
    repo: str | None, github_conn_id: str, environment: str, release_id: int
) -> GitHubDeploymentMirror | None:
    return GitHubDeploymentMirror(repo, github_conn_id, environment, release_id) if repo else None


def _log_url(context: Context) -> str | None:
    return getattr(context["ti"], "log_url", None)
