"""`bundle-promotion bundle run KEY` and `bundle open KEY`, as `databricks bundle run|open`.

`run` starts the deployed job (a run) or pipeline (an update), prints its page on stderr
(`Run URL: ...`, as the CLI), waits for it unless `--no-wait`, and exits 1 when it did not
succeed. `open` prints the resource's page and opens it in a browser when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bundle_promotion.cli.common import (
    Actions,
    auth_options,
    bundle_action,
    command_errors,
    failed,
    output_option,
    stdout_kept_for_output,
    variables,
    workspace,
)

if TYPE_CHECKING:
    from bundle_promotion.workspace.api import WorkspaceApi

POLL_SECONDS = 2.0  # how often a waited-for run or update is read, as often as the CLI reads it
_JOB_DONE = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
_PIPELINE_DONE = frozenset({"COMPLETED", "FAILED", "CANCELED"})


def add_run(actions: Actions) -> None:
    run = bundle_action(actions, "run", _run, "run a deployed job, or start an update of a pipeline; wait")
    run.add_argument("key", metavar="KEY", help="the job's or pipeline's key under resources")
    output_option(run)
    auth_options(run, "the workspace the resource is deployed in")
    run.add_argument("--no-wait", action="store_true", help="print the run's URL and do not wait for it")
    run.add_argument(
        "--params",
        type=_parameters,
        default={},
        metavar="K=V,K=V",
        help="job parameters for this run, as the CLI's --params",
    )
    run.add_argument("--full-refresh-all", action="store_true", help="pipelines: a full refresh of all")
    run.add_argument(
        "--full-refresh", type=_table_list, default=[], metavar="T1,T2", help="pipelines: fully refresh these"
    )
    run.add_argument(
        "--refresh", type=_table_list, default=[], metavar="T1,T2", help="pipelines: refresh these only"
    )
    run.add_argument(
        "--validate-only", action="store_true", help="pipelines: check the graph, process no data"
    )


def add_open(actions: Actions) -> None:
    opener = bundle_action(actions, "open", _open, "print the page of a deployed job or pipeline; open it")
    opener.add_argument("key", metavar="KEY", help="the job's or pipeline's key under resources")
    auth_options(opener, "the workspace the resource is deployed in")


def _parameters(text: str) -> dict[str, str]:
    pairs = [pair.partition("=") for pair in text.split(",") if pair]
    if any(not name or not equals for name, equals, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected K=V,K=V, for example env=prod,day=1; got '{text}'")
    return {name: value for name, _, value in pairs}


def _table_list(text: str) -> list[str]:
    return [table.strip() for table in text.split(",") if table.strip()]


@dataclass(frozen=True)
class _Deployed:
    kind: str  # "jobs" or "pipelines"
    key: str
    id: str
    url: str


def _deployed(arguments: argparse.Namespace, api: WorkspaceApi, host: str) -> _Deployed:
    """The resource `KEY` names, as the target's state records it."""
    from bundle_promotion.bundle.deploy.engine import NativeEngine
    from bundle_promotion.bundle.resources import jobs, pipelines
    from bundle_promotion.errors import BundleConfigError

    engine = NativeEngine(api, variables=variables(arguments))
    bundle = engine.load(arguments.bundle_dir, arguments.target)
    kinds = [kind for kind in ("jobs", "pipelines") if arguments.key in bundle.resources.get(kind, {})]
    if len(kinds) != 1:
        problem = "is both a job and a pipeline; rename one" if kinds else "names no job or pipeline"
        raise BundleConfigError(str(arguments.bundle_dir), f"resources.*.{arguments.key}", problem)
    kind = kinds[0]
    found = engine.deployed(bundle).get(f"resources.{kind}.{arguments.key}")
    if found is None:
        raise BundleConfigError(
            str(arguments.bundle_dir),
            f"resources.{kind}.{arguments.key}",
            f"not deployed to target {bundle.target}; run `bundle-promotion bundle deploy` first",
        )
    page = jobs.url if kind == "jobs" else pipelines.url
    return _Deployed(kind, arguments.key, found.id, page(host, found.id))


def _run(arguments: argparse.Namespace) -> int:
    with stdout_kept_for_output() as output:
        try:
            api = workspace(arguments)
            resource = _deployed(arguments, api, api.workspace_host_url())
            if resource.kind == "jobs":
                outcome = _run_job(api, resource, arguments)
            else:
                outcome = _update_pipeline(api, resource, arguments)
        except command_errors() as error:
            return failed(error)
    if arguments.output == "json":
        print(json.dumps(outcome, indent=2), file=output)
    elif not arguments.no_wait:
        print(outcome["result"], file=output)
    if arguments.no_wait or outcome["succeeded"]:
        return 0
    return failed(f"{resource.kind[:-1]} {resource.key} ended {outcome['result']}: {outcome['message']}")


def _run_job(api: WorkspaceApi, job: _Deployed, arguments: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"job_id": int(job.id)}
    if arguments.params:
        body["job_parameters"] = arguments.params
    run_id = api.call("POST", "2.2/jobs/run-now", body=body, idempotent=False)["run_id"]
    run = api.call("GET", "2.2/jobs/runs/get", query={"run_id": run_id})
    print(f"Run URL: {run.get('run_page_url', job.url)}", file=sys.stderr)
    if not arguments.no_wait:
        run = _wait(
            lambda: api.call("GET", "2.2/jobs/runs/get", query={"run_id": run_id}),
            lambda answer: answer["state"]["life_cycle_state"],
            _JOB_DONE,
        )
    state = run["state"]
    result = state.get("result_state") or state["life_cycle_state"]
    return {
        "run_id": run_id,
        "run_page_url": run.get("run_page_url", job.url),
        "result": result,
        "succeeded": result == "SUCCESS",
        "message": state.get("state_message", ""),
    }


def _update_pipeline(api: WorkspaceApi, pipeline: _Deployed, arguments: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {
        "full_refresh": arguments.full_refresh_all,
        "full_refresh_selection": arguments.full_refresh,
        "refresh_selection": arguments.refresh,
        "validate_only": arguments.validate_only,
    }
    path = f"2.0/pipelines/{pipeline.id}/updates"
    update_id = api.call("POST", path, body={k: v for k, v in body.items() if v}, idempotent=False)[
        "update_id"
    ]
    page = f"{pipeline.url}/updates/{update_id}"
    print(f"Update URL: {page}", file=sys.stderr)
    update = {"state": "QUEUED"}
    if not arguments.no_wait:
        update = _wait(
            lambda: api.call("GET", f"{path}/{update_id}")["update"],
            lambda answer: answer["state"],
            _PIPELINE_DONE,
        )
    return {
        "update_id": update_id,
        "update_page_url": page,
        "result": update["state"],
        "succeeded": update["state"] == "COMPLETED",
        "message": "see the update's event log",
    }


def _wait(
    read: Callable[[], dict[str, Any]], state_of: Callable[[dict[str, Any]], str], done: frozenset[str]
) -> dict[str, Any]:
    """Read until the state is final, saying each new state on stderr, as the CLI's progress lines."""
    seen = None
    while True:
        answer = read()
        state = state_of(answer)
        if state != seen:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {state}", file=sys.stderr)
            seen = state
        if state in done:
            return answer
        time.sleep(POLL_SECONDS)


def _open(arguments: argparse.Namespace) -> int:
    import webbrowser

    with stdout_kept_for_output() as output:
        try:
            api = workspace(arguments)
            resource = _deployed(arguments, api, api.workspace_host_url())
        except command_errors() as error:
            return failed(error)
    print(resource.url, file=output)
    if sys.stdout.isatty():
        webbrowser.open(resource.url)
    return 0
