"""A webhook receiver that records what it is sent: notifications in tests, the demo and dry runs.

In tests::

    with WebhookSink() as sink:
        monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", sink.airflow_connection_json())
        ...  # a spec with notifications: {all: [{webhook: ops_webhook}]}
        sink.wait_for(1)
        assert sink.payloads()[0]["event"] == "gate_waiting"

``answer_with(500)`` makes it refuse what comes next, as a receiver that is down would. It
imports nothing from Airflow.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

__all__ = ["ReceivedWebhook", "WebhookSink"]

DEFAULT_HOST = "127.0.0.1"
_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class ReceivedWebhook:
    """One POST the sink received: its path and its JSON body."""

    path: str
    body: dict[str, Any]


class WebhookSink:
    """An HTTP server on ``host`` and ``port`` (by default a free one) that keeps every JSON POST
    it gets, in order, and writes each to ``echo`` as a JSON line when given one."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0, echo: TextIO | None = None) -> None:
        self._host = host
        self._port = port
        self._echo = echo
        self._received: list[ReceivedWebhook] = []
        self._status = HTTPStatus.OK
        self._arrived = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookSink:
        """Listen; returns once it does."""
        if self._server is not None:
            raise RuntimeError("The webhook sink is already running.")
        self._server = ThreadingHTTPServer((self._host, self._port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    def __enter__(self) -> WebhookSink:
        return self.start()

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The port is chosen when the sink starts; call start() first.")
        return f"http://{self._host}:{self._server.server_address[1]}"

    def airflow_connection_json(self) -> str:
        """An ``http`` connection for ``AIRFLOW_CONN_<ID>`` that posts to this sink."""
        return json.dumps({"conn_type": "http", "host": self.url})

    def answer_with(self, status: int) -> None:
        """Answer every later POST with ``status``; a refused POST is still recorded."""
        self._status = HTTPStatus(status)

    def received(self) -> list[ReceivedWebhook]:
        with self._arrived:
            return list(self._received)

    def payloads(self) -> list[dict[str, Any]]:
        return [each.body for each in self.received()]

    def clear(self) -> None:
        with self._arrived:
            self._received.clear()

    def wait_for(self, count: int, timeout: float = _WAIT_SECONDS) -> list[ReceivedWebhook]:
        """Everything received, once at least ``count`` POSTs came; ``TimeoutError`` after ``timeout``."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._received) >= count, timeout):
                raise TimeoutError(
                    f"the webhook sink got {len(self._received)} of {count} POSTs in {timeout} s"
                )
            return list(self._received)

    def _record(self, path: str, body: dict[str, Any]) -> HTTPStatus:
        with self._arrived:
            self._received.append(ReceivedWebhook(path, body))
            if self._echo is not None:
                print(json.dumps(body), file=self._echo, flush=True)
            self._arrived.notify_all()
            return self._status


def _handler(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                self.send_error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
                return
            status = sink._record(self.path, body if isinstance(body, dict) else {"body": body})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the sink's record is what tests read."""

    return Handler
