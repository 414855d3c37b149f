"""Count the rows inserted into one table once their transaction commits, from the engine's events.

The ledger's writers (billing) stay unaware of metrics: an INSERT into the watched table is noted on its
connection, and reported when that connection commits; a rollback (or a rolled-back savepoint) forgets what
it undid. Each process counts its own commits, so the sum over replicas is the database's total; no query
runs at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Table, event
from sqlalchemy.sql.dml import Insert

Report = Callable[[str], None]  # called once per committed row with the row's label value


class _Savepoint:
    """Where a savepoint began among the pending rows (savepoints nest: the last one open ends first)."""


class CommittedInserts:
    """Watches `table` on `engine`; `report(row[label_column])` for every committed row."""

    def __init__(self, engine: Engine, table: Table, label_column: str, report: Report) -> None:
        self._engine = engine
        self._table = table
        self._column = label_column
        self._report = report
        self._key = f"lookalike.committed_inserts.{table.name}.{id(self)}"
        self._listeners: list[tuple[str, Callable[..., None]]] = [
            ("after_cursor_execute", self._executed),
            ("commit", self._committed),
            ("rollback", self._rolled_back),
            ("savepoint", self._savepoint),
            ("rollback_savepoint", self._savepoint_rolled_back),
            ("release_savepoint", self._savepoint_released),
        ]
        for name, listener in self._listeners:
            event.listen(engine, name, listener)

    def close(self) -> None:
        for name, listener in self._listeners:
            event.remove(self._engine, name, listener)

    def _pending(self, conn: Connection) -> list[str | _Savepoint]:
        pending: list[str | _Savepoint] = conn.info.setdefault(self._key, [])
        return pending

    def _executed(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        compiled = getattr(context, "compiled", None)
        insert = getattr(compiled, "statement", None)
        if not isinstance(insert, Insert) or insert.table is not self._table:
            return
        # One dict of bound values per inserted row (several for an executemany).
        rows: list[dict[str, Any]] = context.compiled_parameters
        self._pending(conn).extend(str(row.get(self._column, "")) for row in rows)

    def _committed(self, conn: Connection) -> None:
        pending = conn.info.pop(self._key, None)
        for item in pending or ():
            if isinstance(item, str):
                self._report(item)

    def _rolled_back(self, conn: Connection) -> None:
        conn.info.pop(self._key, None)

    def _savepoint(self, conn: Connection, name: str | None) -> None:
        self._pending(conn).append(_Savepoint())

    def _savepoint_rolled_back(self, conn: Connection, name: str, context: Any) -> None:
        pending = self._pending(conn)
        at = self._last_savepoint(pending)
        if at is not None:
            del pending[at:]  # the inserts after the savepoint were undone

    def _savepoint_released(self, conn: Connection, name: str, context: Any) -> None:
        pending = self._pending(conn)
        at = self._last_savepoint(pending)
        if at is not None:
            del pending[at]  # its inserts now belong to the enclosing transaction

    @staticmethod
    def _last_savepoint(pending: list[str | _Savepoint]) -> int | None:
        for at in range(len(pending) - 1, -1, -1):
            if isinstance(pending[at], _Savepoint):
                return at
        return None
