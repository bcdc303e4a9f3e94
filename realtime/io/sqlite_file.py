"""Shared bits of rtv's SQLite files (gallery, audit log): identify a file and lay down its schema atomically."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class FileIdentity:
    """What an SQLite file says it is: ``application_id`` and ``user_version`` pragmas and its table names."""

    application_id: int
    version: int
    tables: frozenset[str]

    @property
    def blank(self) -> bool:
        """A fresh database: no id, no version, no tables."""
        return self.application_id == 0 and self.version == 0 and not self.tables


def identify(conn: sqlite3.Connection) -> FileIdentity:
    """The file's id, version and tables, read in one transaction (so a schema another process commits meanwhile
    is seen whole or not at all)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = frozenset(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        if own and conn.in_transaction:
            conn.execute("COMMIT")
    return FileIdentity(int(app_id), int(version), tables)


def create_schema(conn: sqlite3.Connection, statements: Iterable[str], meta: Mapping[str, str],
                  application_id: int, version: int) -> bool:
    """In one transaction: the tables, the ``meta`` rows, and the id/version pragmas. All or nothing.

    Safe when several processes create the same new file at once: the file is looked at again under the write lock,
    and when another process has laid down a schema meanwhile nothing is written and the result is False (the caller
    then reads the file as an existing one). True when this call made the schema.

    ``conn`` must be in autocommit mode (``isolation_level=None``); the table ``meta (key, value)`` must be among
    ``statements``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not identify(conn).blank:
            conn.execute("ROLLBACK")
            return False
        for statement in statements:
            conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
        conn.execute(f"PRAGMA application_id = {int(application_id)}")
        conn.execute(f"PRAGMA user_version = {int(version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def use_wal(conn: sqlite3.Connection, busy_timeout_s: float) -> None:
    """Put the file in WAL mode (persistent). Switching needs a moment of exclusive access, and SQLite reports
    "locked" at once (without its busy wait) when another process is opening the same new file: retry for up to
    ``busy_timeout_s``, then let the last :class:`sqlite3.OperationalError` through."""
    deadline = time.monotonic() + max(0.0, float(busy_timeout_s))
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)  # a lock held by another process, not a condition of ours: short waits, bounded


def schema_cookie(conn: sqlite3.Connection) -> int:
    """SQLite's schema version: it changes whenever any schema object (table, index, view, trigger) is made,
    changed or dropped, by this connection or another."""
    return int(conn.execute("PRAGMA schema_version").fetchone()[0])


def expected_schema(statements: Iterable[str]) -> list[tuple[str, str, str, str | None]]:
    """``(type, name, tbl_name, sql)`` of every schema object ``statements`` make, from an in-memory copy (so
    SQLite's own implicit indexes are included), sorted by type and name: what a file made by rtv holds."""
    with sqlite3.connect(":memory:") as conn:
        for statement in statements:
            conn.execute(statement)
        return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(),
                      key=lambda row: (row[0], row[1]))


#: ANALYZE's statistics tables: hints for the query planner only, never part of a file's schema check.
PLANNER_TABLES = ("sqlite_stat1", "sqlite_stat4")


def schema_difference(conn: sqlite3.Connection, statements: Iterable[str]) -> str | None:
    """None when the file's schema objects are exactly those ``statements`` make (ANALYZE's statistics aside),
    else the first difference in words: an object rtv did not make (a trigger, a view, an index, a table, a changed
    definition) or one that is missing."""
    found = sorted((row for row in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
                    if not (row[0] == "table" and row[1] in PLANNER_TABLES)), key=lambda row: (row[0], row[1]))
    expected = expected_schema(statements)
    if found == expected:
        return None
    extra = [row for row in found if row not in expected]
    if extra:
        kind, name, table, _sql = extra[0]
        return f"{kind} {name!r} on {table!r} that rtv did not make (or that was changed)"
    kind, name, _table, _sql = next(row for row in expected if row not in found)
    return f"no {kind} {name!r}"
