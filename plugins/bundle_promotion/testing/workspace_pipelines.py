"""Lakeflow declarative pipelines of one emulated workspace (``/api/2.0/pipelines``).

CRUD follows the Pipelines API: create answers ``{pipeline_id, effective_settings}``, edit
(``PUT``) replaces the whole spec, get answers ``{pipeline_id, spec, state, …}``. Updates move
by the wall clock, like job runs, with an outcome fixed by the pipeline's ``configuration``:

- ``emulator.update_result``: ``COMPLETED`` (default) or ``FAILED``, how every update ends;
- ``emulator.update_seconds``: how long an update stays ``RUNNING`` (default ``0``);
- ``emulator.update_error``: the message of the ``ERROR`` event a failed update logs.
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bundle_promotion.testing.workspace_protocol import (
    ApiError,
    IdSequence,
    invalid_parameter,
    now_ms,
)

RESULT_KEY = "emulator.update_result"
DURATION_KEY = "emulator.update_seconds"
ERROR_KEY = "emulator.update_error"
DEFAULT_UPDATE_ERROR = "Update failed: a flow of the pipeline raised an exception."
TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELED")
# Fields the service fills in, never part of the settings a client sends.
_SERVER_FIELDS = ("pipeline_id", "allow_duplicate_names", "dry_run", "expected_last_modified")


_NAME_LIKE = re.compile(r"name\s+LIKE\s+'(?P<pattern>.*)'", re.IGNORECASE | re.DOTALL)


@dataclass
class Update:
    update_id: str
    pipeline_id: str
    created_ms: int
    run_ms: int
    result: str
    full_refresh: bool
    full_refresh_selection: list[str]
    refresh_selection: list[str]
    canceled_ms: int | None = None

    def state(self, now: int) -> str:
        if self.canceled_ms is not None and self.canceled_ms <= now:
            return "CANCELED"
        return "RUNNING" if now < self.created_ms + self.run_ms else self.result

    def to_api(self, now: int) -> dict[str, Any]:
        info: dict[str, Any] = {
            "pipeline_id": self.pipeline_id,
            "update_id": self.update_id,
            "state": self.state(now),
            "cause": "API_CALL",
            "creation_time": self.created_ms,
            "full_refresh": self.full_refresh,
        }
        if self.full_refresh_selection:
            info["full_refresh_selection"] = list(self.full_refresh_selection)
        if self.refresh_selection:
            info["refresh_selection"] = list(self.refresh_selection)
        return info


@dataclass
class Pipeline:
    pipeline_id: str
    creator_user_name: str
    spec: dict[str, Any]
    last_modified: int
    updates: list[Update] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    def active_update(self, now: int) -> Update | None:
        return next((u for u in self.updates if u.state(now) not in TERMINAL_STATES), None)

    def to_api(self, now: int) -> dict[str, Any]:
        latest = [
            {"update_id": u.update_id, "state": u.state(now), "creation_time": str(u.created_ms)}
            for u in reversed(self.updates[-5:])
        ]
        answer: dict[str, Any] = {
            "pipeline_id": self.pipeline_id,
            "name": self.name,
            "spec": {**copy.deepcopy(self.spec), "id": self.pipeline_id},
            "state": "RUNNING" if self.active_update(now) else "IDLE",
            "health": "HEALTHY",
            "creator_user_name": self.creator_user_name,
            "run_as_user_name": self.creator_user_name,
            "last_modified": self.last_modified,
        }
        if latest:
            answer["latest_updates"] = latest
        return answer


class PipelineStore:
    """Pipelines by id. Every method raises ``ApiError`` as the real endpoint would."""

    def __init__(self, ids: IdSequence, user_name: str) -> None:
        self._ids = ids
        self._user_name = user_name
        self._pipelines: dict[str, Pipeline] = {}

    def create(self, body: dict[str, Any]) -> Pipeline:
        settings = _settings(body)
        if not body.get("allow_duplicate_names") and self._named(settings.get("name")):
            raise ApiError(
                400,
                "RESOURCE_CONFLICT",
                f"Pipeline with name '{settings['name']}' already exists. Use allow_duplicate_names "
                "to create a pipeline with the same name.",
            )
        pipeline = Pipeline(self._new_id(), self._user_name, settings, now_ms())
        self._pipelines[pipeline.pipeline_id] = pipeline
        return pipeline

    def get(self, pipeline_id: str) -> Pipeline:
        pipeline = self._pipelines.get(pipeline_id)
        if pipeline is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Pipeline {pipeline_id} does not exist.")
        return pipeline

    def edit(self, pipeline_id: str, body: dict[str, Any]) -> None:
        pipeline = self.get(pipeline_id)
        if body.get("id", pipeline_id) != pipeline_id:
            raise invalid_parameter(f"The pipeline id in the body ({body['id']}) differs from the path.")
        pipeline.spec = _settings({key: value for key, value in body.items() if key != "id"})
        pipeline.last_modified = now_ms()

    def delete(self, pipeline_id: str) -> None:
        self.get(pipeline_id)
        del self._pipelines[pipeline_id]

    def newest_first(self, filter_: str | None = None) -> list[Pipeline]:
        """Newest first; ``filter_`` is the list's ``name LIKE '<pattern>'`` (``%``: any text)."""
        pipelines = sorted(
            self._pipelines.values(), key=lambda p: (p.last_modified, p.pipeline_id), reverse=True
        )
        if not filter_:
            return pipelines
        match = _NAME_LIKE.fullmatch(filter_.strip())
        if match is None:
            raise invalid_parameter(f"Unsupported filter: {filter_}. Use name LIKE '<pattern>'.")
        pattern = re.compile(
            "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in match["pattern"]),
            re.IGNORECASE | re.DOTALL,
        )
        return [pipeline for pipeline in pipelines if pattern.fullmatch(pipeline.name)]

    def start_update(
        self,
        pipeline_id: str,
        *,
        full_refresh: bool,
        full_refresh_selection: list[str],
        refresh_selection: list[str],
    ) -> Update:
        pipeline = self.get(pipeline_id)
        now = now_ms()
        if pipeline.active_update(now) is not None:
            raise ApiError(
                409,
                "RESOURCE_CONFLICT",
                f"Pipeline {pipeline_id} has an active update; wait for it to finish or stop it.",
            )
        if full_refresh and (full_refresh_selection or refresh_selection):
            raise invalid_parameter("full_refresh cannot be combined with a refresh selection.")
        configuration = pipeline.spec.get("configuration") or {}
        update = Update(
            update_id=self._new_id(),
            pipeline_id=pipeline_id,
            created_ms=now,
            run_ms=int(float(configuration.get(DURATION_KEY, 0)) * 1000),
            result=str(configuration.get(RESULT_KEY, "COMPLETED")).upper(),
            full_refresh=full_refresh,
            full_refresh_selection=full_refresh_selection,
            refresh_selection=refresh_selection,
        )
        pipeline.updates.append(update)
        return update

    def update(self, pipeline_id: str, update_id: str) -> Update:
        found = next((u for u in self.get(pipeline_id).updates if u.update_id == update_id), None)
        if found is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Update {update_id} does not exist.")
        return found

    def stop(self, pipeline_id: str) -> None:
        now = now_ms()
        active = self.get(pipeline_id).active_update(now)
        if active is not None:
            active.canceled_ms = now

    def error_events(self, pipeline_id: str, now: int) -> list[dict[str, Any]]:
        """Newest first, as ``GET …/events`` answers: one ``ERROR`` event per failed update."""
        pipeline = self.get(pipeline_id)
        message = str((pipeline.spec.get("configuration") or {}).get(ERROR_KEY, DEFAULT_UPDATE_ERROR))
        return [
            {
                "id": f"{update.update_id}-error",
                "event_type": "update_progress",
                "level": "ERROR",
                "message": message,
                "error": {"exceptions": [{"class_name": "PipelineException", "message": message}]},
                "origin": {"pipeline_id": pipeline_id, "update_id": update.update_id},
                "timestamp": _iso(update.created_ms + update.run_ms),
            }
            for update in reversed(pipeline.updates)
            if update.state(now) == "FAILED"
        ]

    def _named(self, name: Any) -> bool:
        return any(pipeline.name == name for pipeline in self._pipelines.values())

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.next()))


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    if not body.get("name"):
        raise invalid_parameter("Missing required field: name")
    return {key: copy.deepcopy(value) for key, value in body.items() if key not in _SERVER_FIELDS}


def _iso(epoch_ms: int) -> str:
    return (
        datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
