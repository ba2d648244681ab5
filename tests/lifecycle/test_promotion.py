"""Cutting a release: resolved offline for every target, built once in a tree of its own."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger import Ledger
from bundle_promotion.lifecycle.promotion import BundleSource, cut_release
from bundle_promotion.release.store import ArtifactStore
from tests.conftest import git

# A build that writes a wheel of its own, then waits until the other build has written its
# wheel too: run in one shared folder, the two would end up hashing the same file.
MEETING_BUILD = """
import os, pathlib, sys, time
dist = pathlib.Path("dist")
dist.mkdir(exist_ok=True)
token = os.urandom(8).hex()
(dist / "meeting-1.0-py3-none-any.whl").write_text(token)
meeting = pathlib.Path(sys.argv[1])
(meeting / token).touch()
deadline = time.monotonic() + 30
while len(list(meeting.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    return ledger


def test_concurrent_releases_of_one_commit_each_build_their_own_wheel(
    bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> None:
    script, meeting = tmp_path / "meeting_build.py", tmp_path / "meeting"
    script.write_text(MEETING_BUILD)
    meeting.mkdir()

    def meeting_build(repo: Path) -> None:
        config = repo / "databricks.yml"
        build = f"{sys.executable} {script} {meeting}"
        config.write_text(config.read_text().replace("build: uv build --wheel", f"build: {build}"))

    repo = bundle_repo("v1.0.0", edit=meeting_build)
    git(repo, "tag", "v1.0.1")  # a second release of the same commit
    checkouts = tmp_path / "checkouts"
    start_together = threading.Barrier(2)

    def release(version: str) -> int:
        start_together.wait()
        return cut_release(
            BundleSource("example_etl", str(repo)),
            version,
            targets=["dev"],
            test_jobs=[],
            ledger=ledger,
            store=ArtifactStore(tmp_path / "store"),
            checkouts=checkouts,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        release_ids = list(pool.map(release, ["v1.0.0", "v1.0.1"]))

    digests = {ledger.release(release_id).artifacts[0].sha256 for release_id in release_ids}
    assert len(digests) == 2
    commit = git(repo, "rev-parse", "HEAD")
    assert [path.name for path in checkouts.iterdir()] == [commit]  # the build copies are gone
    assert not (checkouts / commit / "dist").exists()


def test_a_target_without_a_spec_test_job_fails_the_release_before_anything_is_built(
    bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> None:
    store = tmp_path / "store"

    with pytest.raises(ReleaseError, match=r"target dev of bundle example_etl has no job smoke_tests"):
        cut_release(
            BundleSource("example_etl", str(bundle_repo("v1.0.0"))),
            "v1.0.0",
            targets=["dev", "staging", "prod"],
            test_jobs=["smoke_tests"],
            ledger=ledger,
            store=ArtifactStore(store),
            checkouts=tmp_path / "checkouts",
        )
    assert not store.exists()


def test_targets_whose_paths_name_the_deploying_user_resolve_without_a_workspace(
    bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> None:
    def home_root_path(repo: Path) -> None:
        config = repo / "databricks.yml"
        shared = "root_path: /Workspace/Shared/.bundle/${bundle.name}/${bundle.target}"
        config.write_text(
            config.read_text().replace(shared, "root_path: ~/.bundle/${bundle.name}/${bundle.target}")
        )

    release_id = cut_release(
        BundleSource("example_etl", str(bundle_repo("v1.0.0", edit=home_root_path))),
        "v1.0.0",
        targets=["dev", "staging", "prod"],
        test_jobs=["integration_tests"],
        ledger=ledger,
        store=ArtifactStore(tmp_path / "store"),
        checkouts=tmp_path / "checkouts",
    )

    assert ledger.release(release_id).version == "v1.0.0"


def test_each_release_witnesses_the_audit_chain_head_in_the_artifact_store(
    bundle_repo: Callable[..., Path], ledger: Ledger, tmp_path: Path
) -> None:
    store = ArtifactStore(tmp_path / "store")

    cut_release(
        BundleSource("example_etl", str(bundle_repo("v1.0.0"))),
        "v1.0.0",
        targets=["dev"],
        test_jobs=[],
        ledger=ledger,
        store=store,
        checkouts=tmp_path / "checkouts",
    )

    head = ledger.audit_head()
    assert head is not None
    assert store.audit_heads() == [{"seq": head.seq, "hash": head.hash, "mac": head.mac}]
