"""End to end: prod's gate holds a dag.test() promotion until approvals arrive through the API.

The approvals API runs in a real ``airflow api-server`` on loopback, on the session
database; approvers log in and post to it from another thread, as the users of their
tokens. (The API server runs as its own process, as in production: in this process its
connection lookups would go through dag.test()'s in-process task supervisor.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bundle_promotion.errors import ApprovalRefused
from bundle_promotion.web.client import ApprovalsClient, login
from tests.conftest import PROJECT

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db")]

WAIT_FOR_GATE_SECONDS = 120
SERVICES_READY_SECONDS = 240
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "dag_test": "dag-test-pw", "root": "root-pw"}
AIRFLOW_CLI = str(Path(sys.executable).parent / "airflow")


def write_gated_spec(specs: Path, repo: Path, bundle: str) -> None:
    """dev, then prod behind its gates: the release passed dev, and two of QC approve."""
    qc = {"name": "QC", "min": 2, "users": ["alice", "bob", "dag_test"]}
    spec = {
        "bundle": bundle,
        "source": {"repo": str(repo), "path": "."},
        "environments": [
            {"name": "dev", "target": "dev", "databricks_conn_id": "databricks_dev", "schedules": "paused"},
            {
                "name": "prod",
                "target": "prod",
                "databricks_conn_id": "databricks_prod",
                "schedules": "unpaused",
                "gates": ["previous_environment", "release_tag", {"approval": {"groups": [qc]}}],
            },
        ],
    }
    (specs / f"{bundle}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class AirflowApi:
    url: str
    specs: Path  # the specs folder both the API server and this process's DAG file read
    logs: Path

    def client(self, username: str) -> ApprovalsClient:
        return ApprovalsClient(self.url, login(self.url, username, PASSWORDS[username]))


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """An Airflow service in its own process group, so stopping it stops its workers too."""
    with log.open("w") as output:
        return subprocess.Popen(
            [AIRFLOW_CLI, *command],
            env=os.environ,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(service: subprocess.Popen[bytes]) -> None:
    os.killpg(service.pid, signal.SIGTERM)
    try:
        service.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(service.pid, signal.SIGKILL)


@contextmanager
def api_server(folder: Path, users: str, passwords: dict[str, str], **settings: str) -> Iterator[str]:
    """``airflow api-server`` with the plugin, on a free port, reading specs from ``folder/promotions``.

    ``users`` is the SimpleAuthManager's ``name:role,...``; ``settings`` are more environment
    variables (``AIRFLOW__...``). Yields the server's URL once it answers; stops it after.
    """
    (folder / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": users,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(folder / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": f"{folder.name}-secret-" + "x" * 48,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(folder / "promotions"),
            "AIRFLOW__BUNDLE_PROMOTION__GATE_POLLING_PERIOD_SECONDS": "1",
            **settings,
        }.items():
            patch.setenv(name, value)
        service = start(["api-server", "--port", str(port)], folder / "api-server.log")
        try:
            wait_for(lambda: healthy(port), f"the API server answers (log in {folder})")
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(service)


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowApi]:
    """``airflow api-server`` with the plugin's approvals API, for this module's tests."""
    folder = tmp_path_factory.mktemp("gates_e2e")
    specs = folder / "promotions"
    specs.mkdir()
    with api_server(folder, "alice:op,bob:op,dag_test:op,root:admin", PASSWORDS) as url:
        yield AirflowApi(url, specs, folder)


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).ok
    except requests.ConnectionError:
        return False


def wait_for(condition: Callable[[], bool], what: str, seconds: float = SERVICES_READY_SECONDS) -> float:
    """Poll ``condition`` until it holds; returns when (monotonic), fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting until {what}")


def promote_while(specs: Path, dag_id: str, respond: Callable[[], None]) -> tuple[Any, list[BaseException]]:
    """Run the DAG in this thread while ``respond`` acts from another; returns the run and its errors."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=str(PROJECT / "dags" / "promotions.py"))
    assert dagbag.import_errors == {}
    errors: list[BaseException] = []

    def responder() -> None:
        try:
            respond()
        except BaseException as error:  # surfaced by the test, not lost in the thread
            errors.append(error)

    thread = threading.Thread(target=responder, daemon=True)
    thread.start()
    dag_run = dagbag.get_dag(dag_id).test(run_conf={"version": "v1.0.0"})
    thread.join(timeout=WAIT_FOR_GATE_SECONDS)
    return dag_run, errors


def wait_until_waiting(client: ApprovalsClient, bundle: str) -> str:
    """The digest waiting at prod, once its gate reports waiting."""
    found: list[str] = []

    def prod_waits() -> bool:
        found.extend(p["release_digest"] for p in client.pending_gates(bundle) if p["environment"] == "prod")
        return bool(found)

    wait_for(prod_waits, f"prod of {bundle} reports a waiting gate", WAIT_FOR_GATE_SECONDS)
    return found[0]


def task_states(dag_run: Any) -> dict[str, str]:
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.get(DagRun, dag_run.id)
        return {ti.task_id: str(ti.state) for ti in run.get_task_instances(session=session)}


def gate_reasons(bundle: str) -> list[str]:
    from bundle_promotion.hooks.ledger import LedgerHook

    return [
        result.reason
        for evaluation in LedgerHook().get_conn().latest_gate_evaluations(bundle)
        for result in evaluation.results
        if result.gate == "approval"
    ]


def jobs_in(workspaces: Any, environment: str) -> list[str]:
    response = requests.get(
        f"{workspaces.base_url(environment)}/api/2.2/jobs/list",
        headers={"Authorization": f"Bearer {workspaces.token(environment)}"},
        timeout=10,
    )
    response.raise_for_status()
    return sorted(job["settings"]["name"] for job in response.json().get("jobs", []))


def test_prod_waits_at_its_gate_until_two_people_approve(
    workspaces: Any,
    bundle_repo: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    airflow_api: AirflowApi,
) -> None:
    from bundle_promotion import cli

    write_gated_spec(airflow_api.specs, bundle_repo(), "gated")
    refusals: list[str] = []
    monkeypatch.setenv("BUNDLE_PROMOTION_TOKEN", airflow_api.client("bob").token)

    def approve() -> None:
        alice = airflow_api.client("alice")
        digest = wait_until_waiting(alice, "gated")
        try:
            airflow_api.client("dag_test").submit(
                "gated", "prod", {"release_digest": digest, "reason": "mine"}
            )
        except ApprovalRefused as refused:
            refusals.append(str(refused))
        alice.submit("gated", "prod", {"release_digest": digest, "reason": "dev run looks right"})
        assert jobs_in(workspaces, "prod") == [], "prod was deployed before the quorum"
        bob = [
            "approve",
            "gated",
            "prod",
            "--version",
            "v1.0.0",
            "--reason",
            "checked",
            "--api-url",
            airflow_api.url,
        ]
        assert cli.main(bob) == 0

    dag_run, errors = promote_while(airflow_api.specs, "promote__gated", approve)

    assert errors == []
    assert dag_run.state == "success", task_states(dag_run)
    assert refusals == ["dag_test cannot approve: triggered this run (segregation of duties)"]
    assert gate_reasons("gated") == ["2 of 2 QC approvals (have: alice, bob)"]
    assert jobs_in(workspaces, "prod") != []


def test_a_rejection_stops_the_promotion_at_the_gate(
    workspaces: Any, bundle_repo: Callable[..., Path], airflow_api: AirflowApi
) -> None:
    write_gated_spec(airflow_api.specs, bundle_repo(), "gated_rejected")

    def reject() -> None:
        bob = airflow_api.client("bob")
        digest = wait_until_waiting(bob, "gated_rejected")
        rejection = {"release_digest": digest, "decision": "reject", "reason": "schema change not announced"}
        bob.submit("gated_rejected", "prod", rejection)

    dag_run, errors = promote_while(airflow_api.specs, "promote__gated_rejected", reject)

    states = task_states(dag_run)
    assert errors == []
    assert dag_run.state == "failed"
    assert (states["dev.record"], states["prod.gates"], states["prod.deploy"]) == (
        "success",
        "failed",
        "upstream_failed",
    )
    assert gate_reasons("gated_rejected") == ["rejected by bob: schema change not announced"]
    assert jobs_in(workspaces, "prod") == []


SLOT_DAGS = """
from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

from bundle_promotion.sensors.gate import GateSensor

# The session database is SQLite, shared here by four processes: a task whose first call to the
# execution API times out under that contention is tried again, which its idempotency allows.
RETRIES = {{"retries": 2, "retry_delay": timedelta(seconds=1)}}

with DAG("slot_gate", schedule=None, default_args=RETRIES):

    @task(task_id="release")
    def release() -> int:
        return {release_id}

    release() >> GateSensor(
        task_id="gates",
        bundle="slots",
        environment="prod",
        previous_environment=None,
        repo={repo!r},
        gates=[{{"approval": {{"groups": [{{"name": "QC", "users": ["alice"]}}]}}}}],
        pool="one_slot",
        polling_period_seconds=1,
        deferrable=True,
    )

with DAG("slot_probe", schedule=None, default_args=RETRIES):
    EmptyOperator(task_id="probe", pool="one_slot")
"""


@pytest.fixture
def scheduler_and_triggerer(
    tmp_path: Path, bundle_repo: Callable[..., Path], airflow_api: AirflowApi, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    """A scheduler and a triggerer on the session database, over a DAG folder of two DAGs.

    ``slot_gate`` holds a gate in the one-slot pool ``one_slot``; ``slot_probe`` needs that slot.
    Yields ``airflow(*args)``, the Airflow CLI in the same environment; logs stay in ``tmp_path``.
    """
    from bundle_promotion.hooks.ledger import LedgerHook
    from tests.conftest import git
    from tests.gates.gate_support import make_release

    repo = bundle_repo()
    release = replace(make_release(), bundle="slots", commit=git(repo, "rev-parse", "v1.0.0^{commit}"))
    release_id = LedgerHook().get_conn().record_release(release)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "slot_dags.py").write_text(SLOT_DAGS.format(release_id=release_id, repo=str(repo)))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))

    def airflow(*args: str) -> str:
        return subprocess.run([AIRFLOW_CLI, *args], check=True, capture_output=True, text=True).stdout

    airflow("pools", "set", "one_slot", "1", "one worker slot")
    airflow("dags", "reserialize")
    airflow("dags", "unpause", "slot_gate")
    airflow("dags", "unpause", "slot_probe")
    services = [start([name], tmp_path / f"{name}.log") for name in ("scheduler", "triggerer")]
    try:
        yield airflow
    finally:
        for service in services:
            stop(service)


def ti_states(dag_id: str) -> dict[str, str]:
    """The task states of the DAG's latest run."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).limit(1)
        )
        if run is None:
            return {}
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        )
        return {ti.task_id: str(ti.state) for ti in tis}


def test_an_administrator_lifts_a_signature_lockout_through_the_api_server(airflow_api: AirflowApi) -> None:
    from bundle_promotion.hooks.ledger import LedgerHook

    ledger = LedgerHook().get_conn()
    ledger.record_event(actor="alice", action="signature.locked_out", subject="alice", reason="3 failures")

    with pytest.raises(ApprovalRefused, match="bob may not lift signature lockouts: only the Admin role may"):
        airflow_api.client("bob").lift_signature_lockout("alice", "I vouch for her")
    assert ledger.signature_locked_out("alice")

    assert airflow_api.client("root").lift_signature_lockout("alice", "identity checked in person")
    assert not ledger.signature_locked_out("alice")
    lifted = ledger.audit_events()[-1]
    assert (lifted.action, lifted.actor, lifted.reason) == (
        "signature.lockout_lifted",
        "root",
        "identity checked in person",
    )


def test_a_waiting_gate_holds_no_worker_slot(scheduler_and_triggerer: Callable[..., str]) -> None:
    """With a real scheduler and triggerer, a task needing the gate's one-slot pool runs while it waits."""
    from datetime import UTC, datetime

    from bundle_promotion.hooks.ledger import LedgerHook
    from bundle_promotion.ledger.records import Approval

    scheduler_and_triggerer("dags", "trigger", "slot_gate")
    wait_for(lambda: ti_states("slot_gate").get("gates") == "deferred", "the gate defers")

    scheduler_and_triggerer("dags", "trigger", "slot_probe")
    wait_for(lambda: ti_states("slot_probe").get("probe") == "success", "the probe runs in the gate's pool")
    assert ti_states("slot_gate")["gates"] == "deferred"

    ledger = LedgerHook().get_conn()
    [waiting] = ledger.latest_gate_evaluations("slots")
    assert [result.reason for result in waiting.results] == ["0 of 1 QC approvals"]
    approved = time.monotonic()
    ledger.record_approval(
        Approval(
            bundle="slots",
            environment="prod",
            release_digest=waiting.release_digest,
            approver="alice",
            decision="approve",
            reason="probe done",
            given_at=datetime.now(UTC),
        )
    )
    passed = wait_for(lambda: ti_states("slot_gate").get("gates") == "success", "the gate passes")
    print(f"approval to gate success: {passed - approved:.1f} s")
