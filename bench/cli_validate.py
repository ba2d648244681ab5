"""`bundle-promotion bundle validate -o json` wall time, as a user runs it from a shell.

Each run is a new process of the installed command (interpreter start and imports
included), against the workspace emulator: a bundle of 1 and of 50 jobs, without auth,
with `DATABRICKS_HOST`/`DATABRICKS_TOKEN`, and with an Airflow connection. It prints the
median of `--repeat` runs, each one's ratio to the run without auth, and the CPU seconds
the process used (on a loaded machine wall time says more about the neighbours). The budget
is under 0.5 s wall at 50 jobs with env-var auth.

    uv run python bench/cli_validate.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bundle_promotion.testing.workspace import WorkspaceEmulator

BUDGET_SECONDS = 0.5
COMMAND = Path(sys.executable).parent / "bundle-promotion"


def write_bundle(folder: Path, jobs: int) -> Path:
    """A bundle of `jobs` jobs, each with two tasks, a schedule and a job cluster.

    Its root path is fixed, so the run without auth resolves it too; with auth, validate
    still asks the workspace who the user is.
    """
    lines = ["bundle: {name: bench}", "workspace: {root_path: /Shared/bench}", "resources:", "  jobs:"]
    for index in range(jobs):
        lines += [
            f"    job_{index}:",
            f"      name: job {index}",
            "      schedule: {quartz_cron_expression: '0 0 2 * * ?', timezone_id: UTC}",
            "      job_clusters: [{job_cluster_key: main, new_cluster: {spark_version: 15.4.x-scala2.12,"
            " node_type_id: i3.xlarge, num_workers: 2}}]",
            "      tasks:",
            "        - {task_key: extract, job_cluster_key: main,"
            " spark_python_task: {python_file: /Shared/x.py}}",
            "        - {task_key: load, depends_on: [{task_key: extract}], job_cluster_key: main,"
            " spark_python_task: {python_file: /Shared/y.py}}",
        ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "databricks.yml").write_text("\n".join(lines) + "\n")
    return folder


def seconds_of(arguments: list[str], environment: dict[str, str]) -> tuple[float, float]:
    """Wall seconds, and the CPU seconds the process used: on a busy machine the second says more."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        [str(COMMAND), "bundle", "validate", "-o", "json", *arguments],
        capture_output=True,
        env=environment,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"validate failed: {result.stderr.decode()[-2000:]}")
    return elapsed, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    base = {key: value for key, value in os.environ.items() if not key.startswith("DATABRICKS_")}
    with WorkspaceEmulator(["bench"]) as emulator, tempfile.TemporaryDirectory() as scratch:
        base["DATABRICKS_CONFIG_FILE"] = str(Path(scratch) / "no-profiles")
        sources = {
            "no auth": ({}, []),
            "DATABRICKS_HOST/TOKEN": (
                {"DATABRICKS_HOST": emulator.base_url("bench"), "DATABRICKS_TOKEN": emulator.token("bench")},
                [],
            ),
            "Airflow connection": (
                {"AIRFLOW_CONN_DATABRICKS_BENCH": emulator.airflow_connection_uri("bench")},
                ["--databricks-conn-id", "databricks_bench"],
            ),
        }
        worst = 0.0
        print(f"{'jobs':>4}  {'auth':<28} {'median s':>9} {'ratio':>7} {'cpu s':>7}")
        for jobs in (1, 50):
            folder = write_bundle(Path(scratch) / f"jobs_{jobs}", jobs)
            reference = None
            for label, (variables, flags) in sources.items():
                runs = [
                    seconds_of([*flags, "--bundle-dir", str(folder)], {**base, **variables})
                    for _ in range(options.repeat)
                ]
                median = statistics.median(wall for wall, _ in runs)
                cpu = statistics.median(used for _, used in runs)
                reference = reference or median
                print(f"{jobs:>4}  {label:<28} {median:9.3f} {median / reference:7.2f} {cpu:7.3f}")
                if label == "DATABRICKS_HOST/TOKEN" and jobs == 50:
                    worst = median
        print(f"budget: under {BUDGET_SECONDS} s at 50 jobs with env-var auth: {worst:.3f} s")
        return 0 if worst < BUDGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
