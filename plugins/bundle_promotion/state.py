"""The deployment state, in the Databricks CLI's direct-engine format.

`<state_path>/resources.json` records what a target's deploys created:

    {"state_version": 2, "cli_version": "...", "lineage": "<uuid>", "serial": N,
     "state": {"resources.jobs.<key>": {"__id__": "<job_id>", "state": {<JobSettings as sent>},
                                        "depends_on": [...]}}}

Sharing the file (and its lineage) with the CLI keeps a target deployed by the CLI
and by Airflow one deployment. Entries this engine does not manage are kept as read.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from bundle_promotion import workspace_files
from bundle_promotion.errors import DeployError
from bundle_promotion.workspace_api import WorkspaceApi

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


def _writer_version() -> str:
    """Who wrote the state: this package and its version, in place of the CLI's version."""
    from importlib import metadata  # only deploys need it; DAG parsing imports this module too

    try:
        return f"bundle-promotion/{metadata.version('bundle-promotion')}"
    except metadata.PackageNotFoundError:
        return "bundle-promotion"
