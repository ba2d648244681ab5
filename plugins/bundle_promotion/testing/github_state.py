"""The state behind the GitHub emulator: repositories with commits, tags, checks, reviews and deployments.

Tests seed it through ``GitHubEmulator``; the app reads and writes it while answering.
Every id comes from a counter and every SHA from the content it names, so the same
seeding gives the same answers.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered. The credentials are never recorded."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


@dataclass
class Commit:
    sha: str
    message: str
    author: str
    files: dict[str, str]
    parents: tuple[str, ...]
    date: datetime


@dataclass
class TagObject:
    """An annotated tag: a git object of its own, pointing at a commit."""

    sha: str
    name: str
    message: str
    commit: str


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: datetime
    completed_at: datetime | None


@dataclass
class Pull:
    number: int
    title: str
    author: str
    head_sha: str
    head_ref: str
    base_ref: str
    created_at: datetime


@dataclass
class Review:
    id: int
    pull_number: int
    reviewer: str
    state: str
    commit_id: str
    body: str
    submitted_at: datetime


@dataclass
class Deployment:
    id: int
    sha: str
    ref: str
    environment: str
    task: str
    description: str
    payload: Any
    creator: str
    created_at: datetime
    statuses: list[DeploymentStatus] = field(default_factory=list)


@dataclass
class DeploymentStatus:
    id: int
    state: str
    description: str
    log_url: str
    environment_url: str
    creator: str
    created_at: datetime


@dataclass
class Repository:
    id: int
    full_name: str
    default_branch: str
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/tags/v1" -> commit or tag object SHA
    tag_objects: dict[str, TagObject] = field(default_factory=dict)
    check_runs: list[CheckRun] = field(default_factory=list)
    pulls: dict[int, Pull] = field(default_factory=dict)
    reviews: list[Review] = field(default_factory=list)
    deployments: list[Deployment] = field(default_factory=list)

    def commit_of(self, ref: str) -> Commit | None:
        """The commit a SHA, tag or branch name resolves to, like ``GET /commits/{ref}``."""
        if ref in self.commits:
            return self.commits[ref]
        for full_ref in (f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
            target = self.refs.get(full_ref)
            if target is not None:
                tag = self.tag_objects.get(target)
                return self.commits.get(tag.commit if tag else target)
        return None

    def pulls_containing(self, sha: str) -> list[Pull]:
        return [pull for pull in self.pulls.values() if sha in self._history(pull.head_sha)]

    def _history(self, sha: str) -> set[str]:
        seen: set[str] = set()
        pending = [sha]
        while pending:
            current = pending.pop()
            if current in seen or current not in self.commits:
                continue
            seen.add(current)
            pending.extend(self.commits[current].parents)
        return seen


class GitHubState:
    """Every repository the emulator serves, and the counters that number new things."""

    def __init__(self, token: str, user: str) -> None:
        self.token = token
        self.user = user
        self.repos: dict[str, Repository] = {}
        self.log: list[RecordedRequest] = []
        self.faults: list[int] = []
        self._next_id = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def repo(self, full_name: str) -> Repository:
        if full_name not in self.repos:
            raise KeyError(f"No repository {full_name!r}; add it with add_repo({full_name!r}) first.")
        return self.repos[full_name]

    def add_repo(self, full_name: str, default_branch: str) -> Repository:
        if full_name.count("/") != 1:
            raise ValueError(f"a repository is named owner/name, not {full_name!r}")
        return self.repos.setdefault(full_name, Repository(self.new_id(), full_name, default_branch))

    def add_commit(
        self, full_name: str, files: dict[str, str], *, author: str, message: str, parent: str | None
    ) -> str:
        repo = self.repo(full_name)
        parents = (parent,) if parent else ()
        sha = _sha(repr((sorted(files.items()), author, message, parents)))
        repo.commits[sha] = Commit(sha, message, author, dict(files), parents, now())
        repo.refs[f"refs/heads/{repo.default_branch}"] = sha
        return sha

    def add_tag(self, full_name: str, name: str, commit: str, *, annotated: bool) -> None:
        repo = self.repo(full_name)
        if commit not in repo.commits:
            raise KeyError(f"{full_name} has no commit {commit}")
        target = commit
        if annotated:
            target = _sha(f"tag {name} -> {commit}")
            repo.tag_objects[target] = TagObject(target, name, f"release {name}", commit)
        repo.refs[f"refs/tags/{name}"] = target

    def reset(self) -> None:
        self.repos.clear()
        self.log.clear()
        self.faults.clear()
        self._next_id = 0


def mirror_git(state: GitHubState, full_name: str, checkout: Path) -> None:
    """Copy a local git repository's tagged commits (with their files and authors) and tags.

    The mirrored commits keep their real SHAs, so a release cut from ``checkout`` names
    commits the emulator knows.
    """
    repo = state.repo(full_name)
    for line in _lines(checkout, "for-each-ref", "--format=%(refname:short) %(objecttype)", "refs/tags"):
        tag, kind = line.split()
        sha = _git(checkout, "rev-list", "-n", "1", tag).strip()
        if sha not in repo.commits:
            repo.commits[sha] = _read_commit(checkout, sha)
        state.add_tag(full_name, tag, sha, annotated=kind == "tag")


def _read_commit(checkout: Path, sha: str) -> Commit:
    author, date, parents, message = _git(checkout, "show", "-s", "--format=%an%n%aI%n%P%n%s", sha).split(
        "\n"
    )[:4]
    return Commit(
        sha, message, author, _files_at(checkout, sha), tuple(parents.split()), datetime.fromisoformat(date)
    )


def _files_at(checkout: Path, sha: str) -> dict[str, str]:
    """Every file of the commit, read by one ``git cat-file --batch``."""
    paths = _lines(checkout, "ls-tree", "-r", "--name-only", sha)
    batch = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=checkout,
        input="".join(f"{sha}:{path}\n" for path in paths).encode(),
        check=True,
        capture_output=True,
    ).stdout
    files: dict[str, str] = {}
    for path in paths:
        header, _, batch = batch.partition(b"\n")
        size = int(header.split()[2])
        files[path] = batch[:size].decode("utf-8", errors="replace")
        batch = batch[size + 1 :]
    return files


def _git(checkout: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=checkout, check=True, capture_output=True, text=True, errors="replace"
    )
    return result.stdout


def _lines(checkout: Path, *args: str) -> list[str]:
    return [line for line in _git(checkout, *args).split("\n") if line]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
