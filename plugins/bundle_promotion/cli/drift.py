"""``bundle-promotion drift check``: compare environments with the releases they run, from a terminal.

The same check as ``drift__<bundle>``'s, through the environments' Airflow connections; the
reports go to the ledger, so the board shows them too. Exit 0 when nothing drifted, 1 when
something did, 2 when the check could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.ledger.records import DriftReport

DRIFTED_EXIT = 1
FAILED_EXIT = 2


def add_drift(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drift = commands.add_parser("drift", help="find where environments no longer run what was released")
    actions = drift.add_subparsers(title="actions", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="compare each environment with the release the ledger says runs there; exit 1 on drift",
        description="Compare every deployed resource's settings, permissions and schedule state, and each "
        "artifact's bytes, with the release the ledger says runs there. Reads the workspaces only; "
        "the reports go to the ledger.",
    )
    check.add_argument("bundle", help="the bundle, as named in its promotion spec")
    check.add_argument("environment", nargs="?", help="one environment (default: all of them, in order)")
    check.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one JSON document on stdout, everything else on stderr",
    )
    check.add_argument(
        "--specs",
        type=Path,
        help="the promotion specs folder (default: Airflow's [bundle_promotion] specs_folder)",
    )
    check.add_argument("--ledger", help="the ledger's SQLAlchemy URL (default: Airflow's ledger connection)")
    check.set_defaults(run=_check)


def _check(arguments: argparse.Namespace) -> int:
    import json

    from airflow.exceptions import AirflowException

    from bundle_promotion.errors import BundlePromotionError

    try:
        reports = _reports(arguments)
    except (BundlePromotionError, AirflowException) as error:
        print(f"Error: {error}", file=sys.stderr)
        return FAILED_EXIT
    if arguments.output == "json":
        print(json.dumps([report.to_json() for report in reports], indent=2))
    else:
        print("\n".join(_text(report) for report in reports))
    return DRIFTED_EXIT if any(report.findings for report in reports) else 0


def _reports(arguments: argparse.Namespace) -> list[DriftReport]:
    from bundle_promotion import settings
    from bundle_promotion.errors import BundlePromotionError
    from bundle_promotion.hooks.workspace import WorkspaceHook
    from bundle_promotion.lifecycle.drift import EnvironmentPlace, record_drift_check
    from bundle_promotion.lifecycle.promotion import BundleSource
    from bundle_promotion.spec import load_specs

    folder = arguments.specs or settings.specs_folder()
    specs = [spec for spec in load_specs(folder) if not isinstance(spec, BundlePromotionError)]
    spec = next((spec for spec in specs if spec.bundle == arguments.bundle), None)
    if spec is None:
        known = ", ".join(sorted(spec.bundle for spec in specs)) or "none"
        raise BundlePromotionError(
            f"no promotion spec for {arguments.bundle} in {folder}; the specs promote: {known}"
        )
    environments = [env for env in spec.environments if arguments.environment in (None, env.name)]
    if not environments:
        names = ", ".join(env.name for env in spec.environments)
        raise BundlePromotionError(
            f"{spec.bundle} has no environment {arguments.environment}; it has {names}"
        )
    source = BundleSource(spec.bundle, spec.repo_location(), spec.source.path)
    ledger = _ledger(arguments.ledger)
    return [
        record_drift_check(
            WorkspaceHook(env.databricks_conn_id, caller="bundle-promotion"),
            ledger,
            source,
            EnvironmentPlace(env.name, env.target, env.schedules),
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
            actor=_user(),
        )[0]
        for env in environments
    ]


def _text(report: DriftReport) -> str:
    if report.status == "not_deployed":
        return f"{report.environment}: nothing deployed yet"
    if report.status == "in_sync":
        return f"{report.environment}: in sync with {report.version}"
    lines = [f"{report.environment}: drifted from {report.version}"]
    return "\n".join([*lines, *(f"  {finding}" for finding in report.findings)])


def _ledger(url: str | None) -> Ledger:
    from bundle_promotion.hooks.ledger import open_ledger

    if url:
        return open_ledger(url)
    from bundle_promotion import settings

    return settings.ledger()


def _user() -> str:
    import getpass

    return getpass.getuser()
