"""Parse cost of the generated promotion DAGs against the same DAG shape built from EmptyOperators.

For 1, 10 and 50 specs (each with its own copy of the example bundle, since the parse
reads each bundle's targets and jobs) it parses ``dags/promotions.py`` the way the DAG
processor does: ``DagBag`` on the file, in a fresh process where Airflow is already
imported. Side by side it parses a baseline file holding the same DAGs with the same
task ids, task groups, dependencies and params, every task an ``EmptyOperator``; the
shape is read from the generated DAGs, so the comparison follows whatever the factory
renders. (Params belong to the shape: Airflow copies a DAG's params into each task.)
Both sides have their libraries imported before the clock starts; what importing
bundle-promotion costs is measured on its own, against its budget of 50 ms over
``import airflow.sdk``. Figures are medians of fresh processes.

A worker parses the file for one task, with Airflow's parsing context naming its DAG: the
last column is that parse (one DAG built, one spec validated), whose cost must not grow with
the number of specs (budget: 50 specs within 1.2x of 1 spec).

    uv run python bench/parse.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
DAG_FILE = PROJECT / "dags" / "promotions.py"
SPEC_COUNTS = (1, 10, 50)
ENVIRONMENTS = ("dev", "staging", "prod")

# Runs in a fresh process: import Airflow and the file's library first, then time the parse alone.
PARSE_ONE_FILE = """
import sys, time
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
import airflow.providers.standard.operators.empty
import bundle_promotion.dags.factory
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
assert not bag.import_errors, bag.import_errors
print(len(bag.dags), elapsed)
"""

# Prints the generated DAGs' shape: per DAG, its params, and each task id (in dependency order)
# with its upstream ids.
READ_SHAPE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({
    dag_id: {
        "params": {
            name: [param.has_value, param.value if param.has_value else None, param.schema]
            for name, param in ((name, dag.params.get_param(name)) for name in dag.params)
        },
        "tasks": [[task.task_id, sorted(task.upstream_task_ids)] for task in dag.topological_sort()],
    }
    for dag_id, dag in bag.dags.items()
}))
"""

BASELINE_DAG_FILE = """
from airflow.sdk import DAG, Param, TaskGroup
from airflow.providers.standard.operators.empty import EmptyOperator

SHAPES = {shapes!r}

for dag_id, shape in SHAPES.items():
    params = {{
        name: Param(value, **schema) if has_value else Param(**schema)
        for name, (has_value, value, schema) in shape["params"].items()
    }}
    with DAG(dag_id=dag_id, schedule=None, params=params) as dag:
        groups, made = {{}}, {{}}
        for task_id, upstream in shape["tasks"]:
            *path, name = task_id.split(".")
            group = None
            for depth in range(1, len(path) + 1):
                key = ".".join(path[:depth])
                if key not in groups:
                    groups[key] = TaskGroup(group_id=path[depth - 1], parent_group=group)
                group = groups[key]
            made[task_id] = EmptyOperator(task_id=name, task_group=group)
            for parent in upstream:
                made[parent] >> made[task_id]
    globals()[dag_id] = dag
"""

# Runs in a fresh process: what importing the DAG factory adds once Airflow's SDK is loaded.
IMPORT_COST = """
import time
import airflow.sdk
started = time.perf_counter()
import bundle_promotion.dags.factory
print(1, time.perf_counter() - started)
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
                    "production": name == "prod",
                    "tests": [{"job": "integration_tests", "non_destructive": True}],
                }
                for name in ENVIRONMENTS
            ],
        }
        (folder / f"bench_{index}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def run_python(script: str, args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1]


def median_parse(script: str, args: list[str], env: dict[str, str], repeat: int) -> tuple[int, float]:
    """The DAG count and the median seconds over ``repeat`` fresh processes."""
    samples = [run_python(script, args, env).split() for _ in range(repeat)]
    return int(samples[0][0]), statistics.median(float(seconds) for _, seconds in samples)


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
        _, imported = median_parse(IMPORT_COST, [], env, args.repeat)
        print(
            f"import bundle_promotion.dags.factory after airflow.sdk: {imported * 1000:.1f} ms (budget 50 ms)"
        )
        print(
            f"\n{'specs':>5}  {'DAGs':>4}  {'promotion DAGs':>15}  {'EmptyOperator DAGs':>18}  {'ratio':>6}"
            f"  {'a task parse':>13}"
        )
        task_parses = {}
        for count in SPEC_COUNTS:
            line, task_parses[count] = row(root, count, env, args.repeat)
            print(line, flush=True)
        fewest, most = min(SPEC_COUNTS), max(SPEC_COUNTS)
        print(
            f"\na task's parse at {most} specs: {task_parses[most] / task_parses[fewest]:.2f}x "
            f"the parse at {fewest} (budget 1.2x)"
        )


def row(root: Path, count: int, env: dict[str, str], repeat: int) -> tuple[str, float]:
    specs = root / f"specs_{count}"
    specs.mkdir()
    write_specs(specs, count, root / f"bundles_{count}")
    promotion_env = {**env, "AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER": str(specs)}
    shapes = json.loads(run_python(READ_SHAPE, [str(DAG_FILE)], promotion_env))
    baseline = root / f"baseline_{count}.py"
    baseline.write_text(BASELINE_DAG_FILE.format(shapes=shapes))
    dags, promotion = median_parse(PARSE_ONE_FILE, [str(DAG_FILE)], promotion_env, repeat)
    baseline_dags, empty = median_parse(PARSE_ONE_FILE, [str(baseline)], env, repeat)
    assert dags == baseline_dags == len(shapes), (dags, baseline_dags, len(shapes))
    # What a worker sets before it parses for a task of promote__bench_0.
    task_env = {**promotion_env, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "promote__bench_0"}
    task_dags, task = median_parse(PARSE_ONE_FILE, [str(DAG_FILE)], task_env, repeat)
    assert task_dags == 1, task_dags
    line = (
        f"{count:>5}  {dags:>4}  {promotion * 1000:>12.1f} ms  {empty * 1000:>15.1f} ms  "
        f"{promotion / empty:>5.2f}x  {task * 1000:>10.1f} ms"
    )
    return line, task


if __name__ == "__main__":
    main()
