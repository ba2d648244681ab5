"""The spec's github section: the bundle's repository for checks, reviews and deployments."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from bundle_promotion.spec.base import NonEmptyStr, _Frozen, _rule

_GITHUB_REPO = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class GitHub(_Frozen):
    """The bundle's repository on GitHub or GitHub Enterprise: checks, reviews and deployments."""

    repo: str = Field(
        description="The repository as owner/name, for example acme/sales-etl.",
        json_schema_extra={"pattern": _GITHUB_REPO},
    )
    github_conn_id: NonEmptyStr = Field(
        default="github_default",
        description="The Airflow github connection; for GitHub Enterprise its host is https://<host>/api/v3.",
    )
    approvals_from_reviews: bool = Field(
        default=False,
        description="Pull-request reviews of the release commit count as approvals of the Airflow users "
        "their logins are mapped to in the approval gate's identities; an unmapped review counts for no one.",
    )
    record_deployments: bool = Field(
        default=True, description="Record a GitHub deployment and its status for each environment deploy."
    )

    @field_validator("repo")
    @classmethod
    def _owner_and_name(cls, repo: str) -> str:
        if not re.match(_GITHUB_REPO, repo):
            raise _rule(f"must be owner/name, like acme/sales-etl (not a URL); got '{repo}'")
        return repo
