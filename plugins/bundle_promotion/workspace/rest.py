"""`WorkspaceApi` over plain HTTPS, for the command line when no Airflow connection is asked for.

Airflow's tasks go through the provider's hook (`hooks/workspace.py`); a shell command
authenticated the way the Databricks CLI is (`workspace/auth.py`) should not pay for
importing Airflow, so it gets this small client with the same error and resend rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from bundle_promotion.errors import WorkspaceApiError

Headers = Callable[[], dict[str, str]]
_ATTEMPTS = 3
_TIMEOUT_SECONDS = 60
_MAX_ERROR_TEXT = 500


class RestWorkspace:
    """A Databricks REST client for `host`, authenticating each request with `headers()`.

    `headers` is called per request, so a short-lived OAuth token is refreshed as its source decides.
    """

    def __init__(self, host: str, headers: Headers) -> None:
        self._host = host.rstrip("/")
        self._headers = headers
        self._http = requests.Session()

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
        retrying = Retrying(
            stop=stop_after_attempt(_ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception(_transient if idempotent else _not_acted_on),
            reraise=True,
        )
        headers = self._headers()
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.request(
                        method.upper(),
                        f"{self._host}/api/{path}",
                        json=body,
                        params=_query_string_values(query),
                        headers=headers,
                        timeout=_TIMEOUT_SECONDS,
                    )
                    response.raise_for_status()
        except requests.RequestException as error:
            raise _api_error(method.upper(), path, error, headers) from None
        return response.json() if response.content else {}

    def workspace_host_url(self) -> str:
        """The workspace's base URL, for links to resources."""
        return self._host


def _transient(error: BaseException) -> bool:
    response = getattr(error, "response", None)
    return response is None or response.status_code == 429 or response.status_code >= 500


def _not_acted_on(error: BaseException) -> bool:
    """Refused for the rate limit, or never connected: the server did not act, so resending is safe.

    A read timeout, a dropped connection or a 5xx may come after the server acted.
    """
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    response = getattr(error, "response", None)
    return response is not None and response.status_code == 429


def _query_string_values(query: dict[str, Any] | None) -> dict[str, Any] | None:
    if query is None:
        return None
    return {key: str(value).lower() if isinstance(value, bool) else value for key, value in query.items()}


def _api_error(
    method: str, path: str, error: requests.RequestException, headers: dict[str, str]
) -> WorkspaceApiError:
    response = error.response
    if response is None:
        status, error_code, message = 0, "REQUEST_FAILED", str(error)
    else:
        status, (error_code, message) = response.status_code, _error_fields(response)
    for secret in headers.values():  # the token may be echoed back in a proxy's error page
        message = message.replace(secret, "***")
    return WorkspaceApiError(method, path, status, error_code, message[:_MAX_ERROR_TEXT])


def _error_fields(response: requests.Response) -> tuple[str, str]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and (answer.get("error_code") or answer.get("message")):
        return str(answer.get("error_code", "")), str(answer.get("message", ""))
    return response.reason or "", response.text
