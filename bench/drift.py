"""A drift check at scale: bounded concurrency and one list call, against a sequential check.

Against the workspace emulator with a fixed latency on every request, it deploys a bundle of
many jobs (each with a schedule and grants) as a promotion would, records the release in a
ledger, then times the drift check of that environment (``lifecycle.drift.check_drift``)
through the real transport (``WorkspaceHook``):

- with the default worker count;
- with one worker: the same calls, one after another;
- a sequential check as verification reads: every job and its grants fetched one by one.

It prints the calls each made per endpoint, and the ratios.

    uv run python bench/drift.py [--jobs 500] [--latency-ms 20] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bundle_promotion.ledger import Ledger
from bundle_promotion.lifecycle.drift import DEFAULT_MAX_WORKERS, EnvironmentPlace, check_drift
from bundle_promotion.lifecycle.promotion import (
    BundleSource,
    apply_schedule_policy,
    cut_release,
    deploy_release,
)
from bundle_promotion.release.store import ArtifactStore
from bundle_promotion.testing.workspace import WorkspaceEmulator
from bundle_promotion.workspace.api import WorkspaceApi

PLACE = EnvironmentPlace("bench", "bench", "unpaused")
BUNDLE = "drift_bench"


def write_bundle(folder: Path, jobs: int) -> None:
    """A bundle of ``jobs`` scheduled serverless jobs with grants, in a tagged git repository."""
    job = {
        "schedule": {
            "quartz_cron_expression": "0 0 2 * * ?",
            "timezone_id": "UTC",
            "pause_status": "UNPAUSED",
        },
        "tasks": [
            {
                "task_key": "main",
                "environment_key": "default",
                "python_wheel_task": {"package_name": "etl", "entry_point": "main"},
            }
        ],
        "environments": [
            {"environment_key": "default", "spec": {"environment_version": "2", "dependencies": ["etl==1.0"]}}
        ],
        "permissions": [{"level": "CAN_VIEW", "group_name": "analysts"}],
    }
    config = {
        "bundle": {"name": BUNDLE},
        "targets": {"bench": {"workspace": {"root_path": f"/Workspace/Shared/.bundle/{BUNDLE}/bench"}}},
        "resources": {"jobs": {f"job_{n}": {"name": f"job {n}", **job} for n in range(jobs)}},
    }
    folder.mkdir()
    (folder / "databricks.yml").write_text(yaml.safe_dump(config))
    for command in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        ["commit", "-q", "-m", "bench"],
        ["tag", "v1"],
    ):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *command],
            cwd=folder,
            check=True,
        )


def promote(
    api: WorkspaceApi, ledger: Ledger, source: BundleSource, store: ArtifactStore, checkouts: Path
) -> None:
    release_id = cut_release(
        source, "v1", targets=[PLACE.target], test_jobs=[], ledger=ledger, store=store, checkouts=checkouts
    )
    deployment = deploy_release(
        source,
        release_id,
        environment=PLACE.environment,
        target=PLACE.target,
        run_id="bench",
        api=api,
        ledger=ledger,
        store=store,
        checkouts=checkouts,
    )
    apply_schedule_policy(api, deployment, PLACE.policy, hold_in_force=False)
    ledger.finish_deployment(deployment.deployment_id, "succeeded")


def sequential_check(api: WorkspaceApi, job_ids: list[str]) -> None:
    """Every job and its grants read one after another, as installation verification reads them."""
    for job_id in job_ids:
        api.call("GET", "2.2/jobs/get", query={"job_id": int(job_id)})
        api.call("GET", f"2.0/permissions/jobs/{job_id}")


def timed(emulator: WorkspaceEmulator, label: str, check: Callable[[], Any]) -> float:
    before = len(emulator.requests("bench"))
    started = time.perf_counter()
    check()
    seconds = time.perf_counter() - started
    calls = Counter(_endpoint(request.path) for request in emulator.requests("bench")[before:])
    print(
        f"{label:<34} {seconds:8.2f} s  {sum(calls.values()):5d} calls: "
        + ", ".join(f"{endpoint} {count}" for endpoint, count in calls.most_common())
    )
    return seconds


def _endpoint(path: str) -> str:
    """`/api/2.0/permissions/jobs/17` -> `permissions`; `/api/2.2/jobs/list` -> `jobs/list`."""
    parts = path.split("/")[3:]
    return "/".join(parts[:2]) if parts[0] == "jobs" else parts[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=DEFAULT_MAX_WORKERS)
    options = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="drift-bench-") as scratch,
        WorkspaceEmulator(["bench"]) as emulator,
    ):
        root = Path(scratch)
        os.environ["AIRFLOW_CONN_DATABRICKS_BENCH"] = emulator.airflow_connection_uri("bench")
        from bundle_promotion.hooks.workspace import WorkspaceHook

        api = WorkspaceHook("databricks_bench", max_connections=options.workers)
        write_bundle(root / "repo", options.jobs)
        ledger = Ledger(f"sqlite:///{root / 'ledger.db'}")
        ledger.migrate()
        source, store, checkouts = (
            BundleSource(BUNDLE, str(root / "repo")),
            ArtifactStore(root / "store"),
            root / "co",
        )  # type: ignore[arg-type]
        promote(api, ledger, source, store, checkouts)
        job_ids = [str(job["job_id"]) for job in _all_jobs(api)]

        def check(workers: int) -> Callable[[], Any]:
            return lambda: check_drift(
                api, ledger, source, PLACE, store=store, checkouts=checkouts, max_workers=workers
            )

        check(options.workers)()  # warm: the checkout and the resolved config are cached on disk
        emulator.set_latency(options.latency_ms / 1000)
        print(f"{options.jobs} jobs with grants, {options.latency_ms:g} ms per request")
        concurrent = timed(emulator, f"drift check, {options.workers} workers", check(options.workers))
        one_worker = timed(emulator, "drift check, 1 worker", check(1))
        sequential = timed(
            emulator, "sequential check (get each job)", lambda: sequential_check(api, job_ids)
        )

    print(f"ratio to the sequential check {sequential / concurrent:.1f}x")
    print(f"ratio to the same check on one worker {one_worker / concurrent:.1f}x")
    return 0


def _all_jobs(api: WorkspaceApi) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 100}
    while True:
        answer = api.call("GET", "2.2/jobs/list", query=query)
        jobs += answer.get("jobs", [])
        if not answer.get("next_page_token"):
            return jobs
        query = {**query, "page_token": answer["next_page_token"]}


if __name__ == "__main__":
    sys.exit(main())
