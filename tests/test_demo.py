"""The demo starts Airflow through the interpreter it runs in, activated venv or not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bundle_promotion import demo


def test_the_demo_migrates_airflow_without_the_venv_on_path(
    airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", os.defpath)

    demo._migrate_airflow_db()

    assert airflow_db.exists()
