"""The ledger's database, reached through an Airflow connection."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from bundle_promotion.ledger import Ledger

# The connection whose password keys the audit trail's MAC: a secret outside the ledger database.
AUDIT_KEY_CONN_ID = "bundle_promotion_audit_key"
# Airflow connection types whose URI scheme SQLAlchemy spells differently. Postgres goes through
# psycopg 3, the driver the `celery` extra installs for Airflow's own database too.
_SQLALCHEMY_SCHEMES = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


class LedgerHook(BaseHook):
    """Opens the ledger named by a connection, or the default SQLite file under ``AIRFLOW_HOME``.

    A connection of type ``sqlite`` keeps the database file path in ``host``; any other type is
    read as a SQLAlchemy URL, with ``extra.sqlalchemy_url`` winning when set.
    """

    conn_name_attr = "ledger_conn_id"
    default_conn_name = "bundle_promotion_ledger"
    conn_type = "generic"
    hook_name = "Bundle promotion ledger"

    def __init__(self, ledger_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ledger_conn_id = ledger_conn_id

    def database_url(self) -> str:
        try:
            connection = self.get_connection(self.ledger_conn_id)
        except AirflowNotFoundException:
            return default_database_url()
        if url := connection.extra_dejson.get("sqlalchemy_url"):
            return str(url)
        if connection.conn_type == "sqlite":
            return f"sqlite:///{connection.host}"
        scheme, rest = connection.get_uri().split("://", 1)
        return f"{_SQLALCHEMY_SCHEMES.get(scheme, scheme)}://{rest}"

    def get_conn(self) -> Ledger:
        return open_ledger(self.database_url())


def airflow_home() -> Path:
    """``AIRFLOW_HOME`` as Airflow resolves it, read when asked so a changed environment counts."""
    return Path(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")))


def default_database_url() -> str:
    return f"sqlite:///{airflow_home() / 'bundle_promotion_ledger.db'}"


@cache
def open_ledger(url: str) -> Ledger:
    """One migrated ledger per database per process: migrating is idempotent but not free."""
    from bundle_promotion.ledger import Ledger

    ledger = Ledger(url, audit_key=audit_key())
    ledger.migrate()
    return ledger


def audit_key() -> bytes | None:
    """The MAC key from the ``bundle_promotion_audit_key`` connection's password (any secrets
    backend); None when it is not configured, and the trail then has no MAC anchor."""
    try:
        password = BaseHook.get_connection(AUDIT_KEY_CONN_ID).password
    except AirflowNotFoundException:
        return None
    return password.encode() if password else None
