"""A local Databricks workspace emulator: several workspaces in one process, one port each.

The provider's ``DatabricksHook`` builds ``{schema}://{host}:{port}/api/...`` and takes
no path prefix, so each workspace listens on its own port. One uvicorn server runs
one FastAPI app on all the sockets, and the app tells workspaces apart by the local
port a request arrived on. Each workspace has its own token, user, jobs, runs, files,
faults and request log.

In tests::

    with WorkspaceEmulator(["dev", "prod"]) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEV", emulator.airflow_connection_uri("dev"))
        DatabricksHook("databricks_dev").create_job({"name": "nightly"})

or, as a pytest fixture in one line: ``emulator = emulator_fixture(["dev", "prod"])``.

Runs end as their job parameters say (see ``workspace_runs``); faults and latency are
injected with ``fail_next`` and ``set_latency``. The emulator imports nothing from
Airflow, so users can run it for offline dry runs without it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from random import Random
from typing import Any, TypeVar
from urllib.parse import quote

import uvicorn

from bundle_promotion.testing.webhook_sink import WebhookSink
from bundle_promotion.testing.workspace_app import AnswerDropper, Gateway, create_app
from bundle_promotion.testing.workspace_state import (
    AnswerLoss,
    AnswerLossMode,
    RecordedRequest,
    WorkspaceState,
)

__all__ = ["RecordedRequest", "WorkspaceEmulator", "emulator_fixture", "serve"]

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_WORKSPACES = ("dev", "staging", "prod")
STOP_TIMEOUT_SECONDS = 10.0


class _Server(uvicorn.Server):
    """A uvicorn server that signals once it listens, and keeps the event loop it runs on."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets=sockets)
        self.listening.set()


class WorkspaceEmulator:
    """Emulated Databricks workspaces, named by ``workspaces``, served on ``host``.

    Ports are ephemeral unless ``ports`` fixes them. Each workspace accepts only its
    own bearer token (default ``dapi-emulator-<name>``) and acts as its own user
    (default ``deployer-<name>@example.com``).
    """

    def __init__(
        self,
        workspaces: Iterable[str],
        host: str = DEFAULT_HOST,
        *,
        ports: Mapping[str, int] | None = None,
        tokens: Mapping[str, str] | None = None,
        user_names: Mapping[str, str] | None = None,
    ) -> None:
        self._names = tuple(workspaces)
        if not self._names or len(set(self._names)) != len(self._names):
            raise ValueError(f"workspaces must be distinct names, at least one: {self._names}")
        self._host = host
        self._ports = {name: (ports or {}).get(name, 0) for name in self._names}
        self._tokens = {name: (tokens or {}).get(name, f"dapi-emulator-{name}") for name in self._names}
        self._user_names = {
            name: (user_names or {}).get(name, f"deployer-{name}@example.com") for name in self._names
        }
        self._gateway = Gateway({})
        self._states: dict[str, WorkspaceState] = {}
        self._sockets: list[socket.socket] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> WorkspaceEmulator:
        """Serve on a background thread; return once every port listens."""
        server, sockets = self._prepare()
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="workspace-emulator", daemon=True
        )
        thread.start()
        self._thread = thread
        while not server.listening.wait(timeout=0.05):
            if not thread.is_alive():
                self.stop()
                raise RuntimeError("The workspace emulator failed to start; its error is logged above.")
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (Ctrl-C or SIGTERM)."""
        server, sockets = self._prepare()
        try:
            server.run(sockets=sockets)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving and close every socket. The emulator can be started again."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._close_sockets()
        self._server, self._thread = None, None

    def __enter__(self) -> WorkspaceEmulator:
        return self.start()

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()

    # Addresses and credentials -------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def port(self, name: str) -> int:
        port = self._ports[self._known(name)]
        if port == 0:
            raise RuntimeError("Ephemeral ports are chosen when the emulator starts; call start() first.")
        return port

    def base_url(self, name: str) -> str:
        return f"http://{_url_host(self._host)}:{self.port(name)}"

    def token(self, name: str) -> str:
        return self._tokens[self._known(name)]

    def user_name(self, name: str) -> str:
        return self._user_names[self._known(name)]

    def airflow_connection_uri(self, name: str) -> str:
        """A ``databricks`` connection URI for ``AIRFLOW_CONN_<ID>``.

        The URI path becomes the connection's schema, ``http``, which the hook uses as the
        URL scheme. The token is the password with no login, which the hook sends as
        ``Authorization: Bearer <token>``.
        """
        token = quote(self.token(name), safe="")
        return f"databricks://:{token}@{_url_host(self._host)}:{self.port(name)}/http"

    # State, faults and latency -----------------------------------------------------------

    def reset(self) -> None:
        """Clear every workspace's jobs, runs, files, pending faults and request log."""
        self._on_server_loop(self._reset_all)

    def requests(self, name: str) -> list[RecordedRequest]:
        """The requests ``name`` answered since the last reset, oldest first."""
        state = self._state(name)
        return self._on_server_loop(lambda: list(state.log))

    def set_latency(self, seconds: float) -> None:
        """Delay every request of every workspace by ``seconds`` (without blocking other requests)."""
        if seconds < 0:
            raise ValueError(f"latency must not be negative, not {seconds}")
        self._gateway.latency = seconds

    def fail_next(
        self, name: str, status: int = 503, count: int = 1, *, error_code: str | None = None
    ) -> None:
        """Answer the next ``count`` requests to ``name`` with ``status``, in the Databricks error shape.

        429 sends ``REQUEST_LIMIT_EXCEEDED`` and 5xx ``TEMPORARILY_UNAVAILABLE``; ``error_code``
        overrides that, e.g. 400 ``COULD_NOT_ACQUIRE_LOCK``, which the provider retries.
        """
        state = self._state(name)
        self._on_server_loop(lambda: state.add_fault(status, count, error_code))

    def lose_answers(
        self,
        name: str,
        mode: AnswerLossMode,
        *,
        paths: Iterable[str] = (),
        probability: float = 1.0,
        count: int | None = None,
        seconds: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Lose the answers of writes to ``name`` whose path ends with one of ``paths`` (any write when
        empty), ``count`` times at most (no limit when None), each with ``probability`` (seeded, so a
        run repeats). The server still acts on them; see ``AnswerLoss`` for the modes."""
        loss = AnswerLoss(
            mode,
            paths=tuple(paths),
            probability=probability,
            remaining=count,
            seconds=seconds,
            random=Random(seed),
        )
        state = self._state(name)
        self._on_server_loop(lambda: state.answer_losses.append(loss))

    # Internals -----------------------------------------------------------------------------

    def _prepare(self) -> tuple[_Server, list[socket.socket]]:
        if self._server is not None:
            raise RuntimeError("The workspace emulator is already running.")
        sockets = self._bind_all()
        self._ports = {name: sock.getsockname()[1] for name, sock in zip(self._names, sockets, strict=True)}
        self._states = {name: self._new_state(index, name) for index, name in enumerate(self._names)}
        self._gateway.workspaces_by_port = {self._ports[name]: state for name, state in self._states.items()}
        config = uvicorn.Config(
            AnswerDropper(create_app(self._gateway)),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = _Server(config)
        return self._server, sockets

    def _bind_all(self) -> list[socket.socket]:
        """One listening socket per workspace; none left open if any port cannot be bound."""
        self._sockets = []
        try:
            for name in self._names:
                self._sockets.append(_listening_socket(self._host, self._ports[name]))
        except OSError:
            self._close_sockets()
            raise
        return self._sockets

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    def _reset_all(self) -> None:
        for state in self._states.values():
            state.reset()

    def _new_state(self, index: int, name: str) -> WorkspaceState:
        return WorkspaceState(name, index, self.base_url(name), self.token(name), self.user_name(name))

    def _known(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(f"No workspace named {name!r}; the emulator has {', '.join(self._names)}.")
        return name

    def _state(self, name: str) -> WorkspaceState:
        self._known(name)
        if name not in self._states:
            raise RuntimeError("The workspace emulator has not been started; call start() first.")
        return self._states[name]

    def _on_server_loop(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the server's event loop, the only thread that touches workspace state."""
        loop = self._server.loop if self._server is not None else None
        if loop is None or not loop.is_running() or _running_loop() is loop:
            return action()

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=STOP_TIMEOUT_SECONDS)


def serve(workspaces: dict[str, int], host: str = DEFAULT_HOST, webhook_port: int | None = None) -> None:
    """Serve the named workspaces on the given ports until interrupted. Blocks.

    First prints, per workspace, the Airflow connection that reaches it (its URL and token), as
    a line to paste into a shell: ``databricks_<name>`` is the connection id the example spec uses.
    With ``webhook_port``, a webhook sink listens there too (the example spec's ``demo_webhook``)
    and prints each notification it receives as a JSON line.
    """
    emulator = WorkspaceEmulator(workspaces, host, ports=workspaces)
    for name in workspaces:
        conn_id = f"databricks_{name}".upper()
        print(f"export AIRFLOW_CONN_{conn_id}='{emulator.airflow_connection_uri(name)}'", flush=True)
    with ExitStack() as webhook:
        if webhook_port is not None:
            sink = webhook.enter_context(WebhookSink(host, webhook_port, echo=sys.stdout))
            print(f"export AIRFLOW_CONN_DEMO_WEBHOOK='{sink.airflow_connection_json()}'", flush=True)
        emulator.serve_forever()


def emulator_fixture(
    workspaces: Iterable[str] = DEFAULT_WORKSPACES,
    *,
    scope: str = "session",
    name: str | None = None,
    **options: Any,
) -> Any:
    """A pytest fixture that runs one emulator for ``scope``: ``emulator = emulator_fixture()``.

    ``options`` go to ``WorkspaceEmulator``. Tests that need empty workspaces call
    ``emulator.reset()``, typically from a function-scoped autouse fixture.
    """
    import pytest  # a test-only dependency, imported only by those who ask for a fixture

    names = tuple(workspaces)

    def running_emulator() -> Iterator[WorkspaceEmulator]:
        with WorkspaceEmulator(names, **options) as emulator:
            yield emulator

    return pytest.fixture(scope=scope, name=name)(running_emulator)  # type: ignore[call-overload]


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
