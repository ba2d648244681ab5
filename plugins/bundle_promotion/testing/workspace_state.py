"""Everything one emulated workspace holds, and the faults and latency the gateway applies."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from random import Random
from typing import Any, Literal

from bundle_promotion.testing.workspace_catalog import ModelRegistry
from bundle_promotion.testing.workspace_files import FileTree
from bundle_promotion.testing.workspace_jobs import JobStore
from bundle_promotion.testing.workspace_objects import WorkspaceObjects
from bundle_promotion.testing.workspace_pipelines import PipelineStore
from bundle_promotion.testing.workspace_protocol import ApiError, IdSequence
from bundle_promotion.testing.workspace_runs import RunStore
from bundle_promotion.testing.workspace_sql import SqlWarehouse

# Ids of workspace N start at (N + 1) * ID_RANGE, so no two workspaces share an id.
ID_RANGE = 10**12
# Real workspace ids are 16-digit numbers; these stay below 2**53, safe for JSON readers.
WORKSPACE_ID_BASE = 1_000_000_000_000_000


@dataclass(frozen=True)
class RecordedRequest:
    """One request a workspace answered.

    ``body`` is the body parsed as JSON, or ``None`` when it was empty or not JSON.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


@dataclass
class Fault:
    """An error to answer the next ``remaining`` requests with, before anything else happens."""

    error: ApiError
    remaining: int


AnswerLossMode = Literal["drop", "error", "delay"]
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class AnswerLoss:
    """Requests whose answer is lost although the server acts on them, as a flaky network loses them.

    ``drop`` acts, then closes the connection without answering; ``error`` acts, then answers 503;
    ``delay`` waits ``seconds`` before acting, so a client with a shorter timeout gives up first.
    A request matches when its method is in ``methods`` and its path ends with one of ``paths``
    (any path when empty); then it is lost with ``probability``, at most ``remaining`` times.
    """

    mode: AnswerLossMode
    methods: frozenset[str] = WRITE_METHODS
    paths: tuple[str, ...] = ()
    probability: float = 1.0
    remaining: int | None = None
    seconds: float = 0.0
    random: Random = field(default_factory=lambda: Random(0))

    def takes(self, method: str, path: str) -> bool:
        if self.remaining == 0 or method not in self.methods:
            return False
        if self.paths and not path.endswith(self.paths):
            return False
        if self.random.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


def injected_error(status: int, error_code: str | None = None) -> ApiError:
    """The error a Databricks workspace sends for ``status``, in its usual shape."""
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        code, message = "REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait a moment and try again."
    elif status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        code, message = "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable. Please try again."
    else:
        code, message = HTTPStatus(status).name, "Injected fault."
    return ApiError(status, error_code or code, message)


class WorkspaceState:
    """The independent state of one workspace: identity, jobs, runs, files, faults and request log.

    Only the server's event loop touches it; the emulator's public methods hop onto
    that loop, so no locks are needed.
    """

    def __init__(self, name: str, index: int, base_url: str, token: str, user_name: str) -> None:
        self.name = name
        self.base_url = base_url
        self.token = token
        self.user_name = user_name
        self.workspace_id = WORKSPACE_ID_BASE + index + 1
        self._first_id = (index + 1) * ID_RANGE
        self.reset()

    def reset(self) -> None:
        """Forget every job, run, file, pipeline, model, table, other resource, pending fault and request."""
        ids = IdSequence(self._first_id)
        self.jobs = JobStore(ids, self.user_name)
        self.runs = RunStore(ids, f"{self.base_url}/?o={self.workspace_id}")
        self.files = FileTree(ids, self.user_name)
        self.pipelines = PipelineStore(ids, self.user_name)
        self.models = ModelRegistry(self.user_name)
        self.objects = WorkspaceObjects(ids, self.user_name)
        self.sql = SqlWarehouse(ids, self.user_name)
        self.log: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self.answer_losses: list[AnswerLoss] = []

    def add_fault(self, status: int, count: int, error_code: str | None) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), not {status}")
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        self.faults.append(Fault(injected_error(status, error_code), count))

    def take_fault(self) -> ApiError | None:
        if not self.faults:
            return None
        fault = self.faults[0]
        fault.remaining -= 1
        if fault.remaining == 0:
            self.faults.popleft()
        return fault.error

    def answer_loss(self, method: str, path: str) -> AnswerLoss | None:
        """The rule that loses this request's answer, if any."""
        return next((loss for loss in self.answer_losses if loss.takes(method, path)), None)

    def current_user(self) -> dict[str, Any]:
        """The SCIM ``User`` that ``/preview/scim/v2/Me`` answers with."""
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": str(self.workspace_id * 10 + 1),
            "userName": self.user_name,
            "displayName": self.user_name.split("@", 1)[0],
            "active": True,
            "emails": [{"type": "work", "value": self.user_name, "primary": True}],
        }
