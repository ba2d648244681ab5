"""Each ledger test gets a fresh, migrated SQLite ledger of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle_promotion.ledger import Ledger


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(database: Path) -> Ledger:
    ledger = Ledger(f"sqlite:///{database}")
    ledger.migrate()
    return ledger
