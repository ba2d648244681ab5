"""Typed errors. Each message says what is wrong, where, and how to fix it.

The Airflow layer turns these into failed tasks with the same message, so the
text is written for the person reading a task log at 3 am.
"""

from __future__ import annotations

from collections.abc import Sequence


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


class BundleConfigError(BundlePromotionError):
    """A bundle's configuration (databricks.yml and its includes) is invalid."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        self.file = file
        self.field = field
        self.problem = problem
        super().__init__(f"{file}: {field}: {problem}" if field else f"{file}: {problem}")


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


class LockHeld(BundlePromotionError):
    """Another deployment holds the target's deploy.lock."""


class DeployError(BundlePromotionError):
    """A deploy could not converge the workspace to the bundle's config."""


class TestRunFailed(BundlePromotionError):
    """A test job run ended in anything but SUCCESS."""

    __test__ = False  # not a pytest test class
