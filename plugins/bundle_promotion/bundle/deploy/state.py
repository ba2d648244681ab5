"""The deployment state, in the Databricks CLI's direct-engine format.

`<state_path>/resources.json` records what a target's deploys created:

    {"state_version": 2, "cli_version": "...", "lineage": "<uuid>", "serial": N,
     "state": {"resources.jobs.<key>": {"__id__": "<job_id>", "state": {<JobSettings as sent>},
                                        "depends_on": [...]}}}

Sharing the file (and its lineage) with the CLI keeps a target deployed by the CLI
and by Airflow one deployment. Entries this engine does not manage are kept as read.

Like the CLI, a deploy also keeps a local copy in
`<bundle>/.databricks/bundle/<target>/resources.json`. Pulling reconciles the two:
they must share a lineage, and the one with the highest serial wins. While a deploy
applies changes it appends each one to the local `resources.json.wal`, as the CLI
does, so a deploy killed before it pushed the state is recovered by the next one
instead of creating its resources a second time.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.errors import DeployError
from bundle_promotion.workspace import files as workspace_files
from bundle_promotion.workspace.api import WorkspaceApi

STATE_FILE = "resources.json"
WAL_FILE = "resources.json.wal"
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


def read_local_state(folder: Path) -> DeploymentState | None:
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DeployError(
            f"{path}: invalid JSON ({error}); delete the file to use the workspace's state"
        ) from error
    return DeploymentState.from_json(document, str(path))


def pull_state(api: WorkspaceApi, state_path: str, local_folder: Path) -> DeploymentState:
    """The target's state: the remote and the local copy reconciled, then the write-ahead log replayed."""
    state = reconcile(
        read_local_state(local_folder), read_state(api, state_path), str(local_folder / STATE_FILE)
    )
    return replay_wal(state, local_folder / WAL_FILE)


def replay_wal(state: DeploymentState, wal: Path) -> DeploymentState:
    """`state` with the changes of an unfinished deploy that started from it; a stale log is ignored."""
    if not wal.is_file():
        return state
    header, *lines = [
        json.loads(line) for line in wal.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    if state.serial == 0 and header.get("serial") == 1:
        state = dataclasses.replace(state, lineage=str(header["lineage"]))  # the first deploy's lineage
    if (header.get("lineage"), header.get("serial")) != (state.lineage, state.serial + 1):
        return state
    entries = dict(state.entries)
    for line in lines:
        if "v" in line:
            entries[line["k"]] = line["v"]
        else:
            entries.pop(line["k"], None)
    return dataclasses.replace(state, entries=entries)


class WriteAheadLog:
    """The local log of one deploy's applied changes, until its state is pushed."""

    def __init__(self, local_folder: Path, state: DeploymentState) -> None:
        self._path = local_folder / WAL_FILE
        local_folder.mkdir(parents=True, exist_ok=True)
        header = {"lineage": state.lineage, "serial": state.serial + 1}
        self._path.write_text(json.dumps(header) + "\n", encoding="utf-8")

    def record(self, key: str, entry: dict[str, Any] | None) -> None:
        """Append one change; None is a deletion."""
        line = {"k": key} if entry is None else {"k": key, "v": entry}
        with self._path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self._path.unlink(missing_ok=True)


def reconcile(local: DeploymentState | None, remote: DeploymentState, local_path: str) -> DeploymentState:
    """The highest serial wins; two states of different lineage are two deployments, an error."""
    if local is None or local.serial == 0:
        return remote
    if remote.serial > 0 and local.lineage != remote.lineage:
        raise DeployError(
            f"{local_path} has lineage {local.lineage} but the workspace's state has {remote.lineage}: "
            "they record different deployments. Delete the local file to deploy from the workspace's state."
        )
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
