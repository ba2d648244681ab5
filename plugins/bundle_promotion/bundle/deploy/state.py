"""The deployment state, in the Databricks CLI's direct-engine format.

`<state_path>/resources.json` records what a target's deploys created:

    {"state_version": 2, "cli_version": "...", "lineage": "<uuid>", "serial": N,
     "state": {"resources.jobs.<key>": {"__id__": "<job_id>", "state": {<JobSettings as sent>},
                                        "depends_on": [...]}}}

Sharing the file (and its lineage) with the CLI keeps a target deployed by the CLI
and by Airflow one deployment. Entries this engine does not manage are kept as read.

The state has one identity: its workspace path and its lineage. A local copy is only
a cache, kept in `<bundle>/.databricks/bundle/<target>/resources.json` as the CLI keeps
it, or in a `StateCache` keyed by workspace host and state path when one checkout
deploys to several workspaces. The cache is trusted only when its lineage matches the
workspace's state: a workspace with no state, or another lineage, means the copy
belongs to another deployment, and adopting it would take over that deployment's
resources. Of two states of one lineage, the highest serial wins.

A deploy killed before it pushed the state leaves no local log to replay: the next deploy,
on any worker, reads every resource from the workspace and finds what the killed one
created by the deployment marker it set (see `engine.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bundle_promotion.errors import DeployError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

STATE_FILE = "resources.json"
TERRAFORM_STATE_FILE = "terraform.tfstate"
STATE_VERSION = 2
# Version 3 is version 2 plus optional feature flags; the CLI reads it when no flag is set.
_READABLE_VERSIONS = (2, 3)
_HEADER = ("state_version", "cli_version", "lineage", "serial", "state")


@dataclass(frozen=True)
class DeploymentState:
    lineage: str
    serial: int
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # "resources.jobs.etl" -> entry
    cli_version: str = ""
    state_version: int = STATE_VERSION
    other_fields: dict[str, Any] = field(default_factory=dict)  # e.g. the CLI's deployment_id, kept as read

    @classmethod
    def new(cls) -> DeploymentState:
        return cls(lineage=str(uuid.uuid4()), serial=0)

    @classmethod
    def from_json(cls, document: dict[str, Any], path: str) -> DeploymentState:
        version = document.get("state_version")
        if version not in _READABLE_VERSIONS or document.get("features"):
            raise DeployError(
                f"{path}: state_version {version} with features {document.get('features') or 'none'} "
                "is not a state the native engine reads (state_version 2, or 3 without features). "
                "Deploy this target with the Databricks CLI that wrote the state."
            )
        return cls(
            lineage=str(document["lineage"]),
            serial=int(document["serial"]),
            entries=dict(document.get("state") or {}),
            cli_version=str(document.get("cli_version", "")),
            state_version=int(version),
            other_fields={key: value for key, value in document.items() if key not in _HEADER},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "state_version": self.state_version,
            "cli_version": self.cli_version,
            "lineage": self.lineage,
            "serial": self.serial,
            **self.other_fields,
            "state": self.entries,
        }

    def same_deployment_as(self, other: DeploymentState) -> bool:
        """Whether no deploy wrote the state between reading `other` and this.

        Serial 0 is a target never deployed; its lineage is not written anywhere yet.
        """
        return self.serial == other.serial and (self.serial == 0 or self.lineage == other.lineage)


def resource_id(entry: dict[str, Any]) -> str:
    return str(entry["__id__"])


def resource_settings(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry.get("state") or {})


def make_entry(resource_id: str, settings: dict[str, Any], depends_on: list[str]) -> dict[str, Any]:
    """A state entry; `depends_on` lists the resource keys whose ids the settings use."""
    entry: dict[str, Any] = {"__id__": resource_id, "state": settings}
    if depends_on:
        entry["depends_on"] = [{"node": key, "label": f"${{{key}.id}}"} for key in depends_on]
    return entry


def read_state(api: WorkspaceApi, state_path: str) -> DeploymentState:
    """The target's state; a new, empty one when the target was never deployed.

    A target that only has Terraform state was deployed by the CLI's Terraform engine:
    deploying it here would create every resource a second time, so that is an error.
    """
    path = f"{state_path}/{STATE_FILE}"
    document = workspace_files.read_json(api, path)
    if document is not None:
        return DeploymentState.from_json(document, path)
    if workspace_files.read_bytes(api, f"{state_path}/{TERRAFORM_STATE_FILE}") is not None:
        raise DeployError(
            f"{state_path} holds Terraform state: this target was deployed by the Databricks CLI's "
            "Terraform engine. Migrate it to the direct engine first "
            "(`databricks bundle deployment migrate`)."
        )
    return DeploymentState.new()


def write_state(api: WorkspaceApi, state_path: str, state: DeploymentState) -> DeploymentState:
    """Push `state` as the next serial of its lineage and return what was written."""
    written = dataclasses.replace(state, serial=state.serial + 1, cli_version=_writer_version())
    workspace_files.write_json(api, f"{state_path}/{STATE_FILE}", written.to_json())
    return written


def local_state_folder(bundle_dir: Path, target: str) -> Path:
    """Where the CLI keeps a target's local state; `DATABRICKS_BUNDLE_TMP` moves it, as in the CLI."""
    override = os.environ.get("DATABRICKS_BUNDLE_TMP")
    return Path(override) if override else bundle_dir / ".databricks" / "bundle" / target


@dataclass(frozen=True)
class StateCache:
    """Local state copies of one workspace, one folder per state path, under `root`."""

    root: Path
    host: str

    def folder(self, state_path: str) -> Path:
        host = urlsplit(self.host).netloc or self.host
        digest = hashlib.sha256(f"{host}\n{state_path}".encode()).hexdigest()[:32]
        return self.root / host.replace(":", "_") / digest


def read_local_state(folder: Path) -> DeploymentState | None:
    """The local copy; None when there is none or it cannot be read (it is only a cache)."""
    path = folder / STATE_FILE
    try:
        return DeploymentState.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (OSError, ValueError, KeyError, TypeError, DeployError):
        return None


def pull_state(api: WorkspaceApi, state_path: str, local_folder: Path) -> DeploymentState:
    """The workspace's state, or the local copy when that is a later serial of the same lineage."""
    return reconcile(read_local_state(local_folder), read_state(api, state_path))


def reconcile(local: DeploymentState | None, remote: DeploymentState) -> DeploymentState:
    """The local copy counts only as a later serial of the workspace's own lineage.

    A workspace without state (serial 0) or with another lineage makes the copy a stale
    cache of some other deployment: it is ignored, never adopted.
    """
    if local is None or remote.serial == 0 or local.lineage != remote.lineage:
        return remote
    return local if local.serial > remote.serial else remote


def push_state(
    api: WorkspaceApi, state_path: str, state: DeploymentState, local_folder: Path
) -> DeploymentState:
    """Write the next serial to the workspace, then the same document to the local copy."""
    written = write_state(api, state_path, state)
    local_folder.mkdir(parents=True, exist_ok=True)
    (local_folder / STATE_FILE).write_text(json.dumps(written.to_json(), indent=2), encoding="utf-8")
    return written


def _writer_version() -> str:
    """Who wrote the state: this package and its version, in place of the CLI's version."""
    from importlib import metadata  # only deploys need it; DAG parsing imports this module too

    try:
        return f"bundle-promotion/{metadata.version('bundle-promotion')}"
    except metadata.PackageNotFoundError:
        return "bundle-promotion"
