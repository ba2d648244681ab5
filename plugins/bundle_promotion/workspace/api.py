"""The one interface through which the core talks to a Databricks workspace."""

from __future__ import annotations

from typing import Any, Protocol


class WorkspaceApi(Protocol):
    """A Databricks REST client bound to one workspace.

    ``path`` is the part after ``/api/``, for example ``2.2/jobs/get``. A non-2xx
    answer raises ``WorkspaceApiError`` with the Databricks ``error_code``.

    A call that is not ``idempotent`` (a create) is sent again only when the server
    provably did not act on it (429, or no connection was made); any other failure
    leaves its outcome unknown (``WorkspaceApiError.outcome_unknown``) for the caller to
    find out, since sending it twice could create two resources.
    """

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]: ...
