"""The release task checks every target without asking their workspaces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundle_promotion import settings
from bundle_promotion.operators.release import BuildReleaseOperator
from tests.conftest import ENVIRONMENTS


def test_a_workspace_that_does_not_answer_blocks_no_release(
    bundle_repo: Callable[..., Path], workspaces: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_PROD", "databricks://:token@127.0.0.1:9")  # nothing listens
    operator = BuildReleaseOperator(
        task_id="release",
        bundle="example_etl",
        repo=str(bundle_repo("v1.0.0")),
        version="v1.0.0",
        targets=list(ENVIRONMENTS),
        test_jobs=["integration_tests"],
    )

    release_id = operator.execute({})  # type: ignore[arg-type]  # the task reads nothing of its context

    assert settings.ledger().release(release_id).version == "v1.0.0"
    assert [workspaces.requests(name) for name in ENVIRONMENTS] == [[], [], []]
