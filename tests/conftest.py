"""Session-wide fixtures: one Airflow home with one migrated database, one workspace emulator.

Airflow reads its configuration when first imported, so the environment is set here,
before any test module imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE_BUNDLE = PROJECT / "include" / "example_bundle"
ENVIRONMENTS = ("dev", "staging", "prod")
# Airflow through the interpreter running the tests: the suite needs no activated venv.
AIRFLOW = (sys.executable, "-m", "airflow")

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="bundle-promotion-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        # Fixed here: `airflow db migrate` would write one to airflow.cfg, but a test module that
        # imports Airflow at collection has read the config before that, and the API needs it.
        "AIRFLOW__API_AUTH__JWT_SECRET": "bundle-promotion-tests-only",
    }
)
# Airflow fixes its DAGs folder when airflow.settings is first imported. Imported here, that is
# the session's, whichever test runs first; a test that points the DAGs folder elsewhere for a
# while would otherwise leave every later dag.test() in the session looking there.
import airflow.settings  # noqa: E402, F401


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    return _AIRFLOW_HOME


@pytest.fixture(scope="session")
def airflow_db(airflow_home: Path) -> Path:
    """Airflow's metadata database, migrated once per session (dag.test() needs it)."""
    subprocess.run([*AIRFLOW, "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return airflow_home / "airflow.db"


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """One emulator process for the session; a workspace per environment, each on its own port."""
    from bundle_promotion.testing.workspace import WorkspaceEmulator

    with WorkspaceEmulator(list(ENVIRONMENTS)) as running:
        yield running


@pytest.fixture
def workspaces(emulator: object) -> Iterator[object]:
    """The session emulator, emptied, with an Airflow connection `databricks_<env>` per workspace."""
    from bundle_promotion.testing.workspace import WorkspaceEmulator

    assert isinstance(emulator, WorkspaceEmulator)
    emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        for name in ENVIRONMENTS:
            patch.setenv(f"AIRFLOW_CONN_DATABRICKS_{name.upper()}", emulator.airflow_connection_uri(name))
        yield emulator


@pytest.fixture(scope="session")
def github_emulator() -> Iterator[object]:
    """One GitHub Enterprise emulator for the session."""
    from bundle_promotion.testing.github import GitHubEmulator

    with GitHubEmulator() as running:
        yield running


@pytest.fixture
def github(github_emulator: object) -> Iterator[object]:
    """The session GitHub emulator, emptied, with the Airflow connection `github_default` pointing at it."""
    from bundle_promotion.testing.github import GitHubEmulator

    assert isinstance(github_emulator, GitHubEmulator)
    github_emulator.reset()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_GITHUB_DEFAULT", github_emulator.airflow_connection_json())
        yield github_emulator


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` with a fixed identity, so commits do not depend on the machine."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Release Bot",
        "GIT_AUTHOR_EMAIL": "release-bot@example.com",
        "GIT_COMMITTER_NAME": "Release Bot",
        "GIT_COMMITTER_EMAIL": "release-bot@example.com",
    }
    result = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=env)
    return result.stdout.strip()


@pytest.fixture
def bundle_repo(tmp_path: Path) -> Callable[..., Path]:
    """Make a git repository from the example bundle and tag it; ``edit`` may change files first."""

    def make(tag: str = "v1.0.0", edit: Callable[[Path], None] | None = None) -> Path:
        repo = tmp_path / "example_bundle"
        shutil.copytree(EXAMPLE_BUNDLE, repo, ignore=shutil.ignore_patterns("dist", ".databricks"))
        if edit:
            edit(repo)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "example bundle")
        git(repo, "tag", "-a", tag, "-m", f"release {tag}")
        return repo

    return make
