"""Jobs as deployable resources, through Jobs API 2.2, as the CLI's direct engine calls it."""

from __future__ import annotations

from typing import Any

from bundle_promotion.bundle.config.job_settings import KEYED_LISTS, deployment_marker
from bundle_promotion.bundle.resources.rest import is_missing  # Jobs answers 400 "Job 1 does not exist."
from bundle_promotion.errors import WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi

KIND = "jobs"


def read(api: WorkspaceApi, job_id: str) -> dict[str, Any] | None:
    """The job's settings on the server, or None when the job is gone (deleted by hand, say).

    Jobs 2.2 pages long task and cluster lists; the pages are joined here.
    """
    query: dict[str, Any] = {"job_id": int(job_id)}
    try:
        answer = api.call("GET", "2.2/jobs/get", query=query)
    except WorkspaceApiError as error:
        if is_missing(error):
            return None
        raise
    settings = dict(answer.get("settings") or {})
    while answer.get("next_page_token"):
        answer = api.call("GET", "2.2/jobs/get", query={**query, "page_token": answer["next_page_token"]})
        for name in KEYED_LISTS:
            settings[name] = [*settings.get(name, []), *(answer.get("settings") or {}).get(name, [])]
    return settings


def create(api: WorkspaceApi, settings: dict[str, Any]) -> str:
    return str(api.call("POST", "2.2/jobs/create", body=settings, idempotent=False)["job_id"])


def find(api: WorkspaceApi, name: str, marker: str) -> list[str]:
    """The ids of the jobs named ``name`` that carry ``marker`` as their deployment's metadata file.

    A bundle deploy annotates each job with ``deployment.metadata_file_path`` under its state
    path, so this finds the jobs a deploy of this bundle and target created, whether or not
    its state recorded them.
    """
    ids: list[str] = []
    query: dict[str, Any] = {"name": name, "limit": 100}
    while True:
        answer = api.call("GET", "2.2/jobs/list", query=query)
        ids += [
            str(job["job_id"])
            for job in answer.get("jobs", [])
            if deployment_marker(job.get("settings") or {}) == marker
        ]
        if not answer.get("next_page_token"):
            return sorted(ids, key=int)
        query = {**query, "page_token": answer["next_page_token"]}


def update(api: WorkspaceApi, job_id: str, settings: dict[str, Any]) -> None:
    """Replace the job's settings whole (`jobs/reset`), so nothing of an earlier version lingers."""
    api.call("POST", "2.2/jobs/reset", body={"job_id": int(job_id), "new_settings": settings})


def delete(api: WorkspaceApi, job_id: str) -> None:
    """Delete the job; one that is already gone is fine."""
    try:
        api.call("POST", "2.2/jobs/delete", body={"job_id": int(job_id)})
    except WorkspaceApiError as error:
        if not is_missing(error):
            raise


def url(host: str, job_id: str) -> str:
    """The job's page, as `bundle summary` shows it (without the workspace-id query parameter)."""
    return f"{host}/jobs/{job_id}"
