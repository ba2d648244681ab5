"""A local GitHub Enterprise emulator: the REST endpoints bundle-promotion uses, under ``/api/v3``.

Repositories, commits, tags, file contents, check runs, pull requests and their reviews,
deployments and deployment statuses. PyGithub, and so the provider's ``GithubHook``,
talks to it as to GitHub Enterprise: the connection's host is ``base_url``.

In tests::

    with GitHubEmulator() as github:
        github.add_repo("acme/sales")
        sha = github.add_commit("acme/sales", {"README.md": "hello"}, author="alice")
        github.add_check_run("acme/sales", sha, "ci/build")
        monkeypatch.setenv("AIRFLOW_CONN_GITHUB_DEFAULT", github.airflow_connection_json())

Faults are injected with ``fail_next`` (403 answers as GitHub's rate limit does, 5xx as
a server error); ``requests()`` is the request log. The emulator imports nothing from
Airflow.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from bundle_promotion.testing import github_state
from bundle_promotion.testing.github_app import API_PREFIX, create_app
from bundle_promotion.testing.github_state import (
    CheckRun,
    GitHubState,
    Pull,
    RecordedRequest,
    Review,
)

__all__ = ["GitHubEmulator", "RecordedRequest"]

T = TypeVar("T")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_TOKEN = "ghp_emulator0000000000000000000000000000"
DEFAULT_USER = "promotion-bot"
_STOP_TIMEOUT_SECONDS = 10.0


class GitHubEmulator:
    """An emulated GitHub Enterprise on ``host``; it accepts ``token`` and acts as ``user``."""

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = 0, *, token: str = DEFAULT_TOKEN, user: str = DEFAULT_USER
    ) -> None:
        self._host = host
        self._port = port
        self._state = GitHubState(token, user)
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # Lifecycle ---------------------------------------------------------------------------

    def start(self) -> GitHubEmulator:
        """Serve on a background thread; return once the port listens."""
        if self._server is not None:
            raise RuntimeError("The GitHub emulator is already running.")
        self._socket = sock = socket.create_server((self._host, self._port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self._state), log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = server = uvicorn.Server(config)
        listening = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.call_soon(listening.set)
            self._loop.run_until_complete(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=run, name="github-emulator", daemon=True)
        self._thread.start()
        while not (listening.wait(timeout=0.05) and server.started):
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError("The GitHub emulator failed to start; its error is logged above.")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_STOP_TIMEOUT_SECONDS)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._loop, self._socket = None, None, None, None

    def __enter__(self) -> GitHubEmulator:
        return self.start()

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()

    # Addresses and credentials -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What GitHub Enterprise calls the API URL: the host of a ``github`` connection."""
        if self._port == 0:
            raise RuntimeError("The port is chosen when the emulator starts; call start() first.")
        return f"http://{self._host}:{self._port}{API_PREFIX}"

    @property
    def token(self) -> str:
        return self._state.token

    @property
    def user(self) -> str:
        return self._state.user

    def airflow_connection_json(self) -> str:
        """A ``github`` connection for ``AIRFLOW_CONN_<ID>``: the API URL as host, the token as password."""
        return json.dumps({"conn_type": "github", "host": self.base_url, "password": self.token})

    # Seeding -------------------------------------------------------------------------------

    def add_repo(self, full_name: str, *, default_branch: str = "main") -> None:
        self._on_loop(lambda: self._state.add_repo(full_name, default_branch))

    def add_commit(
        self,
        repo: str,
        files: Mapping[str, str],
        *,
        author: str = "octocat",
        message: str = "change",
        parent: str | None = None,
    ) -> str:
        """Add a commit holding exactly ``files`` to the default branch; returns its SHA."""
        return self._on_loop(
            lambda: self._state.add_commit(repo, dict(files), author=author, message=message, parent=parent)
        )

    def add_tag(self, repo: str, name: str, commit: str, *, annotated: bool = True) -> None:
        self._on_loop(lambda: self._state.add_tag(repo, name, commit, annotated=annotated))

    def mirror_git(self, repo: str, checkout: Path) -> None:
        """Publish the tagged commits and tags of a local git repository, keeping their SHAs."""
        self._on_loop(lambda: github_state.mirror_git(self._state, repo, checkout))

    def add_check_run(
        self,
        repo: str,
        commit: str,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> int:
        """Report a check run on ``commit``; a later run of the same name supersedes it. Returns its id."""

        def add() -> int:
            moment = github_state.now()
            run = CheckRun(
                self._state.new_id(),
                name,
                commit,
                status,
                conclusion if status == "completed" else None,
                moment,
                moment if status == "completed" else None,
            )
            self._state.repo(repo).check_runs.append(run)
            return run.id

        return self._on_loop(add)

    def add_pull(
        self, repo: str, head: str, *, author: str = "octocat", title: str = "change", branch: str = "feature"
    ) -> int:
        """Open a pull request whose head is ``head``; returns its number."""

        def add() -> int:
            state = self._state.repo(repo)
            number = len(state.pulls) + 1
            pull = Pull(number, title, author, head, branch, state.default_branch, github_state.now())
            state.pulls[number] = pull
            return number

        return self._on_loop(add)

    def add_review(
        self,
        repo: str,
        pull: int,
        reviewer: str,
        *,
        state: str = "APPROVED",
        commit: str | None = None,
        body: str = "",
    ) -> int:
        """Submit a review on ``pull``, for ``commit`` (default: the pull's head). Returns its id."""

        def add() -> int:
            repository = self._state.repo(repo)
            sha = commit or repository.pulls[pull].head_sha
            review = Review(self._state.new_id(), pull, reviewer, state, sha, body, github_state.now())
            repository.reviews.append(review)
            return review.id

        return self._on_loop(add)

    # Observing and faults ------------------------------------------------------------------

    def deployments(self, repo: str) -> list[dict[str, Any]]:
        """Every deployment of ``repo``, oldest first, with its statuses' states, oldest first."""
        return self._on_loop(
            lambda: [
                {
                    "id": deployment.id,
                    "sha": deployment.sha,
                    "environment": deployment.environment,
                    "payload": deployment.payload,
                    "statuses": [status.state for status in deployment.statuses],
                }
                for deployment in self._state.repo(repo).deployments
            ]
        )

    def requests(self) -> list[RecordedRequest]:
        """The requests answered since the last reset, oldest first."""
        return self._on_loop(lambda: list(self._state.log))

    def fail_next(self, status: int = 503, count: int = 1) -> None:
        """Answer the next ``count`` requests with ``status``; a 403 is GitHub's rate limit."""
        self._on_loop(lambda: self._state.faults.extend([status] * count))

    def reset(self) -> None:
        """Forget every repository, pending fault and logged request."""
        self._on_loop(self._state.reset)

    def _on_loop(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the server's event loop, the only thread that touches the state."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return action()

        async def run() -> T:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=_STOP_TIMEOUT_SECONDS)
