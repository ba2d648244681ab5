"""`WorkspaceApi` over plain HTTPS, for the command line when no Airflow connection is asked for.

Airflow's tasks go through the provider's hook (`hooks/workspace.py`); a shell command
authenticated the way the Databricks CLI is (`workspace/auth.py`) should not pay for
importing Airflow, so it gets this small client with the same error and resend rules.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from bundle_promotion.errors import WorkspaceApiError

Headers = Callable[[], dict[str, str]]
_ATTEMPTS = 3
_BACKOFF_SECONDS = 0.5
_TIMEOUT_SECONDS = 60
_MAX_ERROR_TEXT = 500


class RestWorkspace:
    """A Databricks REST client for `host`, authenticating each request with `headers()`.

    `headers` is called per call, so a short-lived OAuth token is refreshed as its source decides.
    The standard library's HTTP client keeps a validate's start-up small (`requests` costs more
    to import than the whole validation of a 50-job bundle).
    """

    def __init__(self, host: str, headers: Headers) -> None:
        self._host = host.rstrip("/")
        self._headers = headers

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Call `/api/<path>`; a call that is not `idempotent` is resent only when nothing was done."""
        method = method.upper()
        headers = {**self._headers(), "Content-Type": "application/json", "Accept": "application/json"}
        url = f"{self._host}/api/{path}" + (f"?{urllib.parse.urlencode(_query(query))}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        resend = _transient if idempotent else _not_acted_on
        attempt = 1
        while True:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=_TIMEOUT_SECONDS) as response:
                    content = response.read()
                return json.loads(content) if content else {}
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == _ATTEMPTS or not resend(error):
                    raise _api_error(method, path, error, headers) from None
            time.sleep(_BACKOFF_SECONDS * 2 ** (attempt - 1))
            attempt += 1

    def workspace_host_url(self) -> str:
        """The workspace's base URL, for links to resources."""
        return self._host


def _transient(error: BaseException) -> bool:
    """No answer, a rate limit or a server error: an idempotent call may be sent again."""
    return not isinstance(error, urllib.error.HTTPError) or error.code == 429 or error.code >= 500


def _not_acted_on(error: BaseException) -> bool:
    """Refused for the rate limit, or the connection refused: the server did not act, so resending is safe.

    A timeout, a dropped connection or a 5xx may come after the server acted.
    """
    if isinstance(error, urllib.error.HTTPError):
        return error.code == 429
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    return isinstance(reason, ConnectionRefusedError)


def _query(query: dict[str, Any]) -> dict[str, Any]:
    """Booleans as Databricks expects them in a query string: `true`/`false`."""
    return {key: str(value).lower() if isinstance(value, bool) else value for key, value in query.items()}


def _api_error(method: str, path: str, error: BaseException, headers: dict[str, str]) -> WorkspaceApiError:
    if isinstance(error, urllib.error.HTTPError):
        status, (error_code, message) = error.code, _error_fields(error)
    else:
        status, error_code, message = 0, "REQUEST_FAILED", str(error)
    for secret in headers.values():  # a proxy's error page may echo the token back
        message = message.replace(secret, "***")
    return WorkspaceApiError(method, path, status, error_code, message[:_MAX_ERROR_TEXT])


def _error_fields(error: urllib.error.HTTPError) -> tuple[str, str]:
    text = error.read().decode("utf-8", "replace")
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and (answer.get("error_code") or answer.get("message")):
        return str(answer.get("error_code", "")), str(answer.get("message", ""))
    return str(error.reason or ""), text
