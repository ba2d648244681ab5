"""The ledger's database: the engine, the sessions every part of the ``Ledger`` works through.

SQLite runs in WAL mode, with writers taking the write lock at BEGIN IMMEDIATE and queueing
on a busy timeout; Postgres serializes migrations and the audit chain with advisory locks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.models import ReleaseRow

_SQLITE_BUSY_TIMEOUT_MS = 30_000
_WAL_ATTEMPTS = 5
_WAL_RETRY_SECONDS = 0.05
_READ_ONLY = "bundle_promotion_read_only"
MIGRATION_LOCK_KEY = 0x6275_6E64_6C65  # any constant shared by every process; "bundle" in hex
AUDIT_CHAIN_LOCK_KEY = MIGRATION_LOCK_KEY + 1
AUDIT_KEY = "audit_key"  # the write sessions' info key of the audit trail's MAC key
_T = TypeVar("_T")


class LedgerDatabase:
    """The database at ``url`` (any SQLAlchemy URL) and its sessions: what each part of ``Ledger`` shares."""

    def __init__(self, url: str, *, audit_key: bytes | None = None) -> None:
        """``audit_key`` keys a MAC over every audit event; it comes from outside the ledger
        (an Airflow connection or secret), so whoever can rewrite the database cannot forge it."""
        self._url = make_url(url).render_as_string(hide_password=True)
        self._engine = _create_engine(url)
        self._writes = sessionmaker(self._engine, expire_on_commit=False, info={AUDIT_KEY: audit_key})
        self._reads = sessionmaker(self._engine.execution_options(**{_READ_ONLY: True}))

    def _release_row(self, session: Session, release_id: int) -> ReleaseRow:
        row = session.get(ReleaseRow, release_id)
        if row is None:
            raise ReleaseError(self._missing("release", release_id))
        return row

    def _missing(self, kind: str, row_id: int) -> str:
        return (
            f"no {kind} with id {row_id} in the ledger at {self._url}; tasks that run on different "
            "machines must share one ledger (a Postgres URL in the bundle_promotion_ledger connection)"
        )


def retry_once_on_conflict(write: Callable[[], _T]) -> _T:
    # Writes look their row up before inserting it. When a concurrent transaction inserts the
    # same row in between (Postgres' read committed allows it), ours hits the unique
    # constraint; the second try finds that row.
    try:
        return write()
    except IntegrityError:
        return write()


def _create_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy sends BEGIN itself, see below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a transaction that read first and then writes
        # fails with "database is locked" at once instead of waiting out the busy timeout.
        # Readers need no lock in WAL mode.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL, which lets readers and one writer work at once.

    The switch needs a moment of exclusive access and ignores the busy timeout, so two
    processes opening a new database at once can refuse each other; the loser retries.
    """
    for attempt in range(1, _WAL_ATTEMPTS + 1):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == _WAL_ATTEMPTS:
                raise
            time.sleep(_WAL_RETRY_SECONDS * attempt)
