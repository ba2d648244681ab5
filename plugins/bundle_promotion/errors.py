"""Typed errors. Each message says what is wrong, where, and how to fix it.

The Airflow layer turns these into failed tasks with the same message, so the
text is written for the person reading a task log at 3 am.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class BundlePromotionError(Exception):
    """Base of every error this package raises on purpose."""


class SpecError(BundlePromotionError):
    """A promotion spec is invalid. Raised at parse time, before anything is deployed."""

    def __init__(self, file: str, field: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class InvalidSpecs(BundlePromotionError):
    """One or more promotion specs of a folder are invalid; each keeps its own message."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"- {error}" for error in self.errors)
        super().__init__(
            f"{len(self.errors)} promotion spec(s) are invalid; their DAGs were not made:\n{lines}"
        )


class FileRefused(BundlePromotionError):
    """A YAML file was refused before parsing: not a regular file, too big, too deep, not UTF-8.

    Spec and bundle loading turn it into their own error, keeping the file and the line.
    """

    def __init__(self, file: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.problem = problem
        self.line = line
        super().__init__(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


class BundleConfigError(BundlePromotionError):
    """A bundle's configuration (databricks.yml and its includes) is invalid."""

    def __init__(self, file: str, field: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class InvalidBundle(BundleConfigError):
    """Several problems found by one step of config loading, each a `BundleConfigError` of its own."""

    def __init__(self, errors: Sequence[BundleConfigError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        problems = "\n".join(f"- {error}" for error in self.errors)
        super().__init__(first.file, "", f"{len(self.errors)} problems:\n{problems}")


class ReleaseError(BundlePromotionError):
    """A release cannot be resolved or built: missing tag, failed build, digest mismatch."""


class WorkspaceApiError(BundlePromotionError):
    """A Databricks REST call failed. Never carries credentials."""

    def __init__(self, method: str, path: str, status: int, error_code: str, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.error_code = error_code
        super().__init__(f"{method} {path} failed with HTTP {status} {error_code}: {message}")

    @property
    def outcome_unknown(self) -> bool:
        """No answer (a timeout, a dropped connection) or a server error: the server may have acted."""
        return self.status == 0 or self.status >= 500

    @property
    def transient(self) -> bool:
        """No answer, a server error, a rate limit or contention: the same call may pass later."""
        return (
            self.outcome_unknown
            or self.status in _TRY_AGAIN_STATUSES
            or self.error_code in _TRY_AGAIN_ERROR_CODES
        )


# Refusals that say "not now" rather than "no": timeout, conflict, rate limit.
_TRY_AGAIN_STATUSES = frozenset({408, 409, 429})
# Error codes Databricks sends with a 4xx for a passing condition.
_TRY_AGAIN_ERROR_CODES = frozenset(
    {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "RESOURCE_EXHAUSTED", "COULD_NOT_ACQUIRE_LOCK"}
)


class GitHubApiError(BundlePromotionError):
    """A GitHub REST call failed. Never carries credentials."""

    def __init__(self, repo: str, action: str, status: int, message: str) -> None:
        self.repo = repo
        self.action = action
        self.status = status
        super().__init__(f"GitHub {repo}: {action} failed with HTTP {status}: {message}")

    @property
    def transient(self) -> bool:
        """No answer, a server error or a rate limit: worth asking again later, unlike a refusal."""
        return self.status == 0 or self.status >= 500 or self.status in _TRY_AGAIN_STATUSES


class LockHeld(BundlePromotionError):
    """Another deployment holds the target's deploy.lock; ``holder`` is the lock file as read at ``path``."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None, path: str | None = None) -> None:
        self.holder = dict(holder or {})
        self.path = path
        super().__init__(message)


class LockNotBroken(BundlePromotionError):
    """A deploy lock was not broken: it is gone already, or another deployment holds it now."""


class DeployError(BundlePromotionError):
    """A deploy could not converge the workspace to the bundle's config."""


class TestRunFailed(BundlePromotionError):
    """A test job run ended in anything but SUCCESS."""

    __test__ = False  # not a pytest test class


class VerificationFailed(BundlePromotionError):
    """An installation differs from its release; ``mismatches`` lists each difference, field by field."""

    def __init__(self, installation: str, mismatches: Sequence[object]) -> None:
        self.mismatches = list(mismatches)
        listed = "".join(f"\n  - {mismatch}" for mismatch in self.mismatches)
        super().__init__(
            f"installation verification of {installation} found {len(self.mismatches)} "
            f"mismatch(es); redeploy the release, or find who edited the workspace by hand:{listed}"
        )


class SchedulesNotQuiet(BundlePromotionError):
    """Jobs or pipelines were still running when a wait for quiet ran out of time."""


class GateFailed(BundlePromotionError):
    """A gate of an environment failed: the release must not enter it. Names the gate and why."""


class ApprovalRefused(BundlePromotionError):
    """An approval was not accepted: not eligible, segregation of duties, or a failed signature."""


class RejectionStands(ApprovalRefused):
    """The approver's own rejection of this release stands: they withdraw it first, explicitly."""


class IdentityRefused(BundlePromotionError):
    """A user name cannot be one person's identity: invisible characters, mixed scripts, or empty."""


class EnvironmentHeld(BundlePromotionError):
    """A rollback held the environment: no promotion enters it until a person clears the hold."""


class StaleDeployment(BundlePromotionError):
    """A task acted on a deployment that no longer runs in its environment: a rollback superseded it,
    or another deployment reached the workspace since. Says what runs there now and how to go on."""


class RestoreFailed(BundlePromotionError):
    """A rollback step could not put code or data back: names the object, what failed and why."""


# Errors whose outcome a retry cannot change: the input is wrong, or a verdict was reached.
_FINAL_ERRORS = (
    IdentityRefused,
    SpecError,
    InvalidSpecs,
    BundleConfigError,  # and InvalidBundle
    VerificationFailed,
    TestRunFailed,
    GateFailed,
    ApprovalRefused,
    EnvironmentHeld,
    StaleDeployment,
)


def is_final(error: BaseException) -> bool:
    """Would asking again fail the same way? Then a task fails at once instead of retrying.

    Final: a spec or bundle config that is wrong, a verdict (verification, tests, a gate, an
    approval, a hold, a deployment a rollback superseded), and a request the workspace or GitHub
    refused (4xx that is not a rate limit, timeout, conflict or lock contention). Everything
    else may pass on a later try: no answer, a server error, a lock held by a live run, a failed
    subprocess, any other error.
    """
    if isinstance(error, (WorkspaceApiError, GitHubApiError)):
        return not error.transient
    return isinstance(error, _FINAL_ERRORS)
