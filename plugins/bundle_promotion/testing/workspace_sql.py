"""SQL statements on a warehouse (``/api/2.0/sql/statements``) over in-memory Delta-like tables.

Each table keeps every version of its rows, so ``DESCRIBE HISTORY`` and ``RESTORE TABLE …
TO VERSION AS OF n`` behave like Delta's. Understood statements: ``CREATE TABLE [IF NOT
EXISTS] t (col type, …)``, ``INSERT INTO t VALUES (…), …``, ``SELECT * FROM t``,
``DESCRIBE HISTORY t``, ``RESTORE [TABLE] t [TO] VERSION AS OF n``. As on the real API, a
statement that fails answers HTTP 200 with ``status.state`` ``FAILED`` and the error inside.
Statements run at once; with ``wait_timeout`` ``0s`` the first answer is ``PENDING``.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bundle_promotion.testing.workspace_protocol import IdSequence

_NAME = r"(?P<table>`?[\w]+`?(?:\.`?[\w]+`?){0,2})"
_STATEMENTS = {
    "create": re.compile(
        rf"^CREATE\s+TABLE\s+(?P<if_not_exists>IF\s+NOT\s+EXISTS\s+)?{_NAME}\s*\((?P<columns>.*)\)$",
        re.I | re.S,
    ),
    "insert": re.compile(rf"^INSERT\s+INTO\s+{_NAME}\s+VALUES\s*(?P<values>.+)$", re.I | re.S),
    "select": re.compile(rf"^SELECT\s+\*\s+FROM\s+{_NAME}$", re.I),
    "history": re.compile(rf"^DESCRIBE\s+HISTORY\s+{_NAME}$", re.I),
    "restore": re.compile(
        rf"^RESTORE\s+(?:TABLE\s+)?{_NAME}\s+(?:TO\s+)?VERSION\s+AS\s+OF\s+(?P<version>\d+)$", re.I
    ),
}
_HISTORY_COLUMNS = (
    ("version", "BIGINT"),
    ("timestamp", "TIMESTAMP"),
    ("userName", "STRING"),
    ("operation", "STRING"),
    ("operationParameters", "MAP<STRING,STRING>"),
    ("readVersion", "BIGINT"),
)
_RESTORE_COLUMNS = (
    ("table_size_after_restore", "BIGINT"),
    ("num_of_files_after_restore", "BIGINT"),
    ("num_removed_files", "BIGINT"),
    ("num_restored_files", "BIGINT"),
)


class StatementFailed(Exception):
    """A statement the warehouse rejected: it ends ``FAILED`` with this error class and message."""

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(f"[{error_class}] {message}")
        self.status = {"state": "FAILED", "error": {"error_code": "BAD_REQUEST", "message": str(self)}}


@dataclass
class TableVersion:
    version: int
    timestamp: datetime
    user_name: str
    operation: str
    parameters: dict[str, str]
    rows: list[list[Any]]


@dataclass
class Table:
    name: str
    columns: list[tuple[str, str]]
    versions: list[TableVersion] = field(default_factory=list)

    @property
    def current(self) -> TableVersion:
        return self.versions[-1]

    def commit(
        self, user_name: str, operation: str, parameters: dict[str, str], rows: list[list[Any]]
    ) -> None:
        number = len(self.versions)
        self.versions.append(TableVersion(number, datetime.now(UTC), user_name, operation, parameters, rows))


@dataclass(frozen=True)
class Result:
    columns: tuple[tuple[str, str], ...]
    rows: list[list[Any]]


class SqlWarehouse:
    """Every warehouse of one workspace, sharing one metastore of tables."""

    def __init__(self, ids: IdSequence, user_name: str) -> None:
        self._ids = ids
        self._user_name = user_name
        self._tables: dict[str, Table] = {}
        self.statements: dict[str, dict[str, Any]] = {}

    def execute(self, statement: str, warehouse_id: str) -> dict[str, Any]:
        """The statement's response, as ``GET /api/2.0/sql/statements/{id}`` will repeat it."""
        statement_id = f"01ef{self._ids.next():028x}"
        try:
            answer = _succeeded(self.run(statement.strip().rstrip(";").strip()))
        except StatementFailed as failed:
            answer = {"status": failed.status}
        self.statements[statement_id] = {"statement_id": statement_id, **answer}
        return self.statements[statement_id]

    def run(self, statement: str) -> Result:
        for kind, pattern in _STATEMENTS.items():
            if match := pattern.match(statement):
                return getattr(self, f"_{kind}")(match)
        raise StatementFailed("PARSE_SYNTAX_ERROR", f"Syntax error at or near '{statement.split()[0]}'.")

    def _create(self, match: re.Match[str]) -> Result:
        name = _table_name(match["table"])
        if name in self._tables:
            if match["if_not_exists"]:
                return Result((), [])
            raise StatementFailed("TABLE_OR_VIEW_ALREADY_EXISTS", f"Cannot create table `{name}`: it exists.")
        columns = [tuple(column.split()[:2]) for column in match["columns"].split(",")]
        table = Table(name, [(column[0], column[1].upper()) for column in columns])
        table.commit(self._user_name, "CREATE TABLE", {"isManaged": "true"}, [])
        self._tables[name] = table
        return Result((), [])

    def _insert(self, match: re.Match[str]) -> Result:
        table = self._table(match["table"])
        rows = _values(match["values"])
        if any(len(row) != len(table.columns) for row in rows):
            raise StatementFailed(
                "INSERT_COLUMN_ARITY_MISMATCH", f"`{table.name}` has {len(table.columns)} columns."
            )
        table.commit(self._user_name, "WRITE", {"mode": "Append"}, table.current.rows + rows)
        return Result(
            (("num_affected_rows", "BIGINT"), ("num_inserted_rows", "BIGINT")), [[len(rows), len(rows)]]
        )

    def _select(self, match: re.Match[str]) -> Result:
        table = self._table(match["table"])
        return Result(tuple(table.columns), [list(row) for row in table.current.rows])

    def _history(self, match: re.Match[str]) -> Result:
        table = self._table(match["table"])
        rows = [
            [
                v.version,
                v.timestamp.isoformat(),
                v.user_name,
                v.operation,
                json.dumps(v.parameters),
                v.version - 1 if v.version else None,
            ]
            for v in reversed(table.versions)
        ]
        return Result(_HISTORY_COLUMNS, rows)

    def _restore(self, match: re.Match[str]) -> Result:
        table = self._table(match["table"])
        version = int(match["version"])
        if version >= len(table.versions):
            raise StatementFailed(
                "DELTA_CANNOT_RESTORE_TABLE_VERSION",
                f"Cannot restore table to version {version}. "
                f"Available versions: [0, {len(table.versions) - 1}].",
            )
        rows = [list(row) for row in table.versions[version].rows]
        table.commit(self._user_name, "RESTORE", {"version": str(version)}, rows)
        return Result(_RESTORE_COLUMNS, [[len(rows), 1 if rows else 0, 1, 1 if rows else 0]])

    def _table(self, written: str) -> Table:
        name = _table_name(written)
        table = self._tables.get(name)
        if table is None:
            raise StatementFailed(
                "TABLE_OR_VIEW_NOT_FOUND", f"The table or view `{name}` cannot be found. SQLSTATE: 42P01"
            )
        return table


def _table_name(written: str) -> str:
    return written.replace("`", "").lower()


def _values(text: str) -> list[list[Any]]:
    """``(1, 'a'), (2, 'b')`` as rows; SQL literals read as Python ones, which they match here."""
    try:
        parsed = ast.literal_eval(f"[{text}]".replace("NULL", "None").replace("null", "None"))
    except (SyntaxError, ValueError) as error:
        raise StatementFailed("PARSE_SYNTAX_ERROR", f"Cannot read the VALUES: {error}") from error
    return [list(row) if isinstance(row, tuple) else [row] for row in parsed]


def _succeeded(result: Result) -> dict[str, Any]:
    columns = [
        {"name": name, "type_name": kind.split("<")[0], "type_text": kind, "position": position}
        for position, (name, kind) in enumerate(result.columns)
    ]
    data = [[None if value is None else str(value) for value in row] for row in result.rows]
    answer: dict[str, Any] = {
        "status": {"state": "SUCCEEDED"},
        "manifest": {
            "format": "JSON_ARRAY",
            "schema": {"column_count": len(columns), "columns": columns},
            "total_row_count": len(data),
            "total_chunk_count": 1 if data else 0,
            "truncated": False,
        },
    }
    if data:
        answer["result"] = {"chunk_index": 0, "row_offset": 0, "row_count": len(data), "data_array": data}
    return answer
