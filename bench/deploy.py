"""Deploy cost of the native engine against the workspace emulator, with 20 ms added to every request.

For bundles of 10, 100 and 500 jobs it measures three deploys in a row:

- the first deploy (every job created, the bundle's files uploaded, state pushed);
- a no-op redeploy (nothing changed: it must make 0 write calls);
- a one-job change (one job's settings edited: one `jobs/reset` plus the state).

Each is run twice from an empty workspace: with the engine's thread pool, and with one
worker (`max_workers=1`), the sequential baseline making the same calls. It prints the
write calls, both wall times and their ratio side by side.

    uv run python bench/deploy.py [--sizes 10 100 500] [--workers 8] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-deploy-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from bundle_promotion.bundle.config.load import load_bundle
from bundle_promotion.bundle.deploy.engine import DeployResult, NativeEngine
from bundle_promotion.hooks.workspace import WorkspaceHook
from bundle_promotion.testing.workspace import WorkspaceEmulator

WORKSPACE = "bench"
PHASES = ("first deploy", "no-op redeploy", "one-job change")


@dataclass(frozen=True)
class Measured:
    write_calls: int
    seconds: float


def write_bundle(folder: Path, jobs: int, changed: bool = False) -> Path:
    """A bundle of `jobs` scheduled jobs, each with one notebook task; `changed` edits job_0 only."""
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "task.py").write_text("# Databricks notebook source\nprint('task')\n")
    lines = ["bundle: {name: bench}", "workspace: {root_path: /Shared/bench}", "resources:", "  jobs:"]
    for index in range(jobs):
        retries = 3 if changed and index == 0 else 1
        lines += [
            f"    job_{index}:",
            f"      name: bench job {index}",
            "      schedule: {quartz_cron_expression: '0 0 2 * * ?', timezone_id: UTC, pause_status: PAUSED}",
            f"      tags: {{team: bench, index: '{index}'}}",
            "      tasks:",
            f"        - {{task_key: main, max_retries: {retries},",
            "           notebook_task: {notebook_path: ./src/task.py}}",
        ]
    (folder / "databricks.yml").write_text("\n".join(lines) + "\n")
    return folder


def run_phases(emulator: WorkspaceEmulator, jobs: int, workers: int) -> list[Measured]:
    emulator.reset()
    hook = WorkspaceHook(f"databricks_{WORKSPACE}", max_connections=workers)
    engine = NativeEngine(hook, max_workers=workers)
    hook.call("GET", "2.0/preview/scim/v2/Me")  # warm up: the connection and the provider load once
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as folder:
        bundle_dir = write_bundle(Path(folder), jobs)
        first = timed(lambda: engine.deploy(load_bundle(bundle_dir, "")))
        again = timed(lambda: engine.deploy(load_bundle(bundle_dir, "")))
        write_bundle(bundle_dir, jobs, changed=True)
        change = timed(lambda: engine.deploy(load_bundle(bundle_dir, "")))
    return [first, again, change]


def timed(deploy: Callable[[], DeployResult]) -> Measured:
    started = time.perf_counter()
    result = deploy()
    return Measured(result.write_calls or 0, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.02)
    arguments = parser.parse_args()
    with WorkspaceEmulator([WORKSPACE]) as emulator:
        os.environ[f"AIRFLOW_CONN_DATABRICKS_{WORKSPACE.upper()}"] = emulator.airflow_connection_uri(
            WORKSPACE
        )
        emulator.set_latency(arguments.latency)
        print(
            f"latency {arguments.latency * 1000:.0f} ms per request; pool of {arguments.workers} vs 1 worker"
        )
        header = (
            f"{'jobs':>5}  {'phase':<15} {'writes':>7} {'pool s':>8} {'sequential s':>13} {'speed-up':>9}"
        )
        print(header)
        print("-" * len(header))
        for jobs in arguments.sizes:
            pooled = run_phases(emulator, jobs, arguments.workers)
            sequential = run_phases(emulator, jobs, 1)
            for phase, fast, slow in zip(PHASES, pooled, sequential, strict=True):
                if fast.write_calls != slow.write_calls:
                    raise SystemExit(f"{jobs} jobs, {phase}: {fast.write_calls} vs {slow.write_calls} writes")
                ratio = slow.seconds / fast.seconds if fast.seconds else float("nan")
                print(
                    f"{jobs:>5}  {phase:<15} {fast.write_calls:>7} {fast.seconds:>8.2f} "
                    f"{slow.seconds:>13.2f} {ratio:>8.1f}x"
                )


if __name__ == "__main__":
    main()
