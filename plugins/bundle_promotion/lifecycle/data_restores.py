"""Read and put back the data a release may change: model aliases, Delta table versions, pipelines.

Every function reads first and writes only when the workspace differs from what is wanted,
so a retried or cleared rollback step converges and writes nothing the second time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bundle_promotion.errors import RestoreFailed, WorkspaceApiError
from bundle_promotion.workspace.api import WorkspaceApi

_STATEMENT_WAIT = "30s"  # how long one statements call waits before answering PENDING
_STATEMENT_DEADLINE_SECONDS = 600.0
_RUNNING_STATEMENT = ("PENDING", "RUNNING")
PIPELINE_TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELED")
_REUSABLE_UPDATE_STATES = (
    "COMPLETED",
    "QUEUED",
    "CREATED",
    "WAITING_FOR_RESOURCES",
    "INITIALIZING",
    "RESETTING",
    "SETTING_UP_TABLES",
    "RUNNING",
    "STOPPING",
)


# Unity Catalog model aliases ------------------------------------------------------------------


def alias_key(model: str, alias: str) -> str:
    return f"{model}@{alias}"


def alias_version(api: WorkspaceApi, model: str, alias: str) -> int | None:
    """The version the alias points to, or None when the model has no such alias."""
    try:
        answer = api.call("GET", f"2.1/unity-catalog/models/{_quoted(model)}/aliases/{_quoted(alias)}")
    except WorkspaceApiError as error:
        if error.status == 404:
            return None
        raise
    return int(answer["version"])


def move_alias(api: WorkspaceApi, model: str, alias: str, version: int | None) -> bool:
    """Point the alias at ``version`` (None: remove it); True when something changed."""
    if alias_version(api, model, alias) == version:
        return False
    path = f"2.1/unity-catalog/models/{_quoted(model)}/aliases/{_quoted(alias)}"
    if version is None:
        api.call("DELETE", path)
    else:
        api.call("PUT", path, body={"version_num": version})
    return True


# Delta tables through the SQL statement API --------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    operation: str
    parameters: dict[str, str]


def table_history(api: WorkspaceApi, warehouse_id: str, table: str) -> list[HistoryEntry]:
    """``DESCRIBE HISTORY``, newest first."""
    rows = execute_sql(api, warehouse_id, f"DESCRIBE HISTORY {_identifier(table)}")
    return [
        HistoryEntry(int(row["version"]), str(row["operation"]), _parameters(row.get("operationParameters")))
        for row in rows
    ]


def table_version(api: WorkspaceApi, warehouse_id: str, table: str) -> int:
    history = table_history(api, warehouse_id, table)
    if not history:
        raise RestoreFailed(f"DESCRIBE HISTORY {table} returned no versions on warehouse {warehouse_id}")
    return history[0].version


def restore_table(api: WorkspaceApi, warehouse_id: str, table: str, version: int) -> bool:
    """Bring ``table`` back to ``version``; True when a RESTORE ran. Checks the history afterwards."""
    if _holds_version(table_history(api, warehouse_id, table), version):
        return False
    execute_sql(api, warehouse_id, f"RESTORE TABLE {_identifier(table)} TO VERSION AS OF {int(version)}")
    if not _holds_version(table_history(api, warehouse_id, table), version):
        raise RestoreFailed(
            f"RESTORE TABLE {table} TO VERSION AS OF {version} succeeded, but DESCRIBE HISTORY does not "
            "show the table at that version; another writer may have committed since: run the step again"
        )
    return True


def _holds_version(history: list[HistoryEntry], version: int) -> bool:
    """The table's content is that of ``version``: it is the newest, or the newest restored to it."""
    if not history:
        return False
    newest = history[0]
    return newest.version == version or (
        newest.operation == "RESTORE" and newest.parameters.get("version") == str(version)
    )


def execute_sql(api: WorkspaceApi, warehouse_id: str, statement: str) -> list[dict[str, Any]]:
    """Run one statement; its rows as dicts by column name. A FAILED statement raises ``RestoreFailed``."""
    answer = api.call(
        "POST",
        "2.0/sql/statements",
        body={"statement": statement, "warehouse_id": warehouse_id, "wait_timeout": _STATEMENT_WAIT},
    )
    answer = _until(
        lambda: api.call("GET", f"2.0/sql/statements/{answer['statement_id']}"),
        answer,
        lambda current: current["status"]["state"] not in _RUNNING_STATEMENT,
        f"statement {statement!r} on warehouse {warehouse_id}",
    )
    state = answer["status"]["state"]
    if state != "SUCCEEDED":
        error = answer["status"].get("error", {}).get("message", "no error message")
        raise RestoreFailed(f"{statement!r} on warehouse {warehouse_id} ended {state}: {error}")
    columns = [column["name"] for column in answer["manifest"]["schema"].get("columns", [])]
    rows = answer.get("result", {}).get("data_array", [])
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _until(
    poll: Callable[[], dict[str, Any]],
    first: dict[str, Any],
    done: Callable[[dict[str, Any]], bool],
    what: str,
) -> dict[str, Any]:
    deadline = time.monotonic() + _STATEMENT_DEADLINE_SECONDS
    current = first
    while not done(current):
        if time.monotonic() > deadline:
            raise RestoreFailed(f"{what} did not finish within {_STATEMENT_DEADLINE_SECONDS:.0f} s")
        time.sleep(1)
        current = poll()
    return current


def _parameters(value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {str(key): str(item) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("{"):
        return {str(key): str(item) for key, item in json.loads(value).items()}
    return {}


def _identifier(name: str) -> str:
    """A three-part name with each part backquoted, so no name can end the statement."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in name.split("."))


def _quoted(name: str) -> str:
    return quote(name, safe="")


# Pipelines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineUpdate:
    pipeline_id: str
    update_id: str
    state: str
    full_refresh: bool
    refresh_selection: tuple[str, ...]
    created_ms: int

    @property
    def finished(self) -> bool:
        return self.state in PIPELINE_TERMINAL_STATES


def pipeline_refresh(
    api: WorkspaceApi, pipeline_id: str, tables: tuple[str, ...], *, not_before_ms: int
) -> PipelineUpdate:
    """The refresh a rollback wants: one already started since ``not_before_ms`` and not failed, or a new one.

    ``tables`` empty means a full refresh of every table; otherwise a full refresh of those only.
    """
    for update in pipeline_updates(api, pipeline_id):
        if update.created_ms < not_before_ms:
            break
        same_refresh = (update.full_refresh, update.refresh_selection) == (not tables, tables)
        if same_refresh and update.state in _REUSABLE_UPDATE_STATES:
            return update
    body: dict[str, Any] = {"full_refresh_selection": list(tables)} if tables else {"full_refresh": True}
    update_id = api.call("POST", f"2.0/pipelines/{pipeline_id}/updates", body=body)["update_id"]
    return pipeline_update(api, pipeline_id, update_id)


def pipeline_updates(api: WorkspaceApi, pipeline_id: str) -> list[PipelineUpdate]:
    """The pipeline's updates, newest first."""
    answer = api.call("GET", f"2.0/pipelines/{pipeline_id}/updates")
    return [_to_update(update) for update in answer.get("updates", [])]


def pipeline_update(api: WorkspaceApi, pipeline_id: str, update_id: str) -> PipelineUpdate:
    return _to_update(api.call("GET", f"2.0/pipelines/{pipeline_id}/updates/{update_id}")["update"])


def stop_pipeline_update(api: WorkspaceApi, pipeline_id: str, update_id: str) -> bool:
    """Stop the pipeline while ``update_id`` still runs; False when that update already ended.

    The Pipelines API stops a pipeline, not an update: reading the update first keeps a later
    update, started by someone else, from being stopped in its place.
    """
    if pipeline_update(api, pipeline_id, update_id).finished:
        return False
    api.call("POST", f"2.0/pipelines/{pipeline_id}/stop")
    return True


def pipeline_update_error(api: WorkspaceApi, pipeline_id: str, update_id: str) -> str:
    """The message of the update's first ERROR event, which says why it failed."""
    events = api.call("GET", f"2.0/pipelines/{pipeline_id}/events", query={"filter": "level='ERROR'"})
    for event in events.get("events", []):
        if event.get("origin", {}).get("update_id") == update_id and event.get("level") == "ERROR":
            return str(event.get("message") or event.get("error", {}))
    return "the pipeline logged no error event for this update"


def _to_update(update: dict[str, Any]) -> PipelineUpdate:
    selection = tuple(update.get("full_refresh_selection") or update.get("refresh_selection") or ())
    return PipelineUpdate(
        pipeline_id=str(update["pipeline_id"]),
        update_id=str(update["update_id"]),
        state=str(update["state"]),
        full_refresh=bool(update.get("full_refresh")),
        refresh_selection=selection,
        created_ms=int(update.get("creation_time", 0)),
    )
