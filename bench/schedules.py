"""Pausing and restoring many jobs' schedules: bounded concurrency against a sequential loop.

Against the workspace emulator with a fixed latency on every request, it creates jobs with
a mix of triggers, then times a maintenance round trip (snapshot, pause every trigger,
restore the snapshot) through the real transport (``WorkspaceHook``), once with the
default worker count and once one job after another. Both sides make the same calls;
the budget is a ratio of at least 5x at 200 jobs and 20 ms latency.

    uv run python bench/schedules.py [--jobs 200] [--latency-ms 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from bundle_promotion.lifecycle.schedules import DEFAULT_MAX_WORKERS, restore, set_pause_status, snapshot
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace.api import WorkspaceApi

BUDGET_RATIO = 5.0
CRON = {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "UTC"}
TRIGGERS = (
    {"schedule": {**CRON, "pause_status": "UNPAUSED"}},
    {"trigger": {"file_arrival": {"url": "/Volumes/main/raw/in/"}, "pause_status": "UNPAUSED"}},
    {"continuous": {"pause_status": "UNPAUSED"}},
    {"schedule": {**CRON, "pause_status": "PAUSED"}},
)


def round_trip(api: WorkspaceApi, job_ids: list[str], workers: int) -> float:
    """Seconds to snapshot, pause every trigger, and restore the snapshot."""
    started = time.perf_counter()
    taken = snapshot(api, job_ids, max_workers=workers)
    set_pause_status(api, job_ids, "PAUSED", max_workers=workers)
    restore(api, taken, max_workers=workers)
    return time.perf_counter() - started


def timed(label: str, measure: Callable[[], float]) -> float:
    seconds = measure()
    print(f"{label:<28} {seconds:8.2f} s")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=DEFAULT_MAX_WORKERS)
    options = parser.parse_args()

    with WorkspaceEmulator(["bench"]) as emulator:
        os.environ["AIRFLOW_CONN_DATABRICKS_BENCH"] = emulator.airflow_connection_uri("bench")
        from bundle_promotion.hooks.workspace import WorkspaceHook

        api = WorkspaceHook("databricks_bench", max_connections=options.workers)
        job_ids = [
            str(
                api.call("POST", "2.2/jobs/create", body={"name": f"job {n}", **TRIGGERS[n % len(TRIGGERS)]})[
                    "job_id"
                ]
            )
            for n in range(options.jobs)
        ]
        emulator.set_latency(options.latency_ms / 1000)
        print(f"{options.jobs} jobs, {options.latency_ms:g} ms per request: snapshot + pause + restore")
        concurrent = timed(f"{options.workers} workers", lambda: round_trip(api, job_ids, options.workers))
        sequential = timed("sequential loop", lambda: round_trip(api, job_ids, 1))

    ratio = sequential / concurrent
    verdict = "within" if ratio >= BUDGET_RATIO else "OVER"
    print(f"ratio {ratio:.1f}x ({verdict} the budget of at least {BUDGET_RATIO:g}x)")
    return 0 if ratio >= BUDGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
