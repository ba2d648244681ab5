"""Checks of a spec against its bundle's outline, when the bundle is on this machine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bundle_promotion.errors import BundleConfigError
from bundle_promotion.spec.models import PromotionSpec
from bundle_promotion.spec.problems import _closest, _Problem


def _bundle_problems(spec: PromotionSpec) -> list[_Problem]:
    """Check targets and test jobs against the bundle, when its folder is on this machine."""
    try:
        folder = spec.bundle_dir()
    except OSError as error:
        return [_Problem(("source", "repo"), f"cannot look for the repository: {error.strerror}")]
    try:
        outline = spec.bundle_outline()
    except BundleConfigError as error:
        return [_Problem(("source",), f"cannot read the bundle at {folder}: {error}")]
    if folder is None or outline is None:
        return []
    targets, jobs = list(outline.targets), list(outline.job_keys)
    return [*_unknown_targets(spec, folder, targets), *_unknown_test_jobs(spec, folder, jobs)]


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    closest = _closest(word, options)
    return f"; did you mean '{closest}'?" if closest else ""


def _unknown_targets(spec: PromotionSpec, folder: Path, targets: list[str]) -> list[_Problem]:
    return [
        _Problem(
            ("environments", index, "target"),
            f"unknown target '{environment.target}'; the bundle at {folder} defines: "
            f"{', '.join(sorted(targets))}{_did_you_mean(environment.target, targets)}",
        )
        for index, environment in enumerate(spec.environments)
        if environment.target not in targets
    ]


def _unknown_test_jobs(spec: PromotionSpec, folder: Path, jobs: list[str]) -> list[_Problem]:
    return [
        _Problem(
            ("environments", index, "tests", position),
            f"'{suite.job}' is not a job of the bundle at {folder}; "
            f"its jobs are: {', '.join(sorted(jobs)) or 'none'}",
        )
        for index, environment in enumerate(spec.environments)
        for position, suite in enumerate(environment.tests)
        if suite.job not in jobs
    ]
