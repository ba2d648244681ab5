"""Airflow on CeleryExecutor, Postgres and Redis, as real processes on this machine, without Docker.

The same topology as docker-compose.yaml: PostgreSQL (Airflow's database and the ledger's
own database on one server), Redis as the Celery broker, the workspace emulator for the
dev, staging and prod workspaces, a webhook sink behind the example spec's notifications,
the api-server, scheduler, dag-processor and triggerer, and Celery workers. Each worker has
its own ``AIRFLOW_HOME``, working directory, temp dir and Celery hostname, as if on its own
machine: they share only the databases, the broker and the artifact store (a local folder
standing in for S3). Every port is free when taken; everything lives under one folder and
is stopped on exit.

    uv run python scripts/stack.py [--bundles 1] [--workers 2]

prints the API server's URL and the users' passwords, and runs until Ctrl-C. The stack
test (tests/stack/) and bench/fleet.py start it from Python with ``Stack``.
Needs ``initdb``/``pg_ctl`` (PostgreSQL, found on PATH or in /usr/lib/postgresql/*/bin),
``redis-server`` and git. As root, PostgreSQL runs as the ``postgres`` user.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
EXAMPLE_SPEC = PROJECT / "include" / "promotions" / "example.yaml"
ENVIRONMENTS = ("dev", "staging", "prod")
AIRFLOW = (sys.executable, "-m", "airflow")
# The example spec's prod gate needs two people of role op; admin triggers runs.
USERS = {"admin": "admin", "alice": "op", "bob": "op"}
LEDGER_DATABASE = "bundle_promotion_ledger"
READY_SECONDS = 300.0
POLL_SECONDS = 0.5


@dataclass
class Stack:
    """The running stack: a context manager that starts everything and stops all of it on exit."""

    root: Path
    specs_folder: Path
    workers: int = 2
    worker_concurrency: int = 4
    preload_workers: bool = True  # bundle_promotion.workers.CELERY_CONFIG (docs/scaling.md)
    api_url: str = ""
    passwords: dict[str, str] = field(default_factory=dict)
    emulator: Any = None
    webhooks: Any = None  # the WebhookSink behind the example spec's demo_webhook connection
    environment: dict[str, str] = field(default_factory=dict)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)
    _exit: ExitStack = field(default_factory=ExitStack)

    @property
    def control_home(self) -> Path:
        """The AIRFLOW_HOME of the api-server, scheduler, dag-processor and triggerer."""
        return self.root / "airflow"

    def worker_home(self, index: int) -> Path:
        return self.root / f"worker-{index}" / "airflow"

    def worker_hostname(self, index: int) -> str:
        return f"worker-{index}@stack"

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        from bundle_promotion.testing.webhook_sink import WebhookSink
        from bundle_promotion.testing.workspace import WorkspaceEmulator

        compile_bytecode()
        database = self._exit.enter_context(
            postgres(self.root / "logs", databases=("airflow", LEDGER_DATABASE))
        )
        broker = self._exit.enter_context(redis(self.root / "redis"))
        self.emulator = self._exit.enter_context(WorkspaceEmulator(list(ENVIRONMENTS)))
        self.webhooks = self._exit.enter_context(WebhookSink())
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.passwords = {user: secrets.token_urlsafe(12) for user in USERS}
        self.environment = environment = self._airflow_environment(database, broker)
        self._exit.callback(self._stop_processes)
        run_airflow(["db", "migrate"], environment, self.control_home, self.root / "logs" / "db-migrate.log")
        self._spawn("api-server", ["api-server", "--port", str(api_port)], environment, self.control_home)
        for component in ("scheduler", "dag-processor", "triggerer"):
            self._spawn(component, [component], environment, self.control_home)
        for index in range(1, self.workers + 1):
            self._spawn_worker(index, environment)
        wait_until(self._api_reports_healthy, "the api-server to report its components healthy", self)
        wait_until(self._workers_answer(broker), f"{self.workers} Celery workers to answer a ping", self)

    def _airflow_environment(self, database: str, broker: str) -> dict[str, str]:
        password_file = self.root / "passwords.json"
        password_file.write_text(json.dumps(self.passwords))
        password_file.chmod(0o600)
        psycopg_url = f"postgresql+psycopg://{database}"
        artifacts = self.root / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{psycopg_url}/airflow",
            # Airflow would derive asyncpg; psycopg 3 is async too, so one driver serves both.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"{psycopg_url}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{broker}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{psycopg_url}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": (
                "bundle_promotion.workers.CELERY_CONFIG"
                if self.preload_workers
                else "airflow.providers.celery.executors.default_celery.DEFAULT_CELERY_CONFIG"
            ),
            # Every process signs and checks the task tokens with the same secret.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(self.specs_folder),
            "AIRFLOW__BUNDLE_PROMOTION__ARTIFACT_STORE": artifacts.as_uri(),
            "AIRFLOW__BUNDLE_PROMOTION__GATE_POLLING_PERIOD_SECONDS": "2",
            "AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER": f"postgres://{database}/{LEDGER_DATABASE}",
            "AIRFLOW_CONN_DEMO_WEBHOOK": self.webhooks.airflow_connection_json(),
            **{
                f"AIRFLOW_CONN_DATABRICKS_{name.upper()}": self.emulator.airflow_connection_uri(name)
                for name in ENVIRONMENTS
            },
        }

    def _spawn_worker(self, index: int, environment: dict[str, str]) -> None:
        home = self.worker_home(index)
        temp = home.parent / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        self._spawn(
            f"worker-{index}",
            ["celery", "worker", "--celery-hostname", self.worker_hostname(index), "--without-mingle"],
            {**environment, "TMPDIR": str(temp)},
            home,
        )

    def _spawn(self, name: str, arguments: list[str], environment: dict[str, str], home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        log_file = self.root / "logs" / f"{name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("wb") as log:
            self._processes[name] = subprocess.Popen(
                [*AIRFLOW, *arguments],
                env={**environment, "AIRFLOW_HOME": str(home)},
                cwd=home.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _stop_processes(self) -> None:
        stop_groups(list(self._processes.values()))

    def process_groups(self) -> dict[str, int]:
        """Each Airflow component's process group id (a worker's group holds its task processes)."""
        return {name: process.pid for name, process in self._processes.items()}

    def check_processes(self) -> None:
        """Raise naming the first component that exited, and where its log is."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see {self.root / 'logs' / f'{name}.log'}"
                )

    def _api_reports_healthy(self) -> bool:
        try:
            health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
        except requests.RequestException:
            return False
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def _workers_answer(self, broker: str) -> Callable[[], bool]:
        from celery import Celery

        app = Celery(broker=f"redis://{broker}/0")
        expected = {self.worker_hostname(index) for index in range(1, self.workers + 1)}

        def all_answer() -> bool:
            answered = {name for reply in app.control.ping(timeout=1.0) for name in reply}
            return expected <= answered

        return all_answer

    # The API, as the users would call it.

    def token(self, user: str) -> str:
        """The user's JWT, logged in once (tokens outlive any run of the stack)."""
        from bundle_promotion.web.client import login

        if user not in self._tokens:
            self._tokens[user] = login(self.api_url, user, self.passwords[user])
        return self._tokens[user]

    def api(self, method: str, path: str, user: str = "admin", **kwargs: Any) -> Any:
        response = requests.request(
            method,
            f"{self.api_url}/api/v2/{path}",
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=30,
            **kwargs,
        )
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str) -> None:
        def parsed() -> bool:
            try:
                self.api("GET", f"dags/{dag_id}")
            except requests.HTTPError:
                return False
            return True

        wait_until(parsed, f"the dag-processor to parse {dag_id}", self)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run = self.api("POST", f"dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")["state"])

    def run_states(self, dag_ids: Sequence[str]) -> dict[str, str]:
        """The state of each DAG's newest run, in one request."""
        body = {"dag_ids": list(dag_ids), "order_by": "run_after", "page_limit": 1000}
        runs = self.api("POST", "dags/~/dagRuns/list", json=body)["dag_runs"]
        return {run["dag_id"]: str(run["state"]) for run in runs}

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500})[
                "task_instances"
            ]
        )

    def tasks_run_by(self, index: int, dag_id: str, run_id: str) -> set[str]:
        """The tasks of a run whose logs this worker wrote: a task's log lives where it ran."""
        run_logs = self.worker_home(index) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return {folder.name.removeprefix("task_id=") for folder in run_logs.glob("task_id=*")}

    def cli_environment(self) -> dict[str, str]:
        """What ``bundle-promotion`` needs to reach this stack's ledger and artifact store."""
        return {**self.environment, "AIRFLOW_HOME": str(self.control_home)}


def wait_until(
    condition: Callable[[], bool],
    what: str,
    stack: Stack | None = None,
    timeout: float = READY_SECONDS,
    every: float = POLL_SECONDS,
) -> None:
    """Poll ``condition`` every ``every`` seconds until it holds; fail naming what never happened,
    or the process that died."""
    deadline = time.monotonic() + timeout
    while not condition():
        if stack is not None:
            stack.check_processes()
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)


def compile_bytecode() -> None:
    """Compile the installed packages and the project to bytecode, as an image build does (pip's
    default, ``uv sync --compile-bytecode``); what is already compiled is skipped. Under
    PYTHONDONTWRITEBYTECODE nothing else would, and every task's process would compile each
    module it imports again: that alone doubled a task's CPU."""
    for folder in (sysconfig.get_path("purelib"), PROJECT / "plugins", PROJECT / "dags"):
        compileall.compile_dir(folder, quiet=1, workers=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_airflow(arguments: list[str], environment: dict[str, str], home: Path, log_file: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log:
        subprocess.run(
            [*AIRFLOW, *arguments],
            env={**environment, "AIRFLOW_HOME": str(home)},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )


def stop_groups(processes: Sequence[subprocess.Popen[bytes]], grace: float = 20.0) -> None:
    """SIGTERM every process's group at once, wait up to ``grace`` seconds for them, then SIGKILL
    what is left of each group (a Celery pool's children, say)."""
    running = [process for process in processes if process.poll() is None]
    for process in running:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:
        _signal_group(process, signal.SIGKILL)
    for process in running:
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal_number)


@contextmanager
def postgres(logs: Path, databases: Sequence[str]) -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free loopback port; yields ``user@host:port`` for its URLs.

    The cluster lives in a temp folder of its own (as root, owned by ``postgres``, whom initdb
    needs), removed on exit; the server's log is copied into ``logs``.
    """
    bin_dir = _postgres_bin()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="bundle-promotion-postgres-"))
    if as_postgres:
        shutil.chown(home, "postgres")
    cluster, server_log, port = home / "cluster", home / "server.log", free_port()

    def pg_ctl(*arguments: str) -> None:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(cluster), *arguments],
            check=True,
            capture_output=True,
        )

    try:
        subprocess.run(
            [
                *as_postgres,
                str(bin_dir / "initdb"),
                "-D",
                str(cluster),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        pg_ctl(
            "-l",
            str(server_log),
            "-w",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=300",
            "start",
        )
        import psycopg

        with psycopg.connect(
            f"postgresql://airflow@127.0.0.1:{port}/postgres", autocommit=True
        ) as connection:
            for name in databases:
                connection.execute(f'CREATE DATABASE "{name}"')
        yield f"airflow@127.0.0.1:{port}"
    finally:
        if (cluster / "postmaster.pid").exists():
            pg_ctl("-m", "fast", "-w", "stop")
        logs.mkdir(parents=True, exist_ok=True)
        if server_log.exists():
            shutil.copy(server_log, logs / "postgres.log")
        shutil.rmtree(home, ignore_errors=True)


def _postgres_bin() -> Path:
    found = _postgres_bin_or_none()
    if found is None:
        raise FileNotFoundError("PostgreSQL's initdb is neither on PATH nor in /usr/lib/postgresql/*/bin")
    return found


def _postgres_bin_or_none() -> Path | None:
    on_path = shutil.which("initdb")
    installed = [Path(on_path)] if on_path else sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return installed[-1].parent if installed else None


def missing_services() -> list[str]:
    """The system programs the stack needs that this machine lacks."""
    missing = [] if _postgres_bin_or_none() else ["PostgreSQL (initdb)"]
    needed = ["redis-server", "git", *(["runuser"] if os.geteuid() == 0 else [])]
    return missing + [program for program in needed if shutil.which(program) is None]


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    """``redis-server`` on a free loopback port, persisting nothing; yields ``host:port``."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (folder / "redis.log").open("wb") as log:
        server = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _redis_answers(port), "redis-server to answer PING", timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        stop_groups([server])


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def prepare_bundles(root: Path, bundles: Sequence[str], version: str = "v1.0.0") -> Path:
    """Per bundle name: a git repository of the example bundle under that name, tagged ``version``,
    and its promotion spec (the example's environments and connections); returns the specs folder."""
    specs = root / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    example = yaml.safe_load(EXAMPLE_SPEC.read_text())
    for bundle in bundles:
        repo = root / "repos" / bundle
        _bundle_repo(repo, bundle, version)
        spec = {**example, "bundle": bundle, "source": {"repo": str(repo), "path": "."}}
        (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return specs


def _bundle_repo(repo: Path, bundle: str, version: str) -> None:
    """The example bundle renamed ``bundle`` (its jobs are tagged with the name), committed and tagged."""
    from bundle_promotion.demo import GIT_IDENTITY

    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(EXAMPLE_BUNDLE, repo, ignore=shutil.ignore_patterns("dist", ".databricks"))
    config = repo / "databricks.yml"
    config.write_text(config.read_text().replace("name: example_etl", f"name: {bundle}", 1))
    git = {**os.environ, **GIT_IDENTITY}
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", f"The {bundle} bundle"],
        ["tag", "-a", version, "-m", f"Release {version}"],
    ):
        subprocess.run(["git", *command], cwd=repo, env=git, check=True, capture_output=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bundles", type=int, default=1, help="how many copies of the example bundle to promote"
    )
    parser.add_argument("--workers", type=int, default=2, help="how many Celery workers")
    parser.add_argument("--root", type=Path, help="where everything lives (default: a new temp folder)")
    arguments = parser.parse_args(argv)
    root = arguments.root or Path(tempfile.mkdtemp(prefix="bundle-promotion-stack-"))
    names = ["example"] if arguments.bundles == 1 else [f"fleet_{n:02d}" for n in range(arguments.bundles)]
    specs = prepare_bundles(root, names)
    with Stack(root, specs, workers=arguments.workers) as stack:
        print(f"Airflow on Celery: {stack.api_url}  (logs in {root / 'logs'})")
        for user, password in stack.passwords.items():
            print(f"  {user} ({USERS[user]}): {password}")
        print("Ctrl-C stops the stack.", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
