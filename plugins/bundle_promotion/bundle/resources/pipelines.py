"""Pipelines as deployable resources, through the Pipelines API, as the CLI's direct engine calls it."""

from __future__ import annotations

from typing import Any

from bundle_promotion.bundle.config.job_settings import deployment_marker
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

KIND = "pipelines"
# Fields the service cannot change in place: a change deletes the pipeline and creates a new one.
RECREATE_ON = (
    "storage",
    "ingestion_definition.connection_name",
    "ingestion_definition.ingestion_gateway_id",
    "gateway_definition.connection_id",
    "gateway_definition.gateway_storage_catalog",
    "gateway_definition.gateway_storage_schema",
)
# Config fields the pipeline settings do not carry: they become resources of their own.
NOT_SETTINGS = ("permissions",)


def read(api: WorkspaceApi, pipeline_id: str) -> dict[str, Any] | None:
    """The pipeline's settings (its `spec`), or None when it is gone."""
    try:
        answer = api.call("GET", f"2.0/pipelines/{pipeline_id}")
    except WorkspaceApiError as error:
        if workspace_files.is_missing(error):
            return None
        raise
    return {key: value for key, value in (answer.get("spec") or {}).items() if key != "id"}


def create(api: WorkspaceApi, settings: dict[str, Any]) -> str:
    return str(api.call("POST", "2.0/pipelines", body=settings, idempotent=False)["pipeline_id"])


def find(api: WorkspaceApi, name: str, marker: str) -> list[str]:
    """The ids of the pipelines named ``name`` whose deployment's metadata file is ``marker``.

    The list is filtered on the name (``LIKE`` treats ``_`` and ``%`` as wildcards, so the exact
    name is checked here again); each candidate's spec is read for its deployment.
    """
    query: dict[str, Any] = {"max_results": 100}
    if "'" not in name:  # the filter has no documented escape for a quote: list them all then
        query["filter"] = f"name LIKE '{name}'"
    ids: list[str] = []
    while True:
        answer = api.call("GET", "2.0/pipelines", query=query)
        named = [status["pipeline_id"] for status in answer.get("statuses", []) if status.get("name") == name]
        ids += [each for each in named if deployment_marker(read(api, each) or {}) == marker]
        if not answer.get("next_page_token"):
            return sorted(ids)
        query = {**query, "page_token": answer["next_page_token"]}


def update(api: WorkspaceApi, pipeline_id: str, settings: dict[str, Any]) -> None:
    """Replace the pipeline's settings whole (an EditPipeline call)."""
    api.call("PUT", f"2.0/pipelines/{pipeline_id}", body=settings)


def delete(api: WorkspaceApi, pipeline_id: str) -> None:
    """Delete the pipeline; one that is already gone is fine."""
    try:
        api.call("DELETE", f"2.0/pipelines/{pipeline_id}")
    except WorkspaceApiError as error:
        if not workspace_files.is_missing(error):
            raise


def url(host: str, pipeline_id: str) -> str:
    """The pipeline's page, as `bundle summary` shows it (without the workspace-id query parameter)."""
    return f"{host}/pipelines/{pipeline_id}"
