"""The CLI engine: the official `databricks bundle` command, for targets that must be deployed by it.

It runs `databricks bundle validate|deploy|summary|destroy` in the bundle's folder.
Credentials and variables go into the child's environment (`DATABRICKS_HOST`,
`DATABRICKS_TOKEN`, `BUNDLE_VAR_<name>`), never onto its command line. The child's
environment is allow-listed: no other `DATABRICKS_*` variable, profile or stale token of
the worker, and none of its other connections or databases. Whatever it prints is scrubbed
of the token before it reaches a log or an error. Its exit code says only
success or failure (CLI `main.go`), so failures are told apart by their stderr and
mapped to the native engine's errors: a held lock is `LockHeld`, an invalid bundle
`BundleConfigError`, anything else `DeployError`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundle_promotion.bundle.config.load import ArtifactConfig, ResolvedBundle, WorkspacePaths, find_root_file
from bundle_promotion.bundle.deploy.engine import DeployedResource, DeployResult
from bundle_promotion.bundle.deploy.lock import LockOwner
from bundle_promotion.bundle.deploy.plan import Action
from bundle_promotion.errors import BundleConfigError, DeployError, LockHeld
from bundle_promotion.processes import child_environment, scrub, secrets_in

_LOCK_HELD = re.compile(r"^Error: (deploy lock (?:force-)?acquired by .*)", re.DOTALL | re.MULTILINE)
_VALIDATION_FAILED = re.compile(r"^Found \d+ errors?$", re.MULTILINE)
_ERROR_LINE = re.compile(r"^Error: (.*)$", re.MULTILINE)
_TAIL_LINES = 20
_DEPLOYED_KINDS = ("jobs", "pipelines")


@dataclass(frozen=True)
class CliCredentials:
    """What the child needs to reach the workspace; `environment` holds the secret, never argv."""

    host: str
    environment: dict[str, str] = field(repr=False)

    def secrets(self) -> list[str]:
        return secrets_in(self.environment)


class CliEngine:
    """Deploys through `databricks bundle`; `binary` is looked up on PATH."""

    def __init__(
        self,
        credentials: CliCredentials,
        *,
        binary: str = "databricks",
        variables: Mapping[str, str] | None = None,
        timeout_seconds: float = 3600,
    ) -> None:
        self._credentials = credentials
        self._binary = binary
        self._variables = dict(variables or {})
        self._timeout = timeout_seconds

    def load(self, bundle_dir: Path, target: str) -> ResolvedBundle:
        """The bundle as the CLI resolves it (`bundle validate -o json`)."""
        return _resolved(bundle_dir, self.validate(bundle_dir, target))

    def validate(self, bundle_dir: Path, target: str) -> dict[str, Any]:
        return self._json(bundle_dir, "validate", target)

    def summary(self, bundle_dir: Path, target: str) -> dict[str, Any]:
        """The resolved config with each deployed resource's `id` and `url`."""
        return self._json(bundle_dir, "summary", target)

    def deploy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult:
        """`bundle deploy`; the CLI takes its own lock, so `owner` cannot resume one left by a killed try."""
        self._run(bundle.bundle_dir, "deploy", bundle.target, ["--auto-approve", *_force(force_lock)])
        return DeployResult(self._summarized(bundle, "skip"), write_calls=None)

    def destroy(
        self, bundle: ResolvedBundle, *, force_lock: bool = False, owner: LockOwner | None = None
    ) -> DeployResult:
        before = self._summarized(bundle, "delete")
        self._run(bundle.bundle_dir, "destroy", bundle.target, ["--auto-approve", *_force(force_lock)])
        return DeployResult(before, write_calls=None)

    def deployed(self, bundle: ResolvedBundle) -> dict[str, DeployedResource]:
        """The jobs the target's state records, with the ids `bundle summary` reports."""
        return {key: r for key, r in self._summarized(bundle, "skip").items() if r.type == "jobs"}

    def _summarized(self, bundle: ResolvedBundle, action: Action) -> dict[str, DeployedResource]:
        """The deployed jobs and pipelines; the CLI does not say what it did to each, so all get `action`."""
        resources = self.summary(bundle.bundle_dir, bundle.target).get("resources") or {}
        return {
            f"resources.{kind}.{key}": DeployedResource(
                f"resources.{kind}.{key}", kind, str(resource.get("name", "")), str(resource["id"]), action
            )
            for kind in _DEPLOYED_KINDS
            for key, resource in (resources.get(kind) or {}).items()
            if resource.get("id")
        }

    def _json(self, bundle_dir: Path, command: str, target: str) -> dict[str, Any]:
        stdout = self._run(bundle_dir, command, target, ["-o", "json"])
        try:
            document = json.loads(stdout)
        except ValueError as error:
            raise DeployError(f"databricks bundle {command} printed no JSON: {stdout[:200]!r}") from error
        if not isinstance(document, dict):
            raise DeployError(f"databricks bundle {command} printed {type(document).__name__}, not an object")
        return document

    def _run(self, bundle_dir: Path, command: str, target: str, flags: Sequence[str]) -> str:
        argv = [self._binary, "bundle", command, "-t", target, *flags]
        try:
            done = subprocess.run(
                argv,
                cwd=bundle_dir,
                env=self._environment(),
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except FileNotFoundError as error:
            raise DeployError(
                f"engine: cli needs the Databricks CLI: `{self._binary}` is not on PATH of the worker"
            ) from error
        except subprocess.TimeoutExpired as error:
            raise DeployError(
                f"databricks bundle {command} did not finish in {self._timeout:.0f} s"
            ) from error
        if done.returncode != 0:
            raise self._error(bundle_dir, command, self._scrub(done.stderr))
        return self._scrub(done.stdout)

    def _environment(self) -> dict[str, str]:
        """What any process needs, this workspace's credentials, and the bundle's variables."""
        return {
            **child_environment(),
            **{f"BUNDLE_VAR_{name}": value for name, value in self._variables.items()},
            **self._credentials.environment,
            "DATABRICKS_HOST": self._credentials.host,
        }

    def _scrub(self, text: str) -> str:
        return scrub(text, self._credentials.secrets())

    @staticmethod
    def _error(bundle_dir: Path, command: str, stderr: str) -> Exception:
        held = _LOCK_HELD.search(stderr)
        if held:
            return LockHeld(" ".join(held.group(1).split()))
        if _VALIDATION_FAILED.search(stderr):
            problems = _ERROR_LINE.findall(stderr) or [stderr.strip()]
            return BundleConfigError(str(_root_file(bundle_dir)), "", "; ".join(problems))
        tail = "\n".join(stderr.strip().splitlines()[-_TAIL_LINES:])
        return DeployError(f"databricks bundle {command} failed:\n{tail}")


def _force(force_lock: bool) -> list[str]:
    return ["--force-lock"] if force_lock else []


def _root_file(bundle_dir: Path) -> Path:
    try:
        return find_root_file(bundle_dir)
    except BundleConfigError:
        return bundle_dir


def _resolved(bundle_dir: Path, document: dict[str, Any]) -> ResolvedBundle:
    bundle, workspace = document.get("bundle") or {}, document.get("workspace") or {}
    return ResolvedBundle(
        name=str(bundle.get("name", "")),
        target=str(bundle.get("target", "")),
        mode=bundle.get("mode"),
        bundle_dir=bundle_dir.resolve(),
        workspace=WorkspacePaths(
            **{
                name: str(workspace.get(name, ""))
                for name in ("root_path", "file_path", "artifact_path", "state_path", "resource_path")
            }
        ),
        variables={name: spec.get("value") for name, spec in (document.get("variables") or {}).items()},
        artifacts={
            key: ArtifactConfig(
                key=key,
                type=spec.get("type", "whl"),
                build=spec.get("build"),
                path=Path(spec.get("path", bundle_dir)),
            )
            for key, spec in (document.get("artifacts") or {}).items()
        },
        resources=document.get("resources") or {},
        config=document,
    )
