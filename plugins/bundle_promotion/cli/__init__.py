"""The ``bundle-promotion`` command.

Each subcommand is one ``_add_<name>`` function (or ``add_<name>`` in a module of its own:
``bundle``, ``schedules``) that declares its arguments and the function that runs it.
Runners import what they need themselves, so ``--help`` and every other subcommand stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bundle_promotion.cli.bundle import add_bundle
from bundle_promotion.cli.schedules import add_schedules

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger
    from bundle_promotion.web.client import ApprovalsClient

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = arguments.run
    return run(arguments)


def _parser() -> argparse.ArgumentParser:
    from bundle_promotion.cli.drift import add_drift

    parser = argparse.ArgumentParser(
        prog="bundle-promotion", description="Promote Databricks bundles through environments."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for add_command in (
        _add_spec,
        add_bundle,
        add_schedules,
        _add_workspace_emulator,
        _add_demo,
        _add_approve,
        _add_audit,
        _add_hold,
        _add_signature,
        add_drift,
    ):
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
        metavar="PATH",
        help="spec files or folders of specs (default: Airflow's [bundle_promotion] specs_folder)",
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
    for path in arguments.paths or [_specs_folder()]:
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
    emulator.add_argument(
        "--webhook",
        type=_port,
        metavar="PORT",
        help="also receive webhooks on PORT (the example spec's demo_webhook connection) and print "
        "each notification as a JSON line",
    )
    emulator.set_defaults(run=_serve_workspaces)


def _name_and_port(text: str) -> tuple[str, int]:
    name, _, port = text.partition("=")
    if not name or not _is_port(port):
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, for example dev=8001; got '{text}'")
    return name, int(port)


def _port(text: str) -> int:
    if not _is_port(text):
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, for example 8004; got '{text}'")
    return int(text)


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def _serve_workspaces(arguments: argparse.Namespace) -> int:
    from bundle_promotion.testing.workspace import serve

    workspaces = dict(arguments.workspaces)
    if len(workspaces) != len(arguments.workspaces) or len(set(workspaces.values())) != len(workspaces):
        print("each --workspace needs a name and a port of its own", file=sys.stderr)
        return 2
    if arguments.webhook in workspaces.values():
        print(f"--webhook {arguments.webhook} is a workspace's port already", file=sys.stderr)
        return 2
    serve(workspaces, arguments.host, webhook_port=arguments.webhook)
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


def _add_approve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approve = commands.add_parser(
        "approve",
        help="approve (or reject) a release for an environment, through Airflow's API as yourself",
        description="Posts to the approvals API; Airflow's auth manager identifies you by your token. "
        "Set BUNDLE_PROMOTION_TOKEN (a JWT), or give --user and type your password.",
    )
    approve.add_argument("bundle", help="the bundle, as named in its promotion spec")
    approve.add_argument("environment", help="the environment whose approval gate you answer")
    release = approve.add_mutually_exclusive_group(required=True)
    release.add_argument("--version", help="the version waiting at the gate; its digest is looked up")
    release.add_argument("--digest", help="the release digest to approve, also ahead of the gate")
    approve.add_argument("--reason", required=True, help="why you approve or reject (required)")
    decision = approve.add_mutually_exclusive_group()
    decision.add_argument("--reject", action="store_true", help="reject the release instead")
    decision.add_argument(
        "--withdraw", action="store_true", help="withdraw your own rejection, which otherwise stands"
    )
    approve.add_argument(
        "--overrides-freeze", action="store_true", help="let the release through a freeze of the window gate"
    )
    approve.add_argument(
        "--meaning",
        choices=("review", "approval", "responsibility", "authorship"),
        help="sign under 21 CFR Part 11 with this meaning; asks for your password again",
    )
    _api_options(approve)
    approve.set_defaults(run=_approve)


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        default=os.environ.get("BUNDLE_PROMOTION_API_URL", "http://localhost:8080"),
        help="Airflow's API server (default: $BUNDLE_PROMOTION_API_URL or %(default)s)",
    )
    parser.add_argument("--user", help="log in as this user when BUNDLE_PROMOTION_TOKEN is not set")


def _approve(arguments: argparse.Namespace) -> int:
    bundle, environment = arguments.bundle, arguments.environment

    def decide(client: ApprovalsClient) -> tuple[str, dict[str, Any]]:
        digest = arguments.digest or client.release_digest(bundle, environment, arguments.version)
        return digest, client.submit(bundle, environment, _decision(arguments, digest))

    code, answer = _through_api(arguments, decide)
    if answer is None:
        return code
    digest, given = answer
    print(f"{given['decision']} of {digest[:12]} for {environment} recorded as {given['approver']}")
    return 0


def _through_api(arguments: argparse.Namespace, act: Callable[[ApprovalsClient], T]) -> tuple[int, T | None]:
    """``act`` on the plugin's API as the user of the token; on failure, the exit code (1 refused,
    2 any other error) with the reason on stderr, and None."""
    from bundle_promotion.errors import ApprovalRefused, BundlePromotionError
    from bundle_promotion.web.client import ApprovalsClient

    try:
        return 0, act(ApprovalsClient(arguments.api_url, _api_token(arguments)))
    except ApprovalRefused as refused:
        print(f"refused: {refused}", file=sys.stderr)
        return 1, None
    except BundlePromotionError as error:
        print(error, file=sys.stderr)
        return 2, None


def _api_token(arguments: argparse.Namespace) -> str:
    import getpass

    from bundle_promotion.errors import BundlePromotionError
    from bundle_promotion.web.client import login

    if token := os.environ.get("BUNDLE_PROMOTION_TOKEN"):
        return token
    if not arguments.user:
        raise BundlePromotionError("set BUNDLE_PROMOTION_TOKEN to a JWT of Airflow's API, or pass --user")
    return login(arguments.api_url, arguments.user, getpass.getpass(f"Password for {arguments.user}: "))


def _decision(arguments: argparse.Namespace, digest: str) -> dict[str, object]:
    import getpass

    decision: dict[str, object] = {
        "release_digest": digest,
        "decision": "reject" if arguments.reject else "withdraw" if arguments.withdraw else "approve",
        "reason": arguments.reason,
        "overrides_freeze": arguments.overrides_freeze,
    }
    if arguments.meaning:
        decision |= {"meaning": arguments.meaning, "password": getpass.getpass("Password, to sign: ")}
    return decision


def _add_audit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="verify the audit trail, export a release's evidence pack")
    actions = audit.add_subparsers(title="actions", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="check the chain, every bound record, the MACs and the witnessed heads; exit 1 naming "
        "what each anchor caught",
    )
    _ledger_option(verify)
    verify.add_argument(
        "--store",
        help="the artifact store URL holding audit/head.json (default: Airflow's artifact store, "
        "unless --ledger is given)",
    )
    verify.set_defaults(run=_verify_audit)
    export = actions.add_parser("export", help="write a release's evidence pack as JSON and Markdown")
    _ledger_option(export)
    export.add_argument("--release", required=True, metavar="VERSION", help="the release, for example v1.2.0")
    export.add_argument("--bundle", help="the bundle (default: the only spec in --specs)")
    export.add_argument(
        "--specs",
        type=Path,
        help="the promotion specs folder (default: Airflow's [bundle_promotion] specs_folder)",
    )
    export.add_argument("--out", type=Path, default=Path("."), help="where to write the two files")
    export.add_argument("--store", help="the artifact store URL holding audit/head.json, as for verify")
    export.set_defaults(run=_export_evidence)


def _verify_audit(arguments: argparse.Namespace) -> int:
    from bundle_promotion.hooks.ledger import audit_key
    from bundle_promotion.ledger.evidence import verify

    report = verify(_ledger(arguments), audit_key=audit_key(), witnessed=_witnessed_heads(arguments))
    print(report, file=sys.stdout if report.intact else sys.stderr)
    return 0 if report.intact else 1


def _witnessed_heads(arguments: argparse.Namespace) -> list[dict[str, Any]] | None:
    """The heads in the artifact store: the one named, else Airflow's when the ledger is Airflow's."""
    if arguments.store:
        from airflow.sdk import ObjectStoragePath

        from bundle_promotion.release.store import ArtifactStore

        return ArtifactStore(ObjectStoragePath(arguments.store)).audit_heads()
    if arguments.ledger:
        return None
    from bundle_promotion import settings

    return settings.artifact_store().audit_heads()


def _export_evidence(arguments: argparse.Namespace) -> int:
    from bundle_promotion.errors import BundlePromotionError
    from bundle_promotion.hooks.ledger import audit_key
    from bundle_promotion.ledger.evidence import evidence_pack, export, release_notes, verify
    from bundle_promotion.spec import load_specs

    folder = arguments.specs or _specs_folder()
    specs = [spec for spec in load_specs(folder) if not isinstance(spec, BundlePromotionError)]
    chosen = [spec for spec in specs if arguments.bundle in (None, spec.bundle)]
    if len(chosen) != 1:
        known = ", ".join(spec.bundle for spec in specs) or f"none in {folder}"
        print(f"name the bundle with --bundle; the specs promote: {known}", file=sys.stderr)
        return 2
    spec, ledger = chosen[0], _ledger(arguments)
    try:
        recorded = ledger.release_by_version(spec.bundle, arguments.release)
        notes = release_notes(spec, recorded[1]) if recorded else None
        pack = evidence_pack(
            ledger,
            spec.bundle,
            arguments.release,
            environments=[env.name for env in spec.environments],
            notes=notes,
            report=verify(ledger, audit_key=audit_key(), witnessed=_witnessed_heads(arguments)),
        )
    except BundlePromotionError as error:
        print(error, file=sys.stderr)
        return 2
    for path in export(pack, arguments.out):
        print(path)
    return 0


def _add_hold(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    clear, break_glass = _through_api_or_break_glass(
        commands.add_parser("hold", help="clear the hold a rollback put on an environment"),
        "clear",
        api_help="let promotions into the environment again, through the API as your Airflow user",
        break_glass_help="administrators only: clear the hold straight in the ledger, recorded as a "
        "break-glass action",
    )
    for action, run in ((clear, _clear_hold), (break_glass, _break_glass)):
        action.add_argument("bundle", help="the bundle, as named in its promotion spec")
        action.add_argument("environment", help="the held environment")
        action.add_argument(
            "--reason", required=True, help="why promotions may resume (kept in the audit trail)"
        )
        action.set_defaults(run=run)


def _through_api_or_break_glass(
    command: argparse.ArgumentParser, api_action: str, *, api_help: str, break_glass_help: str
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """An administrative command's two actions: ``api_action`` through the API as the caller, and
    ``break-glass`` straight in the ledger, naming the administrator for the audit trail."""
    actions = command.add_subparsers(title="actions", required=True, metavar="ACTION")
    through_api = actions.add_parser(api_action, help=api_help)
    _api_options(through_api)
    break_glass = actions.add_parser("break-glass", help=break_glass_help)
    _ledger_option(break_glass)
    break_glass.add_argument(
        "--actor", help="the administrator, for the audit trail (default: your login name)"
    )
    return through_api, break_glass


def _clear_hold(arguments: argparse.Namespace) -> int:
    code, cleared = _through_api(
        arguments, lambda client: client.clear_hold(arguments.bundle, arguments.environment, arguments.reason)
    )
    if code:
        return code
    if cleared is None:
        print(f"{arguments.bundle}/{arguments.environment} is not held; nothing to clear")
        return 0
    print(f"hold on {arguments.bundle}/{arguments.environment} cleared (was: {cleared['reason']})")
    return 0


def _break_glass(arguments: argparse.Namespace) -> int:
    import getpass

    from bundle_promotion.errors import BundlePromotionError

    actor = arguments.actor or getpass.getuser()
    try:
        cleared = _ledger(arguments).clear_hold(
            arguments.bundle, arguments.environment, reason=arguments.reason, actor=actor, break_glass=True
        )
    except BundlePromotionError as error:
        print(error, file=sys.stderr)
        return 2
    if cleared is None:
        print(f"{arguments.bundle}/{arguments.environment} is not held; nothing to clear")
        return 0
    print(f"hold on {arguments.bundle}/{arguments.environment} broken by {actor} (was: {cleared.reason})")
    return 0


def _add_signature(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    unlock, break_glass = _through_api_or_break_glass(
        commands.add_parser("signature", help="administer Part 11 signatures"),
        "unlock",
        api_help="lift the lockout failed signature attempts put on a signer, through the API as your "
        "Airflow user (an administrator; an audited action)",
        break_glass_help="administrators only: lift a lockout straight in the ledger, recorded as a "
        "break-glass action",
    )
    for action, run in ((unlock, _unlock_signature), (break_glass, _break_glass_signature)):
        action.add_argument("signer", help="the locked-out user id")
        action.add_argument(
            "--reason", required=True, help="why the signer may sign again (kept in the audit trail)"
        )
        action.set_defaults(run=run)


def _unlock_signature(arguments: argparse.Namespace) -> int:
    code, lifted = _through_api(
        arguments, lambda client: client.lift_signature_lockout(arguments.signer, arguments.reason)
    )
    if code:
        return code
    print(f"{arguments.signer} may sign again" if lifted else f"{arguments.signer} is not locked out")
    return 0


def _break_glass_signature(arguments: argparse.Namespace) -> int:
    import getpass

    from bundle_promotion.errors import BundlePromotionError
    from bundle_promotion.identity import canonical_identity

    try:
        signer = canonical_identity(arguments.signer)
        actor = canonical_identity(arguments.actor or getpass.getuser())
        lifted = _ledger(arguments).lift_signature_lockout(
            signer, actor=actor, reason=arguments.reason, break_glass=True
        )
    except BundlePromotionError as error:
        print(error, file=sys.stderr)
        return 2
    print(
        f"{signer} may sign again; lifted by {actor} (break-glass)"
        if lifted
        else f"{signer} is not locked out"
    )
    return 0


def _ledger_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ledger", help="the ledger's SQLAlchemy URL (default: Airflow's ledger connection)")


def _specs_folder() -> Path:
    """The folder the DAG file and the API read, so every command sees the same specs."""
    from bundle_promotion import settings

    return settings.specs_folder()


def _ledger(arguments: argparse.Namespace) -> Ledger:
    from bundle_promotion.hooks.ledger import open_ledger

    if arguments.ledger:
        return open_ledger(arguments.ledger)
    from bundle_promotion import settings

    return settings.ledger()
