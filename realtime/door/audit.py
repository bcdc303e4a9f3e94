"""The door's audit log: an append-only SQLite table whose records are chained by sha256 (tamper evident).

Schema (version :data:`SCHEMA_VERSION` in ``PRAGMA user_version``; ``PRAGMA application_id`` marks an rtv audit
log)::

    meta(key TEXT PRIMARY KEY, value TEXT)       schema_version, created
    events(seq INTEGER PRIMARY KEY, ts, door_id, kind, decision, person, track_id, distance, margin, frames_used,
           threshold, model_sha256, reason, liveness, detail, face_jpeg BLOB, prev_hash, hash)

``kind`` is "decision" (``decision`` GRANT or DENY), "alarm" (camera lost, model error, gallery unreadable),
"hook" (the unlock hook's outcome for an earlier GRANT, ``detail`` says which) or "start"/"stop" (door mode
started with this threshold, stopped). Every record says ``liveness = "none"``: there is no liveness check.

Tamper evidence: ``hash = sha256(prev_hash + canonical JSON of every other column)``, with ``prev_hash`` of the
first record = 64 zeros; the face image enters through its own sha256. :meth:`AuditLog.verify` recomputes the chain
and names the first record whose content, order or link is broken. An edit followed by recomputing every later
hash cannot be caught by the chain alone; neither can cutting records off the end: keep the head hash that
``verify`` prints somewhere else (e.g. a daily e-mail) to anchor it.

Durability: WAL mode, ``synchronous = FULL``, one transaction per record, committed before :meth:`append`
returns (so before any unlock hook runs).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from realtime.errors import AuditError
from realtime.io.sqlite_file import create_schema, identify

SCHEMA_VERSION = 1
APPLICATION_ID = 0x72747661  # b"rtva"
GENESIS = "0" * 64
LIVENESS = "none"
KINDS = ("decision", "alarm", "hook", "start", "stop")
CONTENT_COLUMNS = ("seq", "ts", "door_id", "kind", "decision", "person", "track_id", "distance", "margin",
                   "frames_used", "threshold", "model_sha256", "reason", "liveness", "detail")
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY,"
    " ts TEXT NOT NULL,"
    " door_id TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " decision TEXT,"
    " person TEXT,"
    " track_id INTEGER,"
    " distance REAL,"
    " margin REAL,"
    " frames_used INTEGER,"
    " threshold REAL,"
    " model_sha256 TEXT,"
    " reason TEXT NOT NULL,"
    " liveness TEXT NOT NULL,"
    " detail TEXT,"
    " face_jpeg BLOB,"
    " prev_hash TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE)",
    "CREATE INDEX events_ts ON events(ts)",
)
_ALL_COLUMNS = CONTENT_COLUMNS + ("face_jpeg", "prev_hash", "hash")


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`AuditLog.verify`: ``ok``; ``records`` checked; ``head``: last good hash;
    ``broken_seq``: the first bad record (None when ok) and ``problem``: what is wrong with it."""

    ok: bool
    records: int
    head: str
    broken_seq: int | None = None
    problem: str = ""


def canonical_content(record: Mapping[str, Any], face_jpeg: bytes | None) -> bytes:
    """The bytes that are hashed: sorted-key compact JSON of the content columns plus the image's sha256.

    Floats are written with ``repr`` (exact round trip through SQLite REAL); NaN/inf are stored as NULL.
    """
    content = {k: record.get(k) for k in CONTENT_COLUMNS}
    content["face_jpeg_sha256"] = None if face_jpeg is None else hashlib.sha256(face_jpeg).hexdigest()
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(prev_hash: str, record: Mapping[str, Any], face_jpeg: bytes | None) -> str:
    """``sha256(prev_hash (ASCII hex) + canonical_content(record))`` as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_content(record, face_jpeg)).hexdigest()


class AuditLog:
    """An open audit log. Use :meth:`open`; a context manager; :meth:`close` is safe twice. One thread only."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = connection
        self.path = path

    @classmethod
    def open(cls, path: str | Path, create: bool = True, busy_timeout_s: float = 2.0) -> "AuditLog":
        """Open (or, with ``create``, make) the log at ``path``; :class:`AuditError` saying why not."""
        path = Path(path)
        if path.is_dir():
            raise AuditError(f"audit path {path} is a folder; set door.audit to a file such as {path / 'audit.db'}")
        if not path.exists():
            if not create:
                raise AuditError(f"no audit log at {path}; door mode creates it (check door.audit)")
            if not path.parent.is_dir():
                raise AuditError(f"cannot create audit log {path}: folder {path.parent} does not exist")
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {path}: cannot open ({exc})") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            _read_or_create(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise AuditError(f"audit log {path}: {exc} (is it an rtv audit log? is it corrupt?)") from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditError(f"audit log {self.path} is closed")
        return self._conn

    def append(self, kind: str, door_id: str, reason: str, *, decision: str | None = None,
               person: str | None = None, track_id: int | None = None, distance: float | None = None,
               margin: float | None = None, frames_used: int | None = None, threshold: float | None = None,
               model_sha256: str | None = None, detail: Mapping[str, Any] | None = None,
               face_jpeg: bytes | None = None, ts: str | None = None) -> int:
        """Append one record and commit it (durably) before returning its ``seq``."""
        if kind not in KINDS:
            raise AuditError(f"audit record kind {kind!r} is not one of {', '.join(KINDS)}")
        record: dict[str, Any] = {
            "ts": ts or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "door_id": str(door_id), "kind": kind, "decision": decision, "person": person,
            "track_id": None if track_id is None else int(track_id), "distance": _real(distance),
            "margin": _real(margin), "frames_used": None if frames_used is None else int(frames_used),
            "threshold": _real(threshold), "model_sha256": model_sha256, "reason": str(reason),
            "liveness": LIVENESS,
            "detail": None if detail is None else json.dumps(detail, sort_keys=True, separators=(",", ":")),
        }
        conn = self._db
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (1, GENESIS) if row is None else (int(row[0]) + 1, str(row[1]))
                record["seq"] = seq
                digest = record_hash(prev, record, face_jpeg)
                conn.execute(f"INSERT INTO events ({', '.join(_ALL_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_ALL_COLUMNS))})",
                             [record[c] for c in CONTENT_COLUMNS] + [face_jpeg, prev, digest])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path}: writing a {kind} record failed ({exc})") from exc
        return seq

    def records(self, since: str | None = None, with_faces: bool = False) -> Iterator[dict[str, Any]]:
        """Records in order (``ts >= since`` when given, ISO 8601 UTC text), as dicts of the columns."""
        columns = _ALL_COLUMNS if with_faces else tuple(c for c in _ALL_COLUMNS if c != "face_jpeg")
        sql = f"SELECT {', '.join(columns)} FROM events"
        params: tuple[Any, ...] = ()
        if since:
            sql += " WHERE ts >= ?"
            params = (normalize_since(since),)
        try:
            for row in self._db.execute(sql + " ORDER BY seq", params):
                yield dict(zip(columns, row))
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path}: reading failed ({exc})") from exc

    def verify(self) -> VerifyReport:
        """Walk the chain from the first record; stop at the first record that does not check out."""
        prev = GENESIS
        expected_seq = 1
        count = 0
        for rec in self.records(with_faces=True):
            seq = rec["seq"]
            if seq != expected_seq:
                return VerifyReport(False, count, prev, seq, f"record {seq} follows record {expected_seq - 1}: "
                                    f"record(s) {expected_seq}..{seq - 1} are missing")
            if rec["prev_hash"] != prev:
                return VerifyReport(False, count, prev, seq, f"record {seq} does not link to record {seq - 1} "
                                    "(its prev_hash differs)")
            try:
                digest = record_hash(prev, rec, rec["face_jpeg"])
            except (TypeError, ValueError) as exc:
                return VerifyReport(False, count, prev, seq, f"record {seq} cannot be hashed ({exc})")
            if digest != rec["hash"]:
                return VerifyReport(False, count, prev, seq, f"record {seq} was changed after it was written "
                                    "(its content does not match its hash)")
            prev = digest
            expected_seq += 1
            count += 1
        return VerifyReport(True, count, prev)

    def export_csv(self, path: str | Path, since: str | None = None) -> int:
        """Write the records (without images) as CSV; returns how many."""
        path = Path(path)
        columns = tuple(c for c in _ALL_COLUMNS if c != "face_jpeg")
        tmp = path.with_name(path.name + ".partial")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                n = 0
                for rec in self.records(since=since):
                    writer.writerow(rec)
                    n += 1
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise AuditError(f"cannot write {path}: {exc}") from exc
        return n


def normalize_since(text: str) -> str:
    """An ISO 8601 date or time as the UTC text the log stores (naive times are taken as local time)."""
    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise AuditError(f"--since {text!r} is not an ISO 8601 date or time (e.g. 2025-01-31 or "
                         "2025-01-31T08:00)") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _real(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _read_or_create(conn: sqlite3.Connection, path: Path) -> None:
    found = identify(conn)
    app_id, version, tables = found.application_id, found.version, found.tables
    if found.blank:
        meta = {"schema_version": str(SCHEMA_VERSION),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        create_schema(conn, _SCHEMA, meta, APPLICATION_ID, SCHEMA_VERSION)
        return
    if app_id != APPLICATION_ID:
        raise AuditError(f"{path} is an SQLite database but not an rtv audit log (tables: "
                         f"{', '.join(sorted(tables)) or 'none'}); set door.audit to another file")
    if version != SCHEMA_VERSION:
        raise AuditError(f"audit log {path} has schema version {version}; this rtv reads {SCHEMA_VERSION} "
                         "(upgrade rtv, or start a new log and keep this one)")
    found = tuple(row[1] for row in conn.execute("PRAGMA table_info(events)"))
    if found != _ALL_COLUMNS:
        raise AuditError(f"audit log {path} has a damaged schema (events columns {list(found)})")
