"""Mirror each environment deploy as a GitHub deployment with statuses, so GitHub shows what runs where.

One GitHub deployment per (release, environment): it is found again by the release digest
in its payload, so a retried or cleared task, or a second promotion of the same release,
adds statuses to it and never a second deployment. A status equal to the latest one is
not posted again. The ledger stays the system of record; this is its view on GitHub.
Never imports Airflow or PyGithub.
"""

from __future__ import annotations

from typing import Literal

from bundle_promotion.github.facts import Deployment, DeploymentState, GitHubFacts
from bundle_promotion.ledger.records import Release

__all__ = ["record_deploy_finished", "record_deploy_started"]

FinishedState = Literal["success", "failure"]


def record_deploy_started(
    github: GitHubFacts, release: Release, environment: str, *, log_url: str | None = None
) -> int:
    """Find or create the release's deployment to ``environment`` and mark it in progress; returns its id."""
    deployment = _deployment_of(github, release, environment) or github.create_deployment(
        release.commit,
        environment,
        description=f"{release.bundle} {release.version}",
        payload={"bundle": release.bundle, "version": release.version, "release_digest": release.digest},
    )
    _set_status(github, deployment.id, "in_progress", f"deploying {release.version}", log_url)
    return deployment.id


def record_deploy_finished(
    github: GitHubFacts,
    release: Release,
    environment: str,
    state: FinishedState,
    *,
    description: str,
    log_url: str | None = None,
) -> int | None:
    """Set the final state of the release's deployment to ``environment``; None when none was started."""
    deployment = _deployment_of(github, release, environment)
    if deployment is None:
        return None
    _set_status(github, deployment.id, state, description, log_url)
    return deployment.id


def _deployment_of(github: GitHubFacts, release: Release, environment: str) -> Deployment | None:
    return next(
        (
            deployment
            for deployment in github.deployments(release.commit, environment)
            if deployment.payload.get("release_digest") == release.digest
        ),
        None,
    )


_MAX_DESCRIPTION = 140  # GitHub rejects longer deployment status descriptions


def _set_status(
    github: GitHubFacts, deployment_id: int, state: DeploymentState, description: str, log_url: str | None
) -> None:
    statuses = github.deployment_statuses(deployment_id)
    if statuses and statuses[0].state == state:
        return
    github.create_deployment_status(
        deployment_id, state, description=description[:_MAX_DESCRIPTION], log_url=log_url
    )
