"""`bundle-promotion schedules pause|resume|status -t TARGET`: the schedules__<bundle> DAG from a shell.

The same steps as the DAG's `pause` and `resume` tasks: the environment is the promotion
spec's whose target is TARGET, its Airflow connection reaches the workspace, the resources
are the ones its last deployment left (`lifecycle.promotion.deployed_resources`), a pause
records the states it found in the ledger's hold before pausing, and a resume puts back
exactly those states. Each is audited in the ledger under the shell user's name.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bundle_promotion.cli.common import (
    TARGET_VARIABLE,
    Actions,
    BundleCommandParser,
    command_errors,
    failed,
    name_and_value,
    stdout_kept_for_output,
)

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.ledger.records import TriggerState
    from bundle_promotion.lifecycle.schedules import BundleResource
    from bundle_promotion.spec import Environment, PromotionSpec
    from bundle_promotion.workspace.api import WorkspaceApi

MAX_WORKERS = 16


def add_schedules(commands: Actions) -> None:
    schedules = commands.add_parser(
        "schedules", help="pause, resume or show a bundle's schedules in one environment"
    )
    actions = schedules.add_subparsers(
        title="actions", required=True, metavar="ACTION", parser_class=BundleCommandParser
    )
    for name, help_text in (
        ("pause", "record the schedules' states in the ledger, then pause them (a maintenance hold)"),
        ("resume", "put back exactly the recorded states; jobs deployed meanwhile get the policy"),
        ("status", "each trigger's state now, and the hold in force"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        _selection_options(action)
        action.set_defaults(run=_run, action=name)
        if name == "pause":
            action.add_argument("--reason", required=True, help="why, for the audit trail")


def _selection_options(action: argparse.ArgumentParser) -> None:
    import os

    action.add_argument(
        "-t",
        "--target",
        required=TARGET_VARIABLE not in os.environ,
        default=os.environ.get(TARGET_VARIABLE),
        help=f"the bundle target whose environment to act on (default: ${TARGET_VARIABLE})",
    )
    action.add_argument("--bundle", help="the bundle, as named in its spec (default: the only spec)")
    only = action.add_mutually_exclusive_group()
    only.add_argument(
        "--only", action="append", default=[], metavar="KEY", help="only this job or pipeline; repeatable"
    )
    only.add_argument(
        "--tag",
        dest="tags",
        action="append",
        default=[],
        type=name_and_value,
        metavar="KEY=VALUE",
        help="only jobs and pipelines carrying this tag; repeat to need several",
    )
    action.add_argument(
        "--specs", type=Path, help="the promotion specs folder (default: Airflow's [bundle_promotion] one)"
    )
    action.add_argument("--ledger", help="the ledger's SQLAlchemy URL (default: Airflow's ledger connection)")
    action.add_argument("--actor", help="who acts, for the audit trail (default: your login name)")


def _run(arguments: argparse.Namespace) -> int:
    from bundle_promotion.hooks.workspace import WorkspaceHook
    from bundle_promotion.lifecycle import schedules

    with stdout_kept_for_output() as output:
        try:
            spec, environment = _environment(arguments)
            ledger = _ledger(arguments.ledger)
            api = WorkspaceHook(
                environment.databricks_conn_id, caller="bundle-promotion", max_connections=MAX_WORKERS
            )
            selected = _selected(arguments, spec, environment, api, ledger)
            job_ids = [resource.id for resource in selected if resource.kind == "job"]
            pipeline_ids = [resource.id for resource in selected if resource.kind == "pipeline"]
            where = {"bundle": spec.bundle, "environment": environment.name}
            actor = _actor(arguments)
            if arguments.action == "pause":
                triggers = schedules.pause_for_maintenance(
                    api, ledger, **where, job_ids=job_ids, pipeline_ids=pipeline_ids,
                    reason=arguments.reason, actor=actor, max_workers=MAX_WORKERS,
                )  # fmt: skip
            elif arguments.action == "resume":
                triggers = schedules.end_maintenance(
                    api, ledger, **where, job_ids=job_ids, pipeline_ids=pipeline_ids,
                    policy=environment.schedules, whole_environment=not (arguments.only or arguments.tags),
                    actor=actor, max_workers=MAX_WORKERS,
                )  # fmt: skip
            else:
                found = schedules.snapshot(api, job_ids, pipeline_ids=pipeline_ids, max_workers=MAX_WORKERS)
                triggers = list(found.triggers)
                hold = ledger.schedule_hold(spec.bundle, environment.name)
                if hold is not None:
                    print(f"held since {hold.since} by {hold.actor}: {hold.reason}", file=output)
        except command_errors() as error:
            return failed(error)
    _print_states(triggers, output)
    return 0


def _environment(arguments: argparse.Namespace) -> tuple[PromotionSpec, Environment]:
    """The spec of the bundle, and its environment deploying `--target`."""
    from bundle_promotion.errors import BundlePromotionError, SpecError
    from bundle_promotion.spec import load_specs

    folder = arguments.specs or _specs_folder()
    specs = [spec for spec in load_specs(folder) if not isinstance(spec, SpecError)]
    chosen = [spec for spec in specs if arguments.bundle in (None, spec.bundle)]
    if len(chosen) != 1:
        known = ", ".join(spec.bundle for spec in specs) or f"none in {folder}"
        raise BundlePromotionError(f"name the bundle with --bundle; the specs in {folder} promote: {known}")
    spec = chosen[0]
    environments = [env for env in spec.environments if env.target == arguments.target]
    if len(environments) != 1:
        targets = ", ".join(f"{env.name} (target {env.target})" for env in spec.environments)
        raise BundlePromotionError(
            f"{spec.spec_file}: no single environment deploys target {arguments.target}; "
            f"the environments are {targets}"
        )
    return spec, environments[0]


def _selected(
    arguments: argparse.Namespace,
    spec: PromotionSpec,
    environment: Environment,
    api: WorkspaceApi,
    ledger: Ledger,
) -> list[BundleResource]:
    from bundle_promotion import settings
    from bundle_promotion.errors import BundlePromotionError
    from bundle_promotion.lifecycle.promotion import BundleSource, deployed_resources
    from bundle_promotion.lifecycle.schedules import select_resources

    resources = deployed_resources(
        BundleSource(spec.bundle, spec.repo_location(), spec.source.path),
        environment=environment.name,
        target=environment.target,
        api=api,
        ledger=ledger,
        checkouts=settings.checkouts(),
    )
    selected = select_resources(resources, keys=arguments.only, tags=dict(arguments.tags))
    unknown = sorted(set(arguments.only) - {resource.key for resource in resources})
    if unknown:
        raise BundlePromotionError(
            f"{', '.join(unknown)}: no such job or pipeline deployed in {environment.name}; "
            f"deployed: {', '.join(sorted(resource.key for resource in resources)) or 'none'}"
        )
    print(
        f"{len(selected)} of the {len(resources)} job(s) and pipeline(s) of {spec.bundle} "
        f"in {environment.name}",
        file=sys.stderr,
    )
    return selected


def _actor(arguments: argparse.Namespace) -> str:
    from bundle_promotion.identity import canonical_identity

    return canonical_identity(arguments.actor or getpass.getuser())


def _print_states(triggers: Sequence[TriggerState], output: TextIO) -> None:
    for trigger in sorted(triggers, key=lambda trigger: (trigger.job_name, trigger.field)):
        print(f"{trigger.kind} {trigger.job_name} {trigger.field}: {trigger.pause_status}", file=output)


def _specs_folder() -> Path:
    from bundle_promotion import settings

    return settings.specs_folder()


def _ledger(url: str | None) -> Ledger:
    from bundle_promotion import settings
    from bundle_promotion.hooks.ledger import open_ledger

    return open_ledger(url) if url else settings.ledger()
