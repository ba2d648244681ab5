"""The ledger's database URL, read from the ``bundle_promotion_ledger`` connection."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from bundle_promotion.hooks.ledger import LedgerHook


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgres_connection_uses_psycopg_3(monkeypatch: pytest.MonkeyPatch, scheme: str) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER", f"{scheme}://ledger:secret@db.internal:5432/promotions"
    )
    url = make_url(LedgerHook().database_url())
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "db.internal",
        5432,
        "promotions",
    )
    assert url.get_dialect().driver == "psycopg"


def test_an_explicit_sqlalchemy_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = "postgresql+psycopg2://ledger@db.internal/promotions"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BUNDLE_PROMOTION_LEDGER",
        json.dumps({"conn_type": "postgres", "host": "other", "extra": {"sqlalchemy_url": explicit}}),
    )
    assert LedgerHook().database_url() == explicit
