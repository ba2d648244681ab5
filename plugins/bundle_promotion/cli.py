"""The ``bundle-promotion`` command.

Each subcommand is one ``_add_<name>`` function that declares its arguments and the
function that runs it. Runners import what they need themselves, so ``--help`` and
every other subcommand stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DEFAULT_SPECS_FOLDER = Path("include/promotions")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = arguments.run
    return run(arguments)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bundle-promotion", description="Promote Databricks bundles through environments."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add_command in (_add_spec, _add_workspace_emulator, _add_demo):
        add_command(commands)
    return parser


def _add_spec(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spec = commands.add_parser("spec", help="check promotion specs, print their JSON Schema")
    actions = spec.add_subparsers(title="spec commands", required=True, metavar="ACTION")

    schema = actions.add_parser("schema", help="print the JSON Schema of a promotion spec")
    schema.set_defaults(run=_print_spec_schema)

    check = actions.add_parser("check", help="validate promotion specs; exit 1 if any is invalid")
    check.add_argument(
        "paths",
        nargs="*",
        type=Path,
        default=[DEFAULT_SPECS_FOLDER],
        metavar="PATH",
        help=f"spec files or folders of specs (default: {DEFAULT_SPECS_FOLDER})",
    )
    check.set_defaults(run=_check_specs)


def _print_spec_schema(arguments: argparse.Namespace) -> int:
    import json

    from bundle_promotion.spec import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))
    return 0


def _check_specs(arguments: argparse.Namespace) -> int:
    from bundle_promotion.errors import SpecError
    from bundle_promotion.spec import PromotionSpec, load_spec, load_specs

    results: list[PromotionSpec | SpecError] = []
    for path in arguments.paths:
        if path.is_dir():
            found = load_specs(path)
            if not found:
                print(f"{path}: no promotion specs (*.yaml, *.yml) in this folder", file=sys.stderr)
                return 1
            results += found
        else:
            try:
                results.append(load_spec(path))
            except SpecError as error:
                results.append(error)
    for result in results:
        print(result if isinstance(result, SpecError) else f"ok {result.spec_file}")
    return 1 if any(isinstance(result, SpecError) for result in results) else 0


def _add_workspace_emulator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulator = commands.add_parser(
        "workspace-emulator", help="serve emulated Databricks workspaces on local ports"
    )
    emulator.add_argument(
        "--workspace",
        dest="workspaces",
        action="append",
        required=True,
        type=_name_and_port,
        metavar="NAME=PORT",
        help="one emulated workspace, for example dev=8001; repeat for more",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    emulator.set_defaults(run=_serve_workspaces)


def _name_and_port(text: str) -> tuple[str, int]:
    name, _, port = text.partition("=")
    if not name or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, for example dev=8001; got '{text}'")
    return name, int(port)


def _serve_workspaces(arguments: argparse.Namespace) -> int:
    from bundle_promotion.testing.workspace import serve

    workspaces = dict(arguments.workspaces)
    if len(workspaces) != len(arguments.workspaces) or len(set(workspaces.values())) != len(workspaces):
        print("each --workspace needs a name and a port of its own", file=sys.stderr)
        return 2
    serve(workspaces, arguments.host)
    return 0


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="promote the example bundle dev -> staging -> prod on the embedded default"
    )
    demo.add_argument("--version", default="v1.0.0", help="the release tag to promote (default: v1.0.0)")
    demo.add_argument(
        "--project",
        type=Path,
        default=Path.cwd(),
        help="the bundle-promotion checkout holding dags/ and include/ (default: the current folder)",
    )
    demo.set_defaults(run=_run_demo)


def _run_demo(arguments: argparse.Namespace) -> int:
    project = arguments.project.resolve()
    if not (project / "dags" / "promotions.py").is_file():
        print(
            f"{project} has no dags/promotions.py; run the demo from a bundle-promotion checkout",
            file=sys.stderr,
        )
        return 2
    from bundle_promotion.demo import run_demo

    return run_demo(project, arguments.version)
