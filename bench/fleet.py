"""A fleet of bundles promoted at once on Airflow's CeleryExecutor, against one after another.

Starts the stack of scripts/stack.py (PostgreSQL, Redis, the workspace emulator, the
api-server, scheduler, dag-processor, triggerer and two Celery workers) with N + 1 copies of
the example bundle, each its own git repository and bundle name, all through the same three
connections. It promotes one (``solo``) through prod alone and times it; empties the
workspaces; then promotes the N others at once. Prod's two approvals go through the API as
alice and bob, for every bundle, as soon as its gate waits.

It checks that every workspace ends with exactly N x (jobs per bundle) jobs, each tagged
with its own bundle, and prints the fleet's wall time against N x the single promotion; the
median task start-up: from the task's start (its ``start_date``, set as its process starts)
to the end of its pre-execute phase, read from each task log, with the DAG file parse the
worker logged; and the CPU seconds each component used, for the one promotion and per
promotion of the fleet. The workers preload what tasks share (``bundle_promotion.workers``);
``--no-preload`` runs them on Airflow's own Celery configuration, for the comparison. On a
shared 2-core machine the figures move with the other load.

    uv run python bench/fleet.py [--bundles 20] [--workers 2] [--concurrency 8] [--no-preload]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from scripts.stack import ENVIRONMENTS, Stack, prepare_bundles, wait_until  # noqa: E402

VERSION = "v1.0.0"
SOLO = "solo"
RUN_SECONDS = 3600.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundles", type=int, default=20, help="N, the bundles promoted at once")
    parser.add_argument("--workers", type=int, default=2, help="Celery workers")
    parser.add_argument("--concurrency", type=int, default=8, help="task slots per worker")
    parser.add_argument(
        "--no-preload",
        action="store_true",
        help="Airflow's own Celery configuration: each task's process loads the plugins and the package",
    )
    arguments = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    fleet = [f"fleet_{index:02d}" for index in range(arguments.bundles)]
    specs = prepare_bundles(root, [SOLO, *fleet], VERSION)
    print(f"starting the stack in {root} …", flush=True)
    with Stack(
        root,
        specs,
        workers=arguments.workers,
        worker_concurrency=arguments.concurrency,
        preload_workers=not arguments.no_preload,
    ) as stack:
        with CpuMeter(stack) as solo_cpu:
            single, solo_runs = promote(stack, [SOLO])
        print(f"one promotion through prod: {single:.1f} s", flush=True)
        stack.emulator.reset()  # the fleet's workspaces hold only the fleet's jobs
        with CpuMeter(stack) as fleet_cpu:
            wall, runs = promote(stack, fleet)
        jobs_per_bundle = check_workspaces(stack, fleet)
        startups, parses = task_startups(stack, {**solo_runs, **runs})
    serial = single * len(fleet)
    preloaded = "without" if arguments.no_preload else "with"
    print(
        f"\n{len(fleet)} bundles at once on {arguments.workers} workers x {arguments.concurrency} slots,"
        f" {preloaded} bundle_promotion.workers preloading"
    )
    print(f"  every workspace holds {len(fleet)} x {jobs_per_bundle} jobs, each tagged with its own bundle")
    print(
        f"  wall time {wall:.1f} s against {len(fleet)} x {single:.1f} s = {serial:.1f} s one after another"
    )
    print(f"  throughput {serial / wall:.2f}x serial (goal 4x)")
    print(
        f"  task start-up (start → execute), median of {len(startups)}: {statistics.median(startups):.2f} s; "
        f"DAG file parse median {statistics.median(parses):.0f} ms"
    )
    print("\nCPU seconds by component: one promotion | the fleet, per promotion")
    for component, seconds in fleet_cpu.seconds.most_common():
        print(f"  {component:<14} {solo_cpu.seconds[component]:7.1f} | {seconds / len(fleet):7.1f}")
    return 0


def promote(stack: Stack, bundles: list[str]) -> tuple[float, dict[str, str]]:
    """Trigger every bundle's promotion at once; the wall time until all finished, and the runs.

    The bench looks at the runs once a second, all in one call, and approves only the bundles
    it promotes, so that its own requests stay a small part of the API server's load."""
    for bundle in bundles:
        stack.wait_for_dag(f"promote__{bundle}")
    with Approvals(stack, bundles):
        started = time.monotonic()
        runs = {bundle: stack.trigger(f"promote__{bundle}", {"version": VERSION}) for bundle in bundles}
        states: dict[str, str] = {}

        def all_finished() -> bool:
            states.update(stack.run_states([f"promote__{bundle}" for bundle in bundles]))
            return all(states.get(f"promote__{bundle}") in ("success", "failed") for bundle in bundles)

        wait_until(all_finished, f"{len(bundles)} promotions", stack, timeout=RUN_SECONDS, every=1.0)
        wall = time.monotonic() - started
    failed = sorted(bundle for bundle in bundles if states[f"promote__{bundle}"] != "success")
    if failed:
        raise SystemExit(f"promotions failed: {', '.join(failed)}; see the task logs under {stack.root}")
    return wall, runs


class Approvals(threading.Thread):
    """alice and bob approve prod for each bundle once its gate waits, through the approvals API;
    a context manager that runs while its bundles are promoted."""

    def __init__(self, stack: Stack, bundles: list[str]) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.waiting = set(bundles)
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def __enter__(self) -> Approvals:
        self.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.stopped.set()
        self.join(timeout=30)
        if self.error is not None:
            raise RuntimeError("the approvers failed") from self.error

    def run(self) -> None:
        from bundle_promotion.web.client import ApprovalsClient

        try:
            alice, bob = (
                ApprovalsClient(self.stack.api_url, self.stack.token(user)) for user in ("alice", "bob")
            )
            while self.waiting and not self.stopped.wait(2.0):
                for bundle in sorted(self.waiting):
                    prod = [
                        pending for pending in alice.pending_gates(bundle) if pending["environment"] == "prod"
                    ]
                    if prod:
                        decision = {"release_digest": prod[0]["release_digest"], "reason": "fleet benchmark"}
                        alice.submit(bundle, "prod", decision)
                        bob.submit(bundle, "prod", decision)
                        self.waiting.discard(bundle)
        except BaseException as error:
            self.error = error
            raise


class CpuMeter:
    """CPU seconds each component of the stack used while the block ran, from /proc: an Airflow
    component's whole process group (a worker's task processes included, once reaped), the
    PostgreSQL and Redis servers, and the machine as a whole."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seconds: Counter[str] = Counter()

    def __enter__(self) -> CpuMeter:
        self.seconds = Counter({name: -used for name, used in self._read().items()})
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.seconds.update(self._read())

    def _read(self) -> Counter[str]:
        groups = {group: name for name, group in self.stack.process_groups().items()}
        used: Counter[str] = Counter()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # the process ended
            command = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            group = int(fields[2])
            name = groups.get(group) or next(
                (server for server in ("postgres", "redis") if command.startswith(server)), None
            )
            if name:  # user, system, and reaped children's user and system time
                used[name] += sum(int(ticks) for ticks in fields[11:15]) / self.TICKS
        with Path("/proc/stat").open() as machine:
            ticks = [int(value) for value in machine.readline().split()[1:]]
        used["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / self.TICKS  # all but idle and iowait
        return used


def check_workspaces(stack: Stack, fleet: list[str]) -> int:
    """Every workspace holds exactly the same jobs for each bundle, each tagged with it; returns
    how many jobs a bundle has."""
    from bundle_promotion.spec import load_spec

    outline = load_spec(stack.specs_folder / f"{fleet[0]}.yaml").bundle_outline()
    assert outline is not None, "the fleet's bundles are local git repositories"
    jobs_per_bundle = len(outline.job_keys)
    expected = Counter(dict.fromkeys(fleet, jobs_per_bundle))
    for environment in ENVIRONMENTS:
        tags = Counter(job["settings"].get("tags", {}).get("bundle") for job in list_jobs(stack, environment))
        assert tags == expected, f"{environment} holds {dict(tags)}, not {jobs_per_bundle} jobs per bundle"
    return jobs_per_bundle


def list_jobs(stack: Stack, environment: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 100}
    while True:
        response = requests.get(
            f"{stack.emulator.base_url(environment)}/api/2.2/jobs/list",
            params=query,
            headers={"Authorization": f"Bearer {stack.emulator.token(environment)}"},
            timeout=30,
        )
        response.raise_for_status()
        page = response.json()
        jobs += page.get("jobs", [])
        if not page.get("next_page_token"):
            return jobs
        query["page_token"] = page["next_page_token"]


def task_startups(stack: Stack, runs: dict[str, str]) -> tuple[list[float], list[float]]:
    """Per task that ran: seconds from its start to the end of its pre-execute phase, and the
    DAG file parse (ms) the worker logged."""
    startups, parses = [], []
    for bundle, run_id in runs.items():
        dag_id = f"promote__{bundle}"
        for task in stack.task_instances(dag_id, run_id):
            if task["state"] != "success" or not task["start_date"]:
                continue
            records = first_attempt_log(stack, dag_id, run_id, task["task_id"])
            executing = next((r for r in records if r.get("event") == "::endgroup::"), None)
            parsed = next((r for r in records if r.get("event") == "Worker startup parse complete"), None)
            if executing is None or parsed is None:
                continue
            startups.append(timestamp(executing["timestamp"]) - timestamp(task["start_date"]))
            parses.append(float(parsed["dag_file_parse_ms"]))
    return startups, parses


def first_attempt_log(stack: Stack, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    for worker in range(1, stack.workers + 1):
        log = (
            stack.worker_home(worker)
            / "logs"
            / f"dag_id={dag_id}"
            / f"run_id={run_id}"
            / f"task_id={task_id}"
        ) / "attempt=1.log"
        if log.exists():
            return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return []


def timestamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    sys.exit(main())
