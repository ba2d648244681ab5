"""A release is resolved from a tag, checked out, built once, stored and fetched byte for byte."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import shutil
import subprocess
import sysconfig
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.records import Artifact, Release
from bundle_promotion.release.build import build_artifacts, config_digest
from bundle_promotion.release.git import checkout, resolve_version
from bundle_promotion.release.store import ArtifactStore
from tests.conftest import EXAMPLE_BUNDLE, git

WHEEL = "example_etl-1.0.0-py3-none-any.whl"
FAKE_WHEEL_BUILD = "mkdir -p dist && printf 'wheel bytes' > dist/fake-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class Spec:
    """An artifact's config, shaped like bundle_config.ArtifactConfig."""

    key: str = "wheel"
    type: str = "whl"
    build: str | None = FAKE_WHEEL_BUILD
    path: Path = Path(".")


@dataclass(frozen=True)
class Origin:
    """The example bundle in a git repository: v1.0.0 (annotated) on one commit, v1.1.0 on the next."""

    url: str
    v1_0_0: str
    v1_1_0: str


@dataclass
class MemoryPath:
    """An object store in a dict, duck-typed like Airflow's ObjectStoragePath."""

    files: dict[str, bytes] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    key: str = "memory:/"

    def __truediv__(self, key: str) -> MemoryPath:
        return MemoryPath(self.files, self.writes, f"{self.key}/{key}")

    def exists(self) -> bool:
        return self.key in self.files

    def mkdir(self, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no folders."""

    def read_bytes(self) -> bytes:
        return self.files[self.key]

    def write_bytes(self, data: bytes) -> int:
        self.files[self.key] = data
        self.writes.append(self.key)
        return len(data)


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Origin:
    repo = tmp_path_factory.mktemp("origin")
    shutil.copytree(EXAMPLE_BUNDLE, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("dist"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example bundle")
    git(repo, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
    first = git(repo, "rev-parse", "HEAD")
    with (repo / "resources" / "etl.job.yml").open("a") as job:
        job.write("# changed in 1.1.0\n")
    git(repo, "commit", "-q", "-am", "change the job")
    git(repo, "tag", "v1.1.0")
    return Origin(url=str(repo), v1_0_0=first, v1_1_0=git(repo, "rev-parse", "HEAD"))


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(EXAMPLE_BUNDLE, folder, ignore=shutil.ignore_patterns("dist"))
    return folder


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, list[Artifact]]:
    """A bundle folder with one fake wheel built in it."""
    folder = tmp_path / "built"
    folder.mkdir()
    return folder, build_artifacts(folder, [Spec()])


def release_with(**changes: Any) -> Release:
    release = Release(
        bundle="example_etl",
        version="v1.0.0",
        commit="a" * 40,
        artifacts=(Artifact(WHEEL, f"dist/{WHEEL}", "b" * 64),),
        config_digest="c" * 64,
    )
    return replace(release, **changes)


def test_resolve_version_gives_the_commit_of_a_lightweight_tag(origin: Origin) -> None:
    assert resolve_version(origin.url, "v1.1.0") == origin.v1_1_0


def test_resolve_version_peels_an_annotated_tag_to_its_commit(origin: Origin) -> None:
    assert resolve_version(origin.url, "v1.0.0") == origin.v1_0_0


def test_a_missing_tag_is_reported_with_the_tags_that_exist_newest_first(origin: Origin) -> None:
    with pytest.raises(ReleaseError, match=r"tag 'v2\.0\.0' not found in .*its tags are v1\.1\.0, v1\.0\.0"):
        resolve_version(origin.url, "v2.0.0")


def test_git_errors_never_show_credentials_from_the_repository_url() -> None:
    with pytest.raises(ReleaseError) as raised:
        resolve_version("http://release-bot:s3cret-token@127.0.0.1:1/example.git", "v1.0.0")
    assert "s3cret-token" not in str(raised.value)
    assert "http://127.0.0.1:1/example.git" in str(raised.value)


class GitOverHttp:
    """A bare copy of a repository served over git's dumb HTTP protocol, to one user and token."""

    USER, TOKEN = "release-bot", "s3cret-token"

    def __init__(self, origin: Origin, folder: Path) -> None:
        bare = folder / "example.git"
        folder.mkdir()
        git(folder, "clone", "-q", "--bare", origin.url, str(bare))
        git(bare, "update-server-info")
        expected = "Basic " + base64.b64encode(f"{self.USER}:{self.TOKEN}".encode()).decode()
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self) -> None:  # http.server's name
                paths.append(self.path)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{self.USER}:{self.TOKEN}@127.0.0.1:{self.server.server_port}/example.git"

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


@pytest.fixture
def over_http(origin: Origin, tmp_path: Path) -> Iterator[GitOverHttp]:
    served = GitOverHttp(origin, tmp_path / "served")
    yield served
    served.close()


def test_credentials_in_the_repository_url_reach_git_by_header_never_by_argv(
    over_http: GitOverHttp, origin: Origin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(argv: list[str], **kwargs: Any) -> Any:
        seen.append(list(argv))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)

    commit = resolve_version(over_http.url, "v1.0.0")
    tree = checkout(over_http.url, commit, tmp_path / "checkouts")

    assert commit == origin.v1_0_0
    assert git(tree, "rev-parse", "HEAD") == origin.v1_0_0
    assert over_http.paths  # served over HTTP, with the header
    assert not [argv for argv in seen if any(GitOverHttp.TOKEN in arg for arg in argv)]
    assert GitOverHttp.TOKEN not in (tree / ".git" / "config").read_text()


def test_checkout_puts_the_tree_at_the_commit_under_workdir(origin: Origin, tmp_path: Path) -> None:
    tree = checkout(origin.url, origin.v1_0_0, tmp_path)

    assert tree == tmp_path / origin.v1_0_0
    assert git(tree, "rev-parse", "HEAD") == origin.v1_0_0
    assert "changed in 1.1.0" not in (tree / "resources" / "etl.job.yml").read_text()


def test_checkout_reuses_an_intact_checkout(origin: Origin, tmp_path: Path) -> None:
    tree = checkout(origin.url, origin.v1_0_0, tmp_path)
    (tree / "dist").mkdir()
    (tree / "dist" / WHEEL).write_text("built here before")

    assert checkout(origin.url, origin.v1_0_0, tmp_path) == tree
    assert (tree / "dist" / WHEEL).read_text() == "built here before"


def test_checkout_replaces_a_checkout_whose_tracked_files_changed(origin: Origin, tmp_path: Path) -> None:
    tree = checkout(origin.url, origin.v1_0_0, tmp_path)
    (tree / "databricks.yml").write_text("tampered: true\n")

    checkout(origin.url, origin.v1_0_0, tmp_path)

    assert (tree / "databricks.yml").read_bytes() == (EXAMPLE_BUNDLE / "databricks.yml").read_bytes()


def test_racing_checkouts_of_one_commit_share_one_tree(origin: Origin, tmp_path: Path) -> None:
    start_together = threading.Barrier(2)

    def race(_: int) -> Path:
        start_together.wait()
        return checkout(origin.url, origin.v1_0_0, tmp_path)

    with ThreadPoolExecutor(max_workers=2) as pool:
        trees = set(pool.map(race, range(2)))

    assert trees == {tmp_path / origin.v1_0_0}
    assert [path.name for path in tmp_path.iterdir()] == [origin.v1_0_0]


def test_checkout_wants_a_full_commit_sha(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"'v1\.0\.0' is not a full commit SHA"):
        checkout(origin.url, "v1.0.0", tmp_path)


def test_checkout_of_a_commit_the_repository_lacks_says_so(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=f"commit {'0' * 40} is not in"):
        checkout(origin.url, "0" * 40, tmp_path)


def test_building_the_example_wheel_in_two_checkouts_gives_the_same_sha256(
    origin: Origin, tmp_path: Path
) -> None:
    spec = Spec(key="example_etl_wheel", build="uv build --wheel --offline --quiet")
    first = build_artifacts(checkout(origin.url, origin.v1_0_0, tmp_path / "worker-a"), [spec])
    second = build_artifacts(checkout(origin.url, origin.v1_0_0, tmp_path / "worker-b"), [spec])

    assert first == second
    assert first[0].relative_path == f"dist/{WHEEL}"


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-path", "absolute-path"])
def test_build_records_wheel_paths_relative_to_the_bundle_folder(tmp_path: Path, absolute: bool) -> None:
    (tmp_path / "lib").mkdir()
    path = tmp_path / "lib" if absolute else Path("lib")

    [artifact] = build_artifacts(tmp_path, [Spec(path=path)])

    assert artifact.relative_path == "lib/dist/fake-1.0-py3-none-any.whl"
    assert artifact.name == "fake-1.0-py3-none-any.whl"


def test_build_discards_wheels_left_in_dist_by_earlier_builds(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "stale-0.9-py3-none-any.whl").write_text("old")

    artifacts = build_artifacts(tmp_path, [Spec()])

    assert [artifact.name for artifact in artifacts] == ["fake-1.0-py3-none-any.whl"]


def test_a_failing_build_reports_its_exit_code_and_the_end_of_its_output(tmp_path: Path) -> None:
    noisy_failure = "for i in $(seq 1 50); do echo line $i; done; exit 3"

    with pytest.raises(ReleaseError) as raised:
        build_artifacts(tmp_path, [Spec(build=noisy_failure)])

    message = str(raised.value)
    assert "exit code 3" in message
    assert noisy_failure in message
    assert "line 21\n" in message
    assert "line 50" in message
    assert "line 20\n" not in message


def test_a_build_sees_its_tools_settings_but_no_connection_or_database_of_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_PROD", "databricks://:dapi-prod-token@prod.example.com")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://airflow:db-password@db/airflow")
    monkeypatch.setenv("UV_INDEX_URL", "https://pypi.internal.example.com/simple")

    build_artifacts(tmp_path, [Spec(build=f"env > seen.txt && {FAKE_WHEEL_BUILD}")])

    seen = dict(
        line.split("=", 1) for line in (tmp_path / "seen.txt").read_text().splitlines() if "=" in line
    )
    assert seen["UV_INDEX_URL"] == "https://pypi.internal.example.com/simple"
    assert seen["HOME"] == os.environ["HOME"]
    assert not {"AIRFLOW_CONN_DATABRICKS_PROD", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"} & set(seen)


def test_a_failed_builds_output_carries_no_secret_into_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", "index-s3cret")
    monkeypatch.setenv("UV_INDEX_URL", "https://builder:url-s3cret@pypi.internal.example.com/simple")
    leaky = "echo $UV_INDEX_PRIVATE_PASSWORD; echo $UV_INDEX_URL; exit 1"

    with pytest.raises(ReleaseError) as raised:
        build_artifacts(tmp_path, [Spec(build=leaky)])

    message = str(raised.value)
    assert "s3cret" not in message
    assert "***\nhttps://pypi.internal.example.com/simple" in message


def test_builds_find_the_uv_installed_beside_this_package(tmp_path: Path) -> None:
    build_artifacts(tmp_path, [Spec(build=f"command -v uv > uv-used.txt && {FAKE_WHEEL_BUILD}")])

    used = Path((tmp_path / "uv-used.txt").read_text().strip())
    assert used.parent == Path(sysconfig.get_path("scripts"))


def test_a_build_that_leaves_no_wheel_fails(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="left no wheel"):
        build_artifacts(tmp_path, [Spec(build="true")])


def test_an_artifact_without_a_build_command_names_the_setting_to_add(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match=r"set artifacts\.wheel\.build"):
        build_artifacts(tmp_path, [Spec(build=None)])


def test_only_wheel_artifacts_can_be_built(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="type 'jar'"):
        build_artifacts(tmp_path, [Spec(type="jar")])


def test_an_artifact_folder_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()

    with pytest.raises(ReleaseError, match="must be inside the bundle folder"):
        build_artifacts(bundle, [Spec(path=Path(".."))])


def test_config_digest_changes_when_an_included_file_changes(bundle_dir: Path) -> None:
    before = config_digest(bundle_dir)
    with (bundle_dir / "resources" / "etl.job.yml").open("a") as job:
        job.write("# a comment\n")

    assert config_digest(bundle_dir) != before


def test_config_digest_changes_when_an_include_elsewhere_in_the_repository_changes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "databricks.yml").write_text("bundle: {name: demo}\ninclude: [../shared/*.yml]\n")
    (tmp_path / "shared").mkdir()
    shared = tmp_path / "shared" / "jobs.yml"
    shared.write_text("resources: {jobs: {etl: {name: etl}}}\n")
    before = config_digest(bundle)

    shared.write_text("resources: {jobs: {etl: {name: renamed}}}\n")

    assert config_digest(bundle) != before


def test_config_digest_changes_when_a_config_file_moves(bundle_dir: Path) -> None:
    before = config_digest(bundle_dir)
    (bundle_dir / "resources" / "etl.job.yml").rename(bundle_dir / "resources" / "etl.yml")

    assert config_digest(bundle_dir) != before


def test_config_digest_ignores_the_local_databricks_folder(bundle_dir: Path) -> None:
    before = config_digest(bundle_dir)
    (bundle_dir / ".databricks" / "bundle" / "dev").mkdir(parents=True)
    (bundle_dir / ".databricks" / "bundle" / "dev" / "variables.yml").write_text("catalog: mine\n")

    assert config_digest(bundle_dir) == before


def test_config_digest_ignores_files_that_are_not_yaml(bundle_dir: Path) -> None:
    before = config_digest(bundle_dir)
    (bundle_dir / "src" / "example_etl" / "main.py").write_text("changed = True\n")

    assert config_digest(bundle_dir) == before


@pytest.mark.parametrize(
    "change",
    [
        {"bundle": "other_bundle"},
        {"version": "v1.0.1"},
        {"commit": "d" * 40},
        {"config_digest": "e" * 64},
        {"artifacts": (Artifact(WHEEL, f"dist/{WHEEL}", "f" * 64),)},
        {"artifacts": (Artifact(WHEEL, f"lib/dist/{WHEEL}", "b" * 64),)},
        {"artifacts": ()},
    ],
    ids=["bundle", "version", "commit", "config", "artifact-bytes", "artifact-path", "no-artifacts"],
)
def test_the_release_digest_changes_when_any_part_changes(change: dict[str, Any]) -> None:
    assert release_with(**change).digest != release_with().digest


def test_the_release_digest_does_not_depend_on_artifact_order() -> None:
    a = Artifact("a-1.0-py3-none-any.whl", "dist/a-1.0-py3-none-any.whl", "1" * 64)
    b = Artifact("b-1.0-py3-none-any.whl", "dist/b-1.0-py3-none-any.whl", "2" * 64)

    assert release_with(artifacts=(a, b)).digest == release_with(artifacts=(b, a)).digest


@pytest.mark.parametrize("path", ["/etc/x.whl", "../x.whl", "dist/y.whl"], ids=["absolute", "up", "renamed"])
def test_an_artifact_must_be_a_file_inside_the_bundle_named_by_its_path(path: str) -> None:
    with pytest.raises(ReleaseError, match="must be a file inside the bundle folder"):
        Artifact("x.whl", path, "a" * 64)


def test_fetch_writes_back_the_stored_bytes_where_the_build_put_them(
    built: tuple[Path, list[Artifact]], tmp_path: Path
) -> None:
    folder, artifacts = built
    store = ArtifactStore(tmp_path / "store")
    store.put("digest", folder, artifacts)

    store.fetch("digest", artifacts, tmp_path / "elsewhere")

    relative_path = artifacts[0].relative_path
    assert (tmp_path / "elsewhere" / relative_path).read_bytes() == (folder / relative_path).read_bytes()


def test_put_skips_files_already_stored(built: tuple[Path, list[Artifact]]) -> None:
    folder, artifacts = built
    root = MemoryPath()
    ArtifactStore(root).put("digest", folder, artifacts)

    ArtifactStore(root).put("digest", folder, artifacts)

    assert root.writes == ["memory://digest/fake-1.0-py3-none-any.whl"]


def test_put_rewrites_a_stored_file_cut_short(built: tuple[Path, list[Artifact]]) -> None:
    folder, artifacts = built
    root = MemoryPath({"memory://digest/fake-1.0-py3-none-any.whl": b"wheel"})

    ArtifactStore(root).put("digest", folder, artifacts)

    assert root.files["memory://digest/fake-1.0-py3-none-any.whl"] == b"wheel bytes"


def test_put_refuses_a_file_changed_since_the_build(
    built: tuple[Path, list[Artifact]], tmp_path: Path
) -> None:
    folder, artifacts = built
    (folder / artifacts[0].relative_path).write_text("rebuilt differently")

    with pytest.raises(ReleaseError, match="changed after the build"):
        ArtifactStore(tmp_path / "store").put("digest", folder, artifacts)


def test_fetch_detects_a_corrupted_stored_file(built: tuple[Path, list[Artifact]], tmp_path: Path) -> None:
    folder, artifacts = built
    store = ArtifactStore(tmp_path / "store")
    store.put("digest", folder, artifacts)
    stored = tmp_path / "store" / "digest" / artifacts[0].name
    stored.write_text("corrupted")

    with pytest.raises(ReleaseError) as raised:
        store.fetch("digest", artifacts, tmp_path / "elsewhere")

    message = str(raised.value)
    assert str(stored) in message
    assert artifacts[0].sha256 in message
    assert hashlib.sha256(b"corrupted").hexdigest() in message


def test_fetch_from_a_store_without_the_release_says_what_is_missing(
    built: tuple[Path, list[Artifact]], tmp_path: Path
) -> None:
    _, artifacts = built

    with pytest.raises(
        ReleaseError, match=r"the artifact store has no fake-1\.0-py3-none-any\.whl for release digest"
    ):
        ArtifactStore(tmp_path / "empty-store").fetch("digest", artifacts, tmp_path / "elsewhere")


def test_a_local_repository_that_is_not_there_is_named_with_how_relative_paths_resolve(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "repos" / "sales"

    with pytest.raises(
        ReleaseError, match=r"no git repository at .*repos/sales: .* counts from the spec file's folder"
    ):
        resolve_version(str(missing), "v1.0.0")
