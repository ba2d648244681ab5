"""The one transport to a Databricks workspace: the provider's hook, extended to every HTTP method."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.databricks.hooks.databricks import DatabricksHook
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase, HTTPBasicAuth
from tenacity import RetryError, Retrying, retry_if_exception

from bundle_promotion.errors import WorkspaceApiError

if TYPE_CHECKING:
    from bundle_promotion.bundle.deploy.cli_engine import CliCredentials

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_MAX_ERROR_TEXT = 500


class WorkspaceHook(DatabricksHook):
    """`WorkspaceApi` over the provider's `DatabricksHook`.

    Auth (PAT, OAuth service principals, Azure, OIDC federation), retries and the
    connection's host and proxies all come from the provider. What this adds: PUT,
    DELETE with a body, JSON bodies on every method, one keep-alive session shared
    by the engine's threads, and errors as `WorkspaceApiError` without credentials.

    `max_connections` sizes the connection pool; give it the caller's thread count.
    """

    def __init__(
        self,
        databricks_conn_id: str = DatabricksHook.default_conn_name,
        *,
        max_connections: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(databricks_conn_id, **kwargs)
        self._http = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections)
        self._http.mount("https://", adapter)
        self._http.mount("http://", adapter)

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Call `/api/<path>`, retrying what the provider retries; raise `WorkspaceApiError` on failure.

        A call that is not `idempotent` is sent again only when the server cannot have acted on it.
        """
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"unsupported HTTP method {method}; use one of {', '.join(sorted(_METHODS))}")
        token = self._get_token()
        request = {
            "url": self._endpoint_url(f"api/{path}"),
            "json": body,
            "params": _query_string_values(query),
            "auth": _BearerToken(token) if token else self._basic_auth(),
            "headers": {**self.user_agent_header, **self._get_aad_headers()},
            "timeout": self.timeout_seconds,
            **self._get_requests_kwargs(),
        }
        try:
            for attempt in self._get_retry_object() if idempotent else self._resend_only_unsent():
                with attempt:
                    response = self._http.request(method, **request)
                    response.raise_for_status()
        except RetryError as exhausted:
            raise _api_error(method, path, exhausted.last_attempt.exception(), token) from None
        except requests.RequestException as error:
            raise _api_error(method, path, error, token) from None
        return response.json() if response.content else {}

    def _resend_only_unsent(self) -> Retrying:
        """The provider's retry schedule, retrying only failures that prove nothing was done."""
        return Retrying(**{**self.retry_args, "retry": retry_if_exception(_not_acted_on)})

    def cli_credentials(self) -> CliCredentials:
        """The connection's host and a bearer token for the Databricks CLI's environment.

        The token is the provider's: a PAT as configured, or a short-lived OAuth token of
        the connection's service principal, so the CLI authenticates as the hook does.
        """
        from bundle_promotion.bundle.deploy.cli_engine import CliCredentials

        token = self._get_token(raise_error=True)
        return CliCredentials(self.workspace_host_url(), {"DATABRICKS_TOKEN": str(token)})

    def workspace_host_url(self) -> str:
        """The workspace's base URL, e.g. `https://adb-1.azuredatabricks.net`, for links to resources."""
        return str(self._endpoint_url("")).rstrip("/")

    def _basic_auth(self) -> HTTPBasicAuth:
        return HTTPBasicAuth(self._get_connection_attr("login"), self.databricks_conn.password)


class _BearerToken(AuthBase):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerToken(***)"


def _not_acted_on(error: BaseException) -> bool:
    """Refused for the rate limit, or never delivered: the server did not act, so sending again is safe.

    A read timeout, a dropped connection or a 5xx may come after the server acted.
    """
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    response = getattr(error, "response", None)
    return response is not None and response.status_code == 429


def _query_string_values(query: dict[str, Any] | None) -> dict[str, Any] | None:
    """Booleans as Databricks expects them in a query string: `true`/`false`."""
    if query is None:
        return None
    return {
        key: ("true" if value else "false") if isinstance(value, bool) else value
        for key, value in query.items()
    }


def _api_error(method: str, path: str, error: BaseException | None, token: str | None) -> WorkspaceApiError:
    response = getattr(error, "response", None)
    if response is None:
        status, error_code, message = 0, "REQUEST_FAILED", str(error)
    else:
        status = response.status_code
        error_code, message = _error_fields(response)
    if token:
        message = message.replace(token, "***")
    return WorkspaceApiError(method, path, status, error_code, message[:_MAX_ERROR_TEXT])


def _error_fields(response: requests.Response) -> tuple[str, str]:
    """The Databricks `error_code` and `message` of an error answer, or its status text."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict) and (answer.get("error_code") or answer.get("message")):
        return str(answer.get("error_code", "")), str(answer.get("message", ""))
    return response.reason or "", response.text
