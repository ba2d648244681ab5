"""What the commands that act on a bundle's target share: the CLI's flags, auth, output and errors."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

if TYPE_CHECKING:
    from bundle_promotion.hooks.workspace import WorkspaceHook
    from bundle_promotion.workspace.rest import RestWorkspace

    Workspace = WorkspaceHook | RestWorkspace

TARGET_VARIABLE = "DATABRICKS_BUNDLE_TARGET"  # the CLI's default for -t
# The Airflow connection a command that must reach a workspace uses when no other auth is configured.
FALLBACK_CONNECTION = "databricks_default"

Actions = argparse._SubParsersAction


class BundleCommandParser(argparse.ArgumentParser):
    """Usage errors exit 1 with `Error: ...`, as every failure of `databricks bundle` does."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"Error: {message}\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown:  # left to the top-level parser, they would exit 2
            self.error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed, unknown


def bundle_action(
    actions: Actions,
    name: str,
    run: Callable[[argparse.Namespace], int],
    help_text: str,
) -> argparse.ArgumentParser:
    """A subcommand with the CLI's bundle flags: target, variables, profile and the bundle's folder."""
    action: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
    action.add_argument(
        "-t",
        "--target",
        default=os.environ.get(TARGET_VARIABLE, ""),
        help=f"the bundle target (default: ${TARGET_VARIABLE}, else the bundle's default target)",
    )
    action.add_argument(
        "--var",
        dest="variables",
        action="append",
        default=[],
        type=name_and_value,
        metavar="NAME=VALUE",
        help="set a bundle variable, like the CLI's --var; repeat for more",
    )
    action.add_argument("--bundle-dir", type=Path, default=Path.cwd(), help="the bundle (default: .)")
    action.set_defaults(run=run)
    return action


def output_option(action: argparse.ArgumentParser) -> None:
    action.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="json: one JSON document on stdout, everything else on stderr",
    )


def auth_options(action: argparse.ArgumentParser, purpose: str) -> None:
    """The CLI's `-p/--profile`, and an Airflow connection as one more source of credentials."""
    action.add_argument(
        "-p",
        "--profile",
        help="the ~/.databrickscfg profile, as `databricks -p` (default: $DATABRICKS_CONFIG_PROFILE, "
        "else $DATABRICKS_HOST and $DATABRICKS_TOKEN, else the DEFAULT profile)",
    )
    action.add_argument(
        "--databricks-conn-id",
        help=f"use this Airflow connection for {purpose} instead (loads Airflow, a few seconds)",
    )


def name_and_value(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not name or not equals:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, for example catalog=main; got '{text}'")
    return name, value


def variables(arguments: argparse.Namespace) -> dict[str, str]:
    """`--var` values by name; the CLI refuses a variable given twice."""
    from bundle_promotion.errors import BundleConfigError

    given: dict[str, str] = {}
    for name, value in arguments.variables:
        if name in given:
            raise BundleConfigError(
                "--var", name, f"variable {name} is set more than once; pass each --var once"
            )
        given[name] = value
    return given


def optional_workspace(arguments: argparse.Namespace) -> Workspace | None:
    """The workspace the command talks to, authenticated as the Databricks CLI would be; None without auth.

    `--databricks-conn-id` takes an Airflow connection (and only then imports Airflow);
    otherwise the profile, the environment, or the bundle target's `workspace.profile` or
    `workspace.host` (`workspace.auth`).
    """
    from bundle_promotion.bundle.config.load import workspace_auth_fields
    from bundle_promotion.workspace.auth import resolve_cli_auth

    if arguments.databricks_conn_id:
        return airflow_connection(arguments.databricks_conn_id)
    auth = resolve_cli_auth(
        arguments.profile,
        bundle_workspace=lambda: workspace_auth_fields(arguments.bundle_dir, arguments.target),
    )
    return auth.workspace() if auth is not None else None


def workspace(arguments: argparse.Namespace) -> Workspace:
    """As `optional_workspace`; without any auth, the Airflow connection `databricks_default`."""
    return optional_workspace(arguments) or airflow_connection(FALLBACK_CONNECTION)


def airflow_connection(conn_id: str) -> WorkspaceHook:
    from bundle_promotion.hooks.workspace import WorkspaceHook

    return WorkspaceHook(conn_id, caller="bundle-promotion")


@contextmanager
def stdout_kept_for_output() -> Iterator[TextIO]:
    """Yields the real stdout for the command's result, and sends all else printed meanwhile to stderr.

    Airflow sends its logs and warnings to whatever `sys.stdout` is when it is first
    imported (here: by the hook), which would put them before a `-o json` document.
    """
    output = sys.stdout
    with redirect_stdout(sys.stderr):
        yield output


def command_errors() -> tuple[type[Exception], ...]:
    """What a bundle command reports as `Error: ...`: our errors, and Airflow's once it is loaded."""
    from bundle_promotion.errors import BundlePromotionError

    airflow_exceptions = sys.modules.get("airflow.exceptions")
    if airflow_exceptions is None:
        return (BundlePromotionError,)
    return BundlePromotionError, airflow_exceptions.AirflowException


def failed(error: Exception | str) -> int:
    print(f"Error: {error}", file=sys.stderr)
    return 1


def can_prompt() -> bool:
    """A question needs a person: one at a terminal, reading stderr and typing into stdin."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirmed(question: str) -> bool:
    print(f"{question} [y/n]: ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")
