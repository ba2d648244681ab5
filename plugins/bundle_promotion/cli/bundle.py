"""`bundle-promotion bundle validate|summary|plan|deploy|destroy|run|open`, as `databricks bundle`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bundle_promotion.cli.bundle_run import add_open, add_run
from bundle_promotion.cli.common import (
    Actions,
    BundleCommandParser,
    auth_options,
    bundle_action,
    can_prompt,
    command_errors,
    confirmed,
    failed,
    optional_workspace,
    output_option,
    stdout_kept_for_output,
    variables,
    workspace,
)

if TYPE_CHECKING:
    from bundle_promotion.bundle.deploy.engine import NativeEngine
    from bundle_promotion.bundle.deploy.plan import Change
    from bundle_promotion.workspace.api import WorkspaceApi

# `databricks bundle deploy`'s words before it deletes or recreates a pipeline.
PIPELINE_APPROVAL_MESSAGE = (
    "\nThis action will result in the deletion or recreation of the following Lakeflow Spark Declarative "
    "Pipelines along with the\nStreaming Tables (STs) and Materialized Views (MVs) managed by them. "
    "Recreating the pipelines will\nrestore the defined STs and MVs through full refresh. Note that "
    "recreation is necessary when pipeline\nproperties such as the 'catalog' or 'storage' are changed:"
)


def add_bundle(commands: Actions) -> None:
    bundle = commands.add_parser(
        "bundle", help="validate, plan, deploy and destroy a Databricks bundle as `databricks bundle` does"
    )
    actions = bundle.add_subparsers(
        title="bundle commands", required=True, metavar="ACTION", parser_class=BundleCommandParser
    )
    validate = bundle_action(
        actions,
        "validate",
        _validate_bundle,
        "print the resolved config; exit 1 with `Found N errors` if invalid",
    )
    output_option(validate)
    auth_options(validate, "who deploys and lookups; without any auth, neither is resolved")
    validate.add_argument("--strict", action="store_true", help="treat warnings as errors, as the CLI's")
    validate.add_argument(
        "--engine",
        choices=("native", "cli"),
        default="native",
        help="who will deploy: native also refuses the kinds it cannot deploy; cli checks as the CLI does",
    )
    summary = bundle_action(
        actions, "summary", _summarize_bundle, "the resolved config with each deployed resource's id and url"
    )
    output_option(summary)
    auth_options(summary, "the workspace holding the deployed resources")
    plan = bundle_action(actions, "plan", _plan_bundle, "what a deploy would create, update or delete")
    output_option(plan)
    auth_options(plan, "the workspace to plan against")
    deploy = bundle_action(actions, "deploy", _deploy_bundle, "deploy the bundle's files and resources")
    output_option(deploy)
    auth_options(deploy, "the workspace to deploy to")
    _force_lock_option(deploy)
    deploy.add_argument(
        "--auto-approve", action="store_true", help="skip the approval of deleting or recreating pipelines"
    )
    destroy = bundle_action(
        actions, "destroy", _destroy_bundle, "delete the target's resources and its workspace folder"
    )
    auth_options(destroy, "the workspace to destroy the deployment in")
    _force_lock_option(destroy)
    destroy.add_argument(
        "--auto-approve", action="store_true", help="skip the confirmation (required without a TTY)"
    )
    add_run(actions)
    add_open(actions)


def _force_lock_option(action: argparse.ArgumentParser) -> None:
    action.add_argument(
        "--force-lock",
        action="store_true",
        help="take the deploy lock even when another deployment holds it",
    )


def _validate_bundle(arguments: argparse.Namespace) -> int:
    import json

    from bundle_promotion.bundle.config.load import validate
    from bundle_promotion.bundle.config.lookup import api_lookup

    with stdout_kept_for_output() as output:
        try:
            hook = optional_workspace(arguments)
            me = hook.call("GET", "2.0/preview/scim/v2/Me") if hook else None
            lookup = api_lookup(hook) if hook else None
            validation = validate(
                arguments.bundle_dir,
                arguments.target,
                variables(arguments),
                me,
                lookup,
                arguments.engine,
                strict=arguments.strict,
            )
        except command_errors() as error:
            return failed(error)
    if arguments.output == "json":
        print(json.dumps(validation.document, indent=2), file=output)
    else:
        bundle = validation.document.get("bundle", {})
        print(f"Name: {bundle.get('name', '')}\nTarget: {bundle.get('target', '')}", file=output)
        print(
            f"Workspace:\n  Path: {validation.document.get('workspace', {}).get('root_path', '')}\n",
            file=output,
        )
    # As the CLI: errors and warnings, and in json mode also "Validation OK!", go to stderr.
    text_ok = arguments.output == "text" and not validation.errors and not validation.warnings
    print(validation.stderr(), file=output if text_ok else sys.stderr)
    return 1 if validation.errors else 0


def _summarize_bundle(arguments: argparse.Namespace) -> int:
    import json

    with stdout_kept_for_output() as output:
        try:
            hook = workspace(arguments)
            engine = _native_engine(hook, arguments)
            bundle = engine.load(arguments.bundle_dir, arguments.target)
            document = engine.summary(bundle, hook.workspace_host_url())
        except command_errors() as error:
            return failed(error)
    if arguments.output == "json":
        print(json.dumps(document, indent=2), file=output)
        return 0
    for kind, resources in document.get("resources", {}).items():
        for key, resource in resources.items():
            url = resource.get("url", "(not deployed)")
            print(f"{kind}.{key}: {resource.get('name', '')} {url}", file=output)
    return 0


def _plan_bundle(arguments: argparse.Namespace) -> int:
    import json

    from bundle_promotion.bundle.deploy.plan import plan_json

    with stdout_kept_for_output() as output:
        try:
            engine = _native_engine(workspace(arguments), arguments)
            plan = engine.plan(engine.load(arguments.bundle_dir, arguments.target))
        except command_errors() as error:
            return failed(error)
    if arguments.output == "json":
        print(json.dumps(plan_json(plan.changes, plan.state), indent=2), file=output)
    else:
        print(_plan_text(plan.changes), file=output)
    return 0


def _plan_text(changes: Sequence[Change]) -> str:
    """The CLI's text plan: one `<action> <kind>.<key>` line per change, then the counts."""
    counts = dict.fromkeys(("create", "update", "delete", "skip"), 0)
    for change in changes:
        for counted in ("create", "delete") if change.action == "recreate" else (change.action,):
            counts[counted] += 1
    lines = [
        f"{change.action} {change.key.removeprefix('resources.')}" for change in changes if change.writes
    ]
    total = (
        f"Plan: {counts['create']} to add, {counts['update']} to change, "
        f"{counts['delete']} to delete, {counts['skip']} unchanged"
    )
    return "\n".join([*lines, "", total] if lines else [total])


def _deploy_bundle(arguments: argparse.Namespace) -> int:
    import json

    with stdout_kept_for_output() as output:
        try:
            engine = _native_engine(workspace(arguments), arguments)
            bundle = engine.load(arguments.bundle_dir, arguments.target)
            if not _deploy_approved(engine.plan(bundle).changes, arguments.auto_approve):
                print("Deployment cancelled!", file=sys.stderr)
                return 0
            print(f"Uploading bundle files to {bundle.workspace.file_path}...", file=sys.stderr)
            print("Deploying resources...", file=sys.stderr)
            result = engine.deploy(bundle, force_lock=arguments.force_lock)
        except command_errors() as error:
            return failed(error)
        if result.broken_lock is not None:
            print(f"Warning: broke {_lock_holder(result.broken_lock)}", file=sys.stderr)
        print("Deployment complete!", file=sys.stderr)
    if arguments.output == "json":
        resources = {
            key: {"type": resource.type, "name": resource.name, "id": resource.id, "action": resource.action}
            for key, resource in result.resources.items()
        }
        print(json.dumps({"resources": resources}, indent=2), file=output)
    return 0


def _deploy_approved(changes: Sequence[Change], auto_approve: bool) -> bool:
    """The CLI's rule: deleting or recreating a pipeline drops its tables, so a person must agree."""
    from bundle_promotion.errors import DeployError

    destructive = [
        change for change in changes if change.kind == "pipelines" and change.action in ("delete", "recreate")
    ]
    if not destructive:
        return True
    print(PIPELINE_APPROVAL_MESSAGE, file=sys.stderr)
    for change in destructive:
        print(f"  {change.action} {change.key}", file=sys.stderr)
    if auto_approve:
        return True
    if not can_prompt():
        raise DeployError(
            "the deployment requires destructive actions, but current console does not support prompting. "
            "Please specify --auto-approve if you would like to skip prompts and proceed"
        )
    return confirmed("Would you like to proceed?")


def _destroy_bundle(arguments: argparse.Namespace) -> int:
    if not arguments.auto_approve and not can_prompt():
        return failed(
            "please specify --auto-approve to skip interactive confirmation checks for non tty consoles"
        )
    from bundle_promotion.workspace import files as workspace_files

    with stdout_kept_for_output():
        try:
            hook = workspace(arguments)
            engine = _native_engine(hook, arguments)
            bundle = engine.load(arguments.bundle_dir, arguments.target)
            if not workspace_files.exists(hook, bundle.workspace.root_path):
                print("No active deployment found to destroy!", file=sys.stderr)
                return 0
            deployed = sorted(engine.deployed(bundle))
            if deployed:
                print("The following resources will be deleted:", file=sys.stderr)
                print("\n".join(f"  delete {key}" for key in deployed), file=sys.stderr)
            print(
                "All files and directories at the following location will be deleted: "
                f"{bundle.workspace.root_path}\n",
                file=sys.stderr,
            )
            if not arguments.auto_approve and not confirmed("Would you like to proceed?"):
                print("Destroy cancelled!", file=sys.stderr)
                return 0
            engine.destroy(bundle, force_lock=arguments.force_lock)
        except command_errors() as error:
            return failed(error)
        print("Destroy complete!", file=sys.stderr)
    return 0


def _lock_holder(lock: dict[str, object]) -> str:
    return f"the deploy lock acquired by {lock.get('User')} at {lock.get('AcquisitionTime')}"


def _native_engine(api: WorkspaceApi, arguments: argparse.Namespace) -> NativeEngine:
    from bundle_promotion.bundle.deploy.engine import NativeEngine

    return NativeEngine(api, variables=variables(arguments))
