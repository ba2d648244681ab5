"""Conventions every emulated Databricks endpoint shares: errors, parameters, ids, paging."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ApiError(Exception):
    """A Databricks error answer: an HTTP status and a body ``{"error_code", "message"}``."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error_code": self.error_code, "message": self.message}


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def malformed_request(message: str) -> ApiError:
    return ApiError(400, "MALFORMED_REQUEST", message)


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every Databricks timestamp."""
    return time.time_ns() // 1_000_000


class IdSequence:
    """int64 ids for one workspace, starting at ``start`` so workspaces never share an id.

    Distinct ranges make an id taken from one workspace and used in another fail
    the way it would against two real workspaces.
    """

    def __init__(self, start: int) -> None:
        self._counter = itertools.count(start)

    def next(self) -> int:
        return next(self._counter)


class Params:
    """A request's parameters: the query string merged over the JSON body.

    The provider's sync client sends GET parameters as a query string, its async
    client as a JSON body, so every endpoint reads both. Query values arrive as
    strings (``requests`` writes booleans as ``True``/``False``), so the typed
    getters accept either form.
    """

    def __init__(self, body: Mapping[str, Any] | None, query: Mapping[str, str]) -> None:
        self._values: dict[str, Any] = {**(body or {}), **query}

    def required_int(self, name: str) -> int:
        value = self.optional_int(name)
        if value is None:
            raise invalid_parameter(f"Missing required field: {name}")
        return value

    def optional_int(self, name: str, default: int | None = None) -> int | None:
        value = self._values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        raise malformed_request(f"Could not parse request object: expected an integer for '{name}'")

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise malformed_request(f"Could not parse request object: expected a boolean for '{name}'")

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._values.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise malformed_request(f"Could not parse request object: expected a string for '{name}'")
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise invalid_parameter(f"Missing required field: {name}")
        return value

    def mapping(self, name: str) -> dict[str, Any]:
        value = self._values.get(name, {})
        if not isinstance(value, dict):
            raise malformed_request(f"Could not parse request object: expected an object for '{name}'")
        return value

    def strings(self, name: str) -> list[str]:
        value = self._values.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise malformed_request(
                f"Could not parse request object: expected a list of strings for '{name}'"
            )
        return value

    def string_map(self, name: str) -> dict[str, str]:
        value = self.mapping(name)
        return {key: str(item) for key, item in value.items()}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with the opaque tokens that lead to its neighbours."""

    items: list[T]
    next_page_token: str | None
    prev_page_token: str | None


def paginate(
    items: Sequence[T], params: Params, *, default_limit: int, max_limit: int, zero_means_max: bool = False
) -> Page[T]:
    """Cut ``items`` into the page ``params`` asks for with ``limit`` and ``page_token`` or ``offset``.

    Page tokens are opaque to clients; here they carry the offset of the page.
    """
    limit = params.optional_int("limit", default_limit)
    if limit == 0 and zero_means_max:
        limit = max_limit
    if limit is None or not 0 < limit <= max_limit:
        raise invalid_parameter(f"Invalid limit {limit}: it must be greater than 0 and at most {max_limit}.")
    offset = _offset_from(params)
    end = offset + limit
    next_token = str(end) if end < len(items) else None
    prev_token = str(max(offset - limit, 0)) if offset > 0 else None
    return Page(list(items[offset:end]), next_token, prev_token)


def _offset_from(params: Params) -> int:
    token = params.text("page_token")
    if token:
        if not token.isdigit():
            raise invalid_parameter(f"Invalid page_token: {token}")
        return int(token)
    offset = params.optional_int("offset", 0) or 0
    if offset < 0:
        raise invalid_parameter(f"Invalid offset {offset}: it must not be negative.")
    return offset
