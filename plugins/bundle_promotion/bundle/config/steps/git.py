"""`bundle.git`: the checkout's branch, commit and origin, as the CLI fills them in for validate.

A branch or origin the bundle sets itself is kept (`inferred: false` then); the checkout's
own branch is always `actual_branch`. Credentials in the origin URL are dropped: the
document is printed and stored with the release.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bundle_promotion.bundle.config.steps.loading import Loading
from bundle_promotion.processes import child_environment, scrub

_GIT_TIMEOUT_SECONDS = 10


def load_git_details(loading: Loading) -> None:
    found = _checkout_details(loading.bundle_dir)
    if found is None:
        return
    top_level, branch, commit, origin = found
    bundle = loading.tree.setdefault("bundle", {})
    git = bundle["git"] = dict(bundle.get("git") or {})
    git["inferred"] = not git.get("branch")
    if branch:
        git.setdefault("branch", branch)
        git["actual_branch"] = branch
    if commit:
        git["commit"] = commit
    if origin:
        git.setdefault("origin_url", scrub(origin, []))
    git["bundle_root_path"] = Path(os.path.relpath(loading.bundle_dir, top_level)).as_posix()


def _checkout_details(folder: Path) -> tuple[str, str, str, str] | None:
    """The checkout's top folder, branch (empty when detached), commit (empty before the first) and
    origin URL; None outside a git checkout."""
    top_level = _git(folder, "rev-parse", "--show-toplevel")
    if not top_level:
        return None
    branch = _git(folder, "symbolic-ref", "-q", "--short", "HEAD")
    commit = _git(folder, "rev-parse", "-q", "--verify", "HEAD")
    origin = _git(folder, "config", "--get", "remote.origin.url")
    return top_level, branch, commit, origin


def _git(folder: Path, *arguments: str) -> str:
    """What git printed, stripped; empty when it failed or is not installed."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            text=True,
            env=child_environment(prefixes=("GIT_",)),
            timeout=_GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
