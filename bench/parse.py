"""Parse cost of the generated promotion DAGs against the same DAG shape built from EmptyOperators.

For 1, 10 and 50 specs (each with its own copy of the example bundle, since the parse
reads each bundle's targets and jobs) it parses ``dags/promotions.py`` the way the DAG
processor does: ``DagBag`` on the file, in a fresh process where Airflow is already
imported. Side by side it parses a baseline file that builds the same tasks and
groups from ``EmptyOperator``. Both sides have their libraries imported before the
clock starts; what importing bundle-promotion costs is measured on its own, against
its budget of 50 ms over ``import airflow.sdk``. Figures are medians of fresh processes.

    uv run python bench/parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
SPEC_COUNTS = (1, 10, 50)
ENVIRONMENTS = ("dev", "staging", "prod")

BASELINE_DAG_FILE = """
from airflow.sdk import DAG, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator

for index in range({count}):
    with DAG(dag_id=f"baseline_{{index}}", schedule=None, max_active_runs=1) as dag:
        previous = EmptyOperator(task_id="release")
        for environment in {environments!r}:
            with TaskGroup(group_id=environment) as group:
                deploy = EmptyOperator(task_id="deploy")
                test = EmptyOperator(task_id="test_integration_tests")
                schedules = EmptyOperator(task_id="schedules")
                record = EmptyOperator(task_id="record")
                deploy >> test >> schedules >> record
            previous >> group
            previous = group
    globals()[dag.dag_id] = dag
"""

# Runs in a fresh process: import Airflow and the file's library first, then time the parse alone.
PARSE_ONE_FILE = """
import sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
import airflow.providers.standard.operators.empty
import bundle_promotion.dag_factory
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
assert not bag.import_errors, bag.import_errors
assert len(bag.dags) == int(sys.argv[2]), sorted(bag.dags)
print(elapsed)
"""


# Runs in a fresh process: what importing the DAG factory adds once Airflow's SDK is loaded.
IMPORT_COST = """
import time
import airflow.sdk
started = time.perf_counter()
import bundle_promotion.dag_factory
print(time.perf_counter() - started)
"""


def write_specs(folder: Path, count: int, bundles: Path) -> None:
    for index in range(count):
        bundle_dir = bundles / f"bundle_{index}"
        shutil.copytree(PROJECT / "include" / "example_bundle", bundle_dir)
        (bundle_dir / ".git").mkdir()  # a local working tree: the parse checks targets and jobs
        spec = {
            "bundle": f"bench_{index}",
            "source": {"repo": str(bundle_dir), "path": "."},
            "environments": [
                {
                    "name": name,
                    "target": name,
                    "databricks_conn_id": f"databricks_{name}",
                    "schedules": "unpaused" if name == "prod" else "paused",
                    "tests": ["integration_tests"],
                }
                for name in ENVIRONMENTS
            ],
        }
        (folder / f"bench_{index}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def median_seconds(script: str, args: list[str], env: dict[str, str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-c", script, *args], env=env, check=True, capture_output=True, text=True
        )
        samples.append(float(result.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-parse-") as scratch:
        root = Path(scratch)
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        }
        imported = median_seconds(IMPORT_COST, [], env, args.repeat)
        print(
            f"import bundle_promotion.dag_factory after airflow.sdk: {imported * 1000:.1f} ms (budget 50 ms)"
        )
        print()
        print(f"{'specs':>5}  {'promotion DAGs':>15}  {'EmptyOperator DAGs':>18}  {'ratio':>6}")
        for count in SPEC_COUNTS:
            print(row(root, count, env, args.repeat), flush=True)


def row(root: Path, count: int, env: dict[str, str], repeat: int) -> str:
    specs = root / f"specs_{count}"
    specs.mkdir()
    write_specs(specs, count, root / f"bundles_{count}")
    baseline = root / f"baseline_{count}.py"
    baseline.write_text(BASELINE_DAG_FILE.format(count=count, environments=ENVIRONMENTS))
    promotion_env = {**env, "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(specs)}
    dag_file = str(PROJECT / "dags" / "promotions.py")
    promotion = median_seconds(PARSE_ONE_FILE, [dag_file, str(count)], promotion_env, repeat)
    empty = median_seconds(PARSE_ONE_FILE, [str(baseline), str(count)], env, repeat)
    return f"{count:>5}  {promotion * 1000:>12.1f} ms  {empty * 1000:>15.1f} ms  {promotion / empty:>5.2f}x"


if __name__ == "__main__":
    main()
