"""The example promoted through prod on Airflow's CeleryExecutor, as real processes: PostgreSQL
(Airflow's database and the ledger's own), Redis, the api-server, scheduler, dag-processor,
triggerer and two Celery workers that share no home, working directory or temp dir."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bundle_promotion.spec.dag_ids import promotion_dag_id
from bundle_promotion.web.client import ApprovalsClient
from scripts.stack import Stack, missing_services, prepare_bundles, wait_until

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        bool(missing_services()), reason=f"needs {', '.join(missing_services())} (.ci/run installs them)"
    ),
]

BUNDLE = "example"
VERSION = "v1.0.0"
RUN_SECONDS = 480


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    with Stack(root, prepare_bundles(root, [BUNDLE], VERSION), workers=2) as running:
        yield running


def test_the_example_reaches_prod_on_two_celery_workers_with_two_approvals(stack: Stack) -> None:
    dag_id = promotion_dag_id(BUNDLE)
    stack.wait_for_dag(dag_id)
    run_id = stack.trigger(dag_id, {"version": VERSION})
    approvers = [ApprovalsClient(stack.api_url, stack.token(user)) for user in ("alice", "bob")]
    digest = _wait_for_prod_gate(stack, approvers[0])
    for approver in approvers:
        approver.submit(BUNDLE, "prod", {"release_digest": digest, "reason": f"{VERSION} passed staging"})

    wait_until(
        lambda: stack.run_state(dag_id, run_id) in ("success", "failed"),
        f"{dag_id} to finish",
        stack,
        timeout=RUN_SECONDS,
    )
    states = {task["task_id"]: task["state"] for task in stack.task_instances(dag_id, run_id)}
    assert stack.run_state(dag_id, run_id) == "success", states
    assert states["prod.record"] == "success"

    ran_on = [stack.tasks_run_by(worker, dag_id, run_id) for worker in (1, 2)]
    assert all(ran_on), f"every task ran on one worker: {ran_on}"
    assert set().union(*ran_on) >= {"release", "dev.deploy", "staging.deploy", "prod.deploy", "prod.record"}
    told = Counter(body["key"] for body in stack.webhooks.payloads())
    assert [key for key, times in told.items() if times > 1] == [], "an event was told twice"
    events = sorted((body["event"], body["environment"]) for body in stack.webhooks.payloads())
    assert events == [
        ("approved", "prod"),  # alice's and bob's, told by the api-server
        ("approved", "prod"),
        ("gate_waiting", "prod"),
        ("promoted_to_production", "prod"),
    ]
    for worker in (1, 2):  # each loaded the plugins and the package once, before forking its tasks
        assert "Preloaded" in (stack.root / "logs" / f"worker-{worker}.log").read_text()

    audit = subprocess.run(
        [Path(sys.executable).with_name("bundle-promotion"), "audit", "verify"],
        env=stack.cli_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert audit.returncode == 0, audit.stderr


def _wait_for_prod_gate(stack: Stack, client: ApprovalsClient) -> str:
    """The release digest prod's approval gate waits on, once it waits."""
    waiting: list[str] = []

    def prod_waits() -> bool:
        waiting[:] = [
            str(pending["release_digest"])
            for pending in client.pending_gates(BUNDLE)
            if (pending["environment"], pending["version"]) == ("prod", VERSION)
        ]
        return bool(waiting)

    wait_until(prod_waits, "prod's approval gate to wait", stack, timeout=RUN_SECONDS)
    return waiting[0]
