"""Shared bits of rtv's SQLite files (gallery, audit log): identify a file and lay down its schema atomically."""

from __future__ import annotations

import sqlite3
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
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = frozenset(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    return FileIdentity(int(app_id), int(version), tables)


def create_schema(conn: sqlite3.Connection, statements: Iterable[str], meta: Mapping[str, str],
                  application_id: int, version: int) -> None:
    """In one transaction: the tables, the ``meta`` rows, and the id/version pragmas. All or nothing.

    ``conn`` must be in autocommit mode (``isolation_level=None``); the table ``meta (key, value)`` must be among
    ``statements``.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
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
