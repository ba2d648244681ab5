"""The sync root (files outside the bundle folder that `sync.paths` brings in) and `bundle.git`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bundle_promotion.bundle.config.load import load_bundle, validate
from bundle_promotion.bundle.deploy.files import bundle_uploads

SHARED_BUNDLE = """
bundle: {name: demo}
workspace: {root_path: /Shared/demo}
sync:
  paths: [".", "../shared"]
resources:
  jobs:
    etl:
      name: etl
      tasks: [{task_key: common, spark_python_task: {python_file: ../shared/common.py}}]
"""


def make_bundle_with_shared_code(root: Path) -> Path:
    (root / "bundle").mkdir()
    (root / "bundle" / "databricks.yml").write_text(SHARED_BUNDLE)
    (root / "shared").mkdir()
    (root / "shared" / "common.py").write_text("print('shared')\n")
    (root / "elsewhere.py").write_text("print('not synced')\n")
    return root / "bundle"


def test_a_file_outside_the_bundle_but_in_the_sync_root_is_translated_from_the_sync_root(
    tmp_path: Path,
) -> None:
    bundle = load_bundle(make_bundle_with_shared_code(tmp_path), "")

    task = bundle.resources["jobs"]["etl"]["tasks"][0]
    assert task["spark_python_task"]["python_file"] == "/Workspace/Shared/demo/files/shared/common.py"
    assert bundle.sync_root == tmp_path


def test_the_deploy_uploads_the_sync_paths_from_the_sync_root_and_nothing_else(tmp_path: Path) -> None:
    bundle = load_bundle(make_bundle_with_shared_code(tmp_path), "")

    uploads = bundle_uploads(bundle.sync_root, "/files", sync_paths=bundle.sync_paths)

    assert sorted(upload.remote for upload in uploads) == [
        "/files/bundle/databricks.yml",
        "/files/shared/common.py",
    ]


def git(folder: Path, *arguments: str) -> str:
    identity = ["-c", "user.email=dev@example.com", "-c", "user.name=dev"]
    return subprocess.run(
        ["git", *identity, "-C", str(folder), *arguments], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_bundle_git_is_filled_in_from_the_checkout(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "bundles" / "demo"
    folder.mkdir(parents=True)
    (folder / "databricks.yml").write_text("bundle: {name: demo}\nworkspace: {root_path: /Shared/demo}\n")
    git(tmp_path / "repo", "init", "-q", "-b", "main")
    git(tmp_path / "repo", "remote", "add", "origin", "https://token:secret@example.com/org/repo.git")
    git(tmp_path / "repo", "add", ".")
    git(tmp_path / "repo", "commit", "-q", "-m", "first")

    document = validate(folder, "").document

    assert document["bundle"]["git"] == {
        "inferred": True,
        "branch": "main",
        "actual_branch": "main",
        "commit": git(tmp_path / "repo", "rev-parse", "HEAD"),
        "origin_url": "https://example.com/org/repo.git",
        "bundle_root_path": "bundles/demo",
    }


def test_a_branch_the_bundle_sets_is_kept_and_not_inferred(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text(
        "bundle: {name: demo, git: {branch: release}}\nworkspace: {root_path: /Shared/demo}\n"
    )
    git(tmp_path, "init", "-q", "-b", "main")

    found = validate(tmp_path, "").document["bundle"]["git"]

    assert (found["branch"], found["actual_branch"], found["inferred"]) == ("release", "main", False)
    assert "commit" not in found  # nothing committed yet


def test_outside_a_checkout_there_is_no_bundle_git(tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text("bundle: {name: demo}\nworkspace: {root_path: /Shared/demo}\n")

    assert "git" not in validate(tmp_path, "").document["bundle"]
