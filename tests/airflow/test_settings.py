"""The ``[bundle_promotion]`` settings: one answer for the DAG file, the API and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_promotion import settings


def test_the_specs_folder_defaults_to_include_promotions_beside_the_dags_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.delenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", raising=False)
    assert settings.specs_folder() == tmp_path / "include" / "promotions"


def test_a_configured_specs_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__BUNDLE_PROMOTION__SPECS_FOLDER", str(tmp_path / "specs"))
    assert settings.specs_folder() == tmp_path / "specs"
