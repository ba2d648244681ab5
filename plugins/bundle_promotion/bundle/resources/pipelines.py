"""Pipelines as deployable resources, through the Pipelines API, as the CLI's direct engine calls it."""

from __future__ import annotations

from typing import Any

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
    return str(api.call("POST", "2.0/pipelines", body=settings)["pipeline_id"])


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
