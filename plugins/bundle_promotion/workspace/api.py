"""The one interface through which the core talks to a Databricks workspace."""

from __future__ import annotations

from typing import Any, Protocol


class WorkspaceApi(Protocol):
    """A Databricks REST client bound to one workspace.

    ``path`` is the part after ``/api/``, for example ``2.2/jobs/get``. A non-2xx
    answer raises ``WorkspaceApiError`` with the Databricks ``error_code``.
    """

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...
