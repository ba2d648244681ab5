"""Resolve a release's version to a commit and check that commit out, through git's own CLI.

Git is driven through its CLI, so whatever credential helper the worker has applies.
Credentials in a repository URL never reach a message, git's command line or a checkout.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from bundle_promotion.errors import ReleaseError

_TAGS_LISTED_IN_ERRORS = 10
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def resolve_version(repo: str, version: str) -> str:
    """The commit a version tag points to, read from the remote (annotated tags peeled)."""
    if Path(repo).is_absolute() and not Path(repo).exists():  # a spec's local path, made absolute
        raise ReleaseError(
            f"no git repository at {repo}: the spec's source.repo names a local path that does not exist "
            "here. A relative path counts from the spec file's folder, so a spec copied elsewhere needs "
            "it changed; or write an absolute path, $VARIABLE/..., or a git URL"
        )
    tags = _remote_tags(repo)
    if version in tags:
        return tags[version]
    raise ReleaseError(
        f"tag {version!r} not found in {scrub(repo)}; {_describe_tags(tags)}. "
        "Push the tag, or trigger the promotion with an existing one"
    )


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    subject: str


def commits_between(repo: str, base: str, head: str, workdir: Path) -> list[Commit]:
    """The commits in ``head`` and not in ``base`` (both full SHAs), newest first, read from a
    checkout of ``head`` in ``workdir`` (reused like any other)."""
    if not _FULL_SHA.fullmatch(base):
        raise ReleaseError(f"{base!r} is not a full commit SHA; resolve the version to a commit first")
    log = _git("log", "--format=%H%x09%an%x09%s", f"{base}..{head}", "--", cwd=checkout(repo, head, workdir))
    return [Commit(*line.split("\t", 2)) for line in log.splitlines()]


def checkout(repo: str, commit: str, workdir: Path) -> Path:
    """``<workdir>/<commit>/`` holding the repository's tree at ``commit``.

    An intact checkout from an earlier call is reused. A new one is cloned beside it and
    renamed into place, so processes racing for the same commit never see a half-made tree.
    """
    if not _FULL_SHA.fullmatch(commit):
        raise ReleaseError(f"{commit!r} is not a full commit SHA; resolve the version to a commit first")
    target = workdir / commit
    if target.exists():
        if _is_intact(target, commit):
            return target
        _discard(target)
    workdir.mkdir(parents=True, exist_ok=True)
    staging = workdir / f".clone-{commit}-{uuid.uuid4().hex}"
    try:
        _clone_at(repo, commit, staging)
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def private_copy(checkout_dir: Path) -> Iterator[Path]:
    """A throwaway clone of ``checkout_dir`` beside it, for one build, removed afterwards.

    Builds write into their tree (``dist/``, ``build/``), and releases of one commit share the
    checkout, so each build gets its own tree: no build wipes or picks up another's output.
    A local clone hard-links git's objects, so the copy is cheap.
    """
    commit = _git("rev-parse", "HEAD", cwd=checkout_dir).strip()
    copy = checkout_dir.with_name(f".build-{checkout_dir.name}-{uuid.uuid4().hex}")
    try:
        _clone_at(str(checkout_dir), commit, copy)
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def tags(repo: str) -> list[str]:
    """The repository's tags, newest version first: what a promotion may be given."""
    return sorted(_remote_tags(repo), key=_natural_sort_key, reverse=True)


def _remote_tags(repo: str) -> dict[str, str]:
    """Tag name → commit. An annotated tag is listed twice; its peeled ``^{}`` line names the commit."""
    tags: dict[str, str] = {}
    url, config = _split_credentials(repo)
    for line in _git("ls-remote", "--tags", "--", url, config=config).splitlines():
        sha, ref = line.split("\t")
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            tags[name.removesuffix("^{}")] = sha
        else:
            tags.setdefault(name, sha)
    return tags


def _describe_tags(tags: dict[str, str]) -> str:
    if not tags:
        return "the repository has no tags"
    newest_first = sorted(tags, key=_natural_sort_key, reverse=True)
    shown = ", ".join(newest_first[:_TAGS_LISTED_IN_ERRORS])
    more = len(newest_first) - _TAGS_LISTED_IN_ERRORS
    return f"its tags are {shown}" + (f" and {more} more" if more > 0 else "")


def _natural_sort_key(name: str) -> list[Any]:
    # re.split with a group alternates text and digit runs, so each position compares like with like.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _is_intact(checkout_dir: Path, commit: str) -> bool:
    """At the commit with no tracked file changed; untracked files, such as build output, are fine."""
    try:
        head = _git("rev-parse", "HEAD", cwd=checkout_dir).strip()
        changes = _git("status", "--porcelain", "--untracked-files=no", cwd=checkout_dir)
    except ReleaseError:
        return False
    return head == commit and not changes


def _discard(checkout_dir: Path) -> None:
    # Renaming first takes the broken tree out of the way at once; deleting it may take a while.
    doomed = checkout_dir.with_name(f".discarded-{uuid.uuid4().hex}")
    try:
        checkout_dir.rename(doomed)
    except FileNotFoundError:
        return  # another process discarded it first
    shutil.rmtree(doomed, ignore_errors=True)


def _clone_at(repo: str, commit: str, destination: Path) -> None:
    url, config = _split_credentials(repo)
    _git("clone", "--quiet", "--no-checkout", "--", url, str(destination), config=config)
    try:
        _git("cat-file", "-e", f"{commit}^{{commit}}", cwd=destination)
    except ReleaseError:
        raise ReleaseError(
            f"commit {commit} is not in {scrub(repo)}; was its tag deleted or the history rewritten? "
            "Cut a new version from a commit the repository keeps"
        ) from None
    _git("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit, cwd=destination)


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        staging.rename(target)
    except OSError:
        # A concurrent process renamed its clone of the same commit first: same tree, use it.
        if not target.exists():
            raise


def _split_credentials(repo: str) -> tuple[str, dict[str, str]]:
    """``repo`` without the ``user:token@`` of an HTTP(S) URL, and the git setting that sends them.

    The credentials reach git as an ``Authorization`` header for that host only, through its
    environment (``GIT_CONFIG_*``): never on its command line, where any user of the machine
    could read them, nor in the clone's ``.git/config``.
    """
    parts = urlsplit(repo)
    if parts.scheme not in ("http", "https") or not (parts.username or parts.password):
        return repo, {}
    user_and_password = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    header = f"Authorization: Basic {base64.b64encode(user_and_password.encode()).decode()}"
    return urlunsplit(parts._replace(netloc=netloc)), {f"http.{parts.scheme}://{netloc}/.extraHeader": header}


def _git(*args: str, cwd: Path | None = None, config: Mapping[str, str] | None = None) -> str:
    # No prompts (a task has no terminal) and no optional index locks (processes share checkouts).
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    first = int(env.get("GIT_CONFIG_COUNT", "0"))  # after any settings the worker gives git
    for index, (key, value) in enumerate((config or {}).items(), start=first):
        env |= {
            "GIT_CONFIG_COUNT": str(index + 1),
            f"GIT_CONFIG_KEY_{index}": key,
            f"GIT_CONFIG_VALUE_{index}": value,
        }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        command = " ".join(["git", *args])
        raise ReleaseError(
            scrub(f"`{command}` failed with exit code {result.returncode}: {result.stderr.strip()}")
        )
    return result.stdout


def scrub(text: str) -> str:
    """Drop ``user:token@`` from URLs, so credentials never reach a task log."""
    return _URL_CREDENTIALS.sub("", text)
