"""The embedded default, end to end: promote the example bundle dev → staging → prod.

Airflow runs on SQLite under ``.demo/airflow``, the workspaces are the emulator on
loopback, and the bundle's repository is a local git repository made from
``include/example_bundle``. No account and no network are needed.

Prod waits at its approval gate. ``airflow api-server`` (with the approvals API) runs on
loopback; the run's own user (``dag_test``) tries to approve and is refused, then alice
and bob log in and approve through the API, each with their own token.

The example spec sends every notification to the ``demo_webhook`` connection: a webhook
sink on loopback, whose messages the demo prints at the end.
"""

from __future__ import annotations

import _thread
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("dev", "staging", "prod")
BUNDLE = "example"
# dag.test() runs as the user dag_test; giving it an account shows segregation of duties refusing it.
DEMO_USERS = "alice:op,bob:op,dag_test:op"
APPROVERS = ("alice", "bob")
GATE_WAIT_SECONDS = 600
API_READY_SECONDS = 120
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Release Bot",
    "GIT_AUTHOR_EMAIL": "release-bot@example.com",
    "GIT_COMMITTER_NAME": "Release Bot",
    "GIT_COMMITTER_EMAIL": "release-bot@example.com",
    # Fixed dates make the commit, and so the release, the same on every run of the demo.
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
# Airflow through this interpreter, so the demo works from a venv that is not activated.
AIRFLOW = (sys.executable, "-m", "airflow")


def run_demo(project: Path, version: str = "v1.0.0") -> int:
    """Promote ``version`` of the example bundle and print where it runs; returns the exit code."""
    demo_home = project / ".demo"
    _configure_airflow(project, demo_home / "airflow")
    _make_bundle_repo(project / "include" / "example_bundle", demo_home / "example_bundle", version)
    _migrate_airflow_db()

    from bundle_promotion.testing.workspace import WorkspaceEmulator

    _forget_earlier_runs(demo_home / "airflow")
    passwords = _demo_passwords(demo_home / "airflow")
    finished = threading.Event()
    with (
        _notification_sink() as sink,  # first: the API server sends the approvals' notifications
        WorkspaceEmulator(list(ENVIRONMENTS)) as emulator,
        _api_server(demo_home / "airflow") as api_url,
    ):
        for name in ENVIRONMENTS:
            os.environ[f"AIRFLOW_CONN_DATABRICKS_{name.upper()}"] = emulator.airflow_connection_uri(name)
        dag = _load_dag(project)
        approvers = threading.Thread(
            target=_approve_prod_or_stop, args=(api_url, passwords, version, finished), daemon=True
        )
        approvers.start()
        print(f"Promoting {version} of the example bundle through {' → '.join(ENVIRONMENTS)}…", flush=True)
        dag_run = dag.test(run_conf={"version": version})
        finished.set()
        approvers.join(timeout=10)
        print(render_table(_environment_rows(emulator)))
        print(render_notifications(sink.payloads()))
    print(f"\n{dag.dag_id} {version}: {dag_run.state}")
    return 0 if dag_run.state == "success" else 1


@contextmanager
def _notification_sink() -> Iterator[Any]:
    """The webhook behind the example spec's ``demo_webhook`` connection, here and in child processes."""
    from bundle_promotion.testing.webhook_sink import WebhookSink

    with WebhookSink() as sink:
        os.environ["AIRFLOW_CONN_DEMO_WEBHOOK"] = sink.airflow_connection_json()
        yield sink


def _forget_earlier_runs(airflow_home: Path) -> None:
    """A fresh ledger, like the fresh workspaces: approvals from an earlier run of the same
    release (the demo's release is reproducible) would let prod through without waiting."""
    for file in airflow_home.glob("bundle_promotion_ledger.db*"):
        file.unlink()


def _demo_passwords(airflow_home: Path) -> dict[str, str]:
    """Fresh passwords for the demo's users, in the file the SimpleAuthManager reads."""
    passwords = {user.split(":")[0]: secrets.token_urlsafe(12) for user in DEMO_USERS.split(",")}
    password_file = airflow_home / "demo_passwords.json"
    password_file.write_text(json.dumps(passwords))
    password_file.chmod(0o600)
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(password_file)
    return passwords


@contextmanager
def _api_server(airflow_home: Path) -> Iterator[str]:
    """``airflow api-server`` on a free loopback port, as its own process group; its log in AIRFLOW_HOME."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    with (airflow_home / "api-server.log").open("w") as log:
        server = subprocess.Popen(
            [*AIRFLOW, "api-server", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + API_READY_SECONDS
        while not _answers(f"{url}/api/v2/monitor/health"):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"airflow api-server did not start; see {airflow_home / 'api-server.log'}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    import requests

    try:
        return bool(requests.get(url, timeout=5).ok)
    except requests.ConnectionError:
        return False


def _approve_prod_or_stop(
    api_url: str, passwords: dict[str, str], version: str, finished: threading.Event
) -> None:
    """Approve prod; if that fails, stop the demo rather than leave prod waiting for days."""
    try:
        _approve_prod(api_url, passwords, version, finished)
    except Exception as error:
        if not finished.is_set():
            print(f"the demo's approvers failed: {error}", flush=True)
            _thread.interrupt_main()


def _approve_prod(api_url: str, passwords: dict[str, str], version: str, finished: threading.Event) -> None:
    """Answer prod's approval gate through the API, the way three people would."""
    from bundle_promotion.errors import ApprovalRefused
    from bundle_promotion.web.client import ApprovalsClient, login

    clients = {user: ApprovalsClient(api_url, login(api_url, user, passwords[user])) for user in passwords}
    digest = _wait_for_prod_gate(clients["alice"], version, finished)
    if digest is None:
        return  # the run ended before prod: nothing to approve
    decision = {"release_digest": digest, "reason": f"{version} passed staging"}
    try:
        clients["dag_test"].submit("example", "prod", decision)
    except ApprovalRefused as refused:
        print(f"  dag_test (who triggered the run) tries to approve: refused, {refused}", flush=True)
    for user in APPROVERS:
        clients[user].submit("example", "prod", decision)
        print(f"  {user} approves {digest[:12]} through the approvals API", flush=True)


def _wait_for_prod_gate(client: Any, version: str, finished: threading.Event) -> str | None:
    deadline = time.monotonic() + GATE_WAIT_SECONDS
    while not finished.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError(f"prod never waited for approval within {GATE_WAIT_SECONDS} s")
        for pending in client.pending_gates("example"):
            if (pending["environment"], pending["version"]) == ("prod", version):
                waiting = [gate["reason"] for gate in pending["gates"] if gate["status"] == "waiting"]
                reasons = "; ".join(waiting)
                print(f"  prod waits: {reasons}", flush=True)
                return str(pending["release_digest"])
        finished.wait(0.5)
    return None


def _configure_airflow(project: Path, airflow_home: Path) -> None:
    """Set before Airflow is first imported: it reads its configuration once, at import."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            # Task logs go to files under AIRFLOW_HOME/logs; the terminal shows warnings and the result.
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            # Deprecations inside Airflow and its providers are theirs to fix, and dag.test() warns of
            # "unrunnable" tasks while trigger rules are still skipping them: only noise here.
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "py.warnings=ERROR airflow.sdk.definitions.dag=ERROR",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": DEMO_USERS,
            # Shared by the API server and this process, which runs the tasks in dag.test().
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
            "AIRFLOW__BUNDLE_PROMOTION__GATE_POLLING_PERIOD_SECONDS": "1",
        }
    )


def _make_bundle_repo(source: Path, repo: Path, version: str) -> None:
    """A git repository holding the example bundle, tagged ``version``, made afresh on every run."""
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(source, repo, ignore=shutil.ignore_patterns("dist", ".databricks"))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Example bundle")
    _git(repo, "tag", "-a", version, "-m", f"Release {version}")


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def _migrate_airflow_db() -> None:
    print("Migrating the Airflow database (SQLite)…", flush=True)
    subprocess.run([*AIRFLOW, "db", "migrate"], check=True, capture_output=True)


def _load_dag(project: Path) -> Any:
    """Parse the real DAG file, as the DAG processor would, and stop on any import error."""
    from airflow.dag_processing.dagbag import DagBag

    from bundle_promotion.spec.dag_ids import promotion_dag_id

    dagbag = DagBag(dag_folder=str(project / "dags" / "promotions.py"))
    if dagbag.import_errors:
        raise SystemExit("\n".join(f"{file}: {error}" for file, error in dagbag.import_errors.items()))
    return dagbag.get_dag(promotion_dag_id(BUNDLE))


def _environment_rows(emulator: Any) -> list[dict[str, str]]:
    from bundle_promotion.hooks.ledger import LedgerHook

    ledger = LedgerHook().get_conn()
    rows = []
    for name in ENVIRONMENTS:
        current = ledger.current_release("example", name)
        jobs = _jobs(emulator, name)
        rows.append(
            {
                "environment": name,
                "release": f"{current[0].version} ({current[0].commit[:8]})" if current else "—",
                "jobs deployed": "\n".join(sorted(job["settings"]["name"] for job in jobs)),
                "schedules": "\n".join(_schedule_states(jobs)) or "—",
                "tests": "\n".join(_test_results(emulator, name, jobs)) or "—",
            }
        )
    return rows


def _get(emulator: Any, environment: str, path: str, **params: Any) -> dict[str, Any]:
    import requests

    response = requests.get(
        f"{emulator.base_url(environment)}/api/{path}",
        params=params,
        headers={"Authorization": f"Bearer {emulator.token(environment)}"},
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def _jobs(emulator: Any, environment: str) -> list[dict[str, Any]]:
    listing = _get(emulator, environment, "2.2/jobs/list", limit=100)
    return [
        _get(emulator, environment, "2.2/jobs/get", job_id=job["job_id"]) for job in listing.get("jobs", [])
    ]


def _schedule_states(jobs: list[dict[str, Any]]) -> list[str]:
    return [
        f"{job['settings']['name']}: {job['settings']['schedule'].get('pause_status', 'UNPAUSED')}"
        for job in jobs
        if "schedule" in job["settings"]
    ]


def _test_results(emulator: Any, environment: str, jobs: list[dict[str, Any]]) -> list[str]:
    results = []
    for job in jobs:
        runs = _get(emulator, environment, "2.2/jobs/runs/list", job_id=job["job_id"]).get("runs", [])
        if runs:
            state = runs[0]["state"]
            results.append(
                f"{job['settings']['name']}: {state.get('result_state', state['life_cycle_state'])}"
            )
    return results


def render_notifications(payloads: list[dict[str, Any]]) -> str:
    """What the demo's webhook received, one line each, without the board links."""
    lines = [f"  - {payload['text'].splitlines()[0]}" for payload in payloads]
    return "\nNotifications sent (to the demo_webhook connection):\n" + ("\n".join(lines) or "  none")


def render_table(rows: list[dict[str, str]]) -> str:
    """A plain-text table whose cells may span several lines."""
    headers = list(rows[0])
    cells = [[cell.splitlines() or [""] for cell in row.values()] for row in rows]
    widths = [
        max(len(header), *(len(line) for row in cells for line in row[i])) for i, header in enumerate(headers)
    ]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    lines = [rule, _table_line(headers, widths), rule]
    for row in cells:
        for depth in range(max(len(cell) for cell in row)):
            lines.append(_table_line([cell[depth] if depth < len(cell) else "" for cell in row], widths))
        lines.append(rule)
    return "\n".join(lines)


def _table_line(values: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)) + " |"
