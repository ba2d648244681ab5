"""The release board's API under a long history: server time on SQLite and on PostgreSQL.

It writes 50 promotion specs of 4 environments each, fills a ledger with 10,000 deployments
spread over those 200 environments (each with its releases; a run waiting at every prod
gate with an approval given), then times ``GET /bundle-promotion/board`` in Airflow's own
API app, in-process, as a logged-in user: the time the server spends on a request, without
a network hop. Each request reads the specs, asks the auth manager per bundle, reads the
ledger (``Ledger.board``) and looks the linked runs up in Airflow's database. The budget is
300 ms, on either database.

PostgreSQL runs when its binaries are found (``initdb``, ``pg_ctl``): a throwaway cluster on a
free port, removed afterwards. As root, the cluster runs as the ``postgres`` user.

    uv run python bench/board.py [--bundles 50] [--environments 4] [--deployments 10000] [--requests 20]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

BUDGET_MS = 300.0
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
ENVIRONMENT_NAMES = ("dev", "test", "staging", "prod", "dr", "eu", "us", "apac")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", type=int, default=50)
    parser.add_argument("--environments", type=int, default=4, choices=range(1, len(ENVIRONMENT_NAMES) + 1))
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-board-"))
    try:
        specs = home / "promotions"
        environments = ENVIRONMENT_NAMES[: args.environments]
        write_specs(specs, args.bundles, environments)
        _configure_airflow(home, specs)
        results = []
        for name, url in databases(home):
            fill_ledger(url, args.bundles, environments, args.deployments)
            results.append((name, measure(url, args.requests)))
        print(
            f"board API, {args.bundles} bundles x {args.environments} environments, "
            f"{args.deployments} deployments, {args.requests} requests each"
        )
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for name, timings in results:
            wall = timings.wall
            pauses = ", ".join(f"{pause:.0f}" for pause in timings.full_collections) or "none"
            verdict = "within" if p95(wall) <= BUDGET_MS else "OVER"
            print(
                f"  {name:<10} median {statistics.median(wall):6.1f} ms  p95 {p95(wall):6.1f} ms  "
                f"max {max(wall):6.1f} ms  (p95 {verdict} the {BUDGET_MS:g} ms budget); "
                f"CPU median {statistics.median(timings.cpu):6.1f} ms; "
                f"full GC pauses {pauses} ms"
            )
        return 0 if all(p95(timings.wall) <= BUDGET_MS for _, timings in results) else 1
    finally:
        shutil.rmtree(home, ignore_errors=True)


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1]


def write_specs(folder: Path, bundles: int, environments: tuple[str, ...]) -> None:
    """Specs with an approval gate before the last environment; their sources are never read."""
    folder.mkdir()
    for index in range(bundles):
        spec = {
            "bundle": bundle_name(index),
            "source": {"repo": f"https://git.example.com/acme/{bundle_name(index)}.git"},
            "environments": [
                {
                    "name": name,
                    "target": name,
                    "databricks_conn_id": f"databricks_{name}",
                    "schedules": "unpaused" if name == environments[-1] else "paused",
                    **(
                        {
                            "gates": [
                                {
                                    "approval": {
                                        "groups": [{"name": "QC", "min": 2, "users": ["alice", "bob"]}]
                                    }
                                }
                            ]
                        }
                        if name == environments[-1]
                        else {}
                    ),
                }
                for name in environments
            ],
        }
        (folder / f"{bundle_name(index)}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def bundle_name(index: int) -> str:
    return f"bundle_{index:03d}"


def fill_ledger(url: str, bundles: int, environments: tuple[str, ...], deployments: int) -> None:
    """Releases, deployments (history, all applied), one waiting prod gate with one approval per bundle.

    Rows are inserted in bulk, as a long-lived ledger would hold them; the board only reads.
    """
    from sqlalchemy import insert

    from bundle_promotion.ledger import Ledger
    from bundle_promotion.ledger.models import ApprovalRow, DeploymentRow, GateEvaluationRow, ReleaseRow

    ledger = Ledger(url)
    ledger.migrate()
    per_environment = deployments // (bundles * len(environments))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with ledger._writes.begin() as session:
        releases, release_ids = [], {}
        for b in range(bundles):
            for v in range(per_environment + 1):
                release_ids[b, v] = len(releases) + 1
                releases.append(
                    {
                        "id": len(releases) + 1,
                        "bundle": bundle_name(b),
                        "version": f"v1.{v}.0",
                        "commit": f"{b:04x}{v:036x}",
                        "config_digest": "c" * 64,
                        "digest": f"{b:032x}{v:032x}",
                        "recorded_at": start + timedelta(hours=v),
                    }
                )
        session.execute(insert(ReleaseRow), releases)
        rows = [
            {
                "bundle": bundle_name(b),
                "environment": env,
                "release_id": release_ids[b, v],
                "run_id": f"scheduled__{v}",
                "target": env,
                "state": "succeeded",
                "started_at": start + timedelta(hours=v),
                "applied_at": start + timedelta(hours=v, minutes=5),
                "finished_at": start + timedelta(hours=v, minutes=10),
            }
            for b in range(bundles)
            for env in environments
            for v in range(per_environment)
        ]
        session.execute(insert(DeploymentRow), rows)
        waiting = [(b, release_ids[b, per_environment]) for b in range(bundles)]
        session.execute(
            insert(GateEvaluationRow),
            [
                {
                    "bundle": bundle_name(b),
                    "environment": environments[-1],
                    "release_id": release_id,
                    "run_id": "manual__waiting",
                    "triggered_by": "dag_test",
                    "commit_authors": "[]",
                    "evaluated_at": start + timedelta(days=400, seconds=poke),
                    "status": "waiting",
                    "results": json.dumps(
                        [
                            {
                                "gate": "approval",
                                "status": "waiting",
                                "reason": "1 of 2 QC approvals",
                                "recheck_after": 60,
                            }
                        ]
                    ),
                }
                for b, release_id in waiting
                for poke in range(10)  # a waiting gate is evaluated at every poke
            ],
        )
        session.execute(
            insert(ApprovalRow),
            [
                {
                    "bundle": bundle_name(b),
                    "environment": environments[-1],
                    "release_digest": f"{b:032x}{per_environment:032x}",
                    "approver": "alice",
                    "decision": "approve",
                    "reason": "checked",
                    "given_at": start + timedelta(days=400),
                    "groups": "[]",
                    "overrides_freeze": False,
                    "signature": "none",
                    "source": "airflow",
                }
                for b, _ in waiting
            ],
        )
    if url.startswith("postgresql"):  # what autovacuum does to a ledger that grew over time
        with ledger._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")


@dataclass(frozen=True)
class Timings:
    wall: list[float]  # milliseconds per request
    # This process's CPU time per request (PostgreSQL's own work not included): on a busy machine
    # the wall time waits for a core, and this says what the request itself cost.
    cpu: list[float]
    # Full (generation 2) garbage collections during the requests, in ms: a pause of the whole
    # API server's heap (Airflow's), which lands on whichever request is running.
    full_collections: list[float]


def measure(ledger_url: str, requests: int) -> Timings:
    """Milliseconds per request to the board, after one warm-up request."""
    from fastapi.testclient import TestClient

    os.environ["AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER"] = json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": ledger_url}}
    )
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    with TestClient(create_app()) as client:
        jwt = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bob", role="op"))
        headers = {"Authorization": f"Bearer {jwt}"}
        warm = client.get("/bundle-promotion/board", headers=headers)
        if warm.status_code != 200 or len(warm.json()["bundles"]) == 0:
            raise SystemExit(f"the board did not answer: {warm.status_code} {warm.text[:500]}")
        times, cpu = [], []
        with full_collections() as pauses:
            for _ in range(requests):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get("/bundle-promotion/board", headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
                response.raise_for_status()
        return Timings(times, cpu, pauses)


@contextmanager
def full_collections() -> Iterator[list[float]]:
    """The duration of every full garbage collection in the block, in ms."""
    pauses: list[float] = []
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


def databases(home: Path) -> Iterator[tuple[str, str]]:
    yield "SQLite", f"sqlite:///{home / 'ledger.db'}"
    if (POSTGRES_BIN / "initdb").exists():
        with postgres() as url:
            yield "PostgreSQL", url
    else:
        print(f"PostgreSQL skipped: no initdb in {POSTGRES_BIN}", file=sys.stderr)


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway cluster on a free loopback port, trusted local connections only."""
    data = Path(tempfile.mkdtemp(prefix="bench-board-postgres-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:  # PostgreSQL refuses to run as root
        shutil.chown(data, "postgres")
    port = _free_port()
    run = lambda *command: subprocess.run([*as_user, *command], check=True, capture_output=True)  # noqa: E731
    run(str(POSTGRES_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "bench")
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(data / "log"), "start")
    try:
        yield f"postgresql+psycopg://bench@127.0.0.1:{port}/postgres"
    finally:
        run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def _configure_airflow(home: Path, specs: Path) -> None:
    """A private Airflow home: SQLite metadata database, SimpleAuthManager, the specs folder."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-board-" + "x" * 64,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "bob:op",
            "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(specs),
        }
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
