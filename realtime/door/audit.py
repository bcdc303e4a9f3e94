"""The door's audit log: an append-only SQLite table whose records are chained by sha256 or by a keyed MAC.

Schema (version :data:`SCHEMA_VERSION` in ``PRAGMA user_version``; ``PRAGMA application_id`` marks an rtv audit
log)::

    meta(key TEXT PRIMARY KEY, value TEXT)       schema_version, created, mac ("sha256" or "hmac-sha256"), key_id
    events(seq INTEGER PRIMARY KEY, ts, door_id, kind, decision, person, track_id, distance, margin, frames_used,
           threshold, model_sha256, reason, liveness, detail, face_jpeg BLOB, prev_hash, hash)

``kind`` is "decision" (``decision`` GRANT or DENY), "alarm" (camera lost, model error, gallery unreadable),
"recovery" (what an alarm was about is back), "hook" (the unlock hook's outcome for an earlier GRANT, ``detail``
says which), "start"/"stop" (door mode started with this threshold, stopped) or "admin" (an administrator's
action in ``rtv serve``: ``detail`` says who, what and through which interface). Every record says
``liveness = "none"``: there is no liveness check.

Tamper evidence: ``hash = D(prev_hash + canonical JSON of every other column)``, the face image entering through its
own sha256. ``D`` is sha256, or, when the log was made with a key file (``door.audit_key_file``), HMAC-SHA256 with
that key: then nobody without the key can rewrite or extend the log so that it verifies. The first record's
``prev_hash`` is ``D`` of the ``meta`` table (the anchor), so the meta rows are covered too. :meth:`AuditLog.verify`
recomputes everything and names the first record whose content, order or link is broken.

What a chain alone cannot show: records cut off the end, and (without a key) a chain recomputed after an edit.
:meth:`AuditLog.head` gives ``SEQ:HASH`` of the last record; keep it somewhere else (a daily e-mail, another
machine) and pass it back to ``verify(expect_head=...)``: a log that no longer holds that record, or holds a
different one, fails.

The schema itself is checked when the log is opened and again whenever SQLite's schema cookie changes: any trigger,
view, index or table that rtv did not make (``CREATE TRIGGER ... AFTER INSERT ON events BEGIN DELETE ...``) makes
the log refused. Each record is read back after its commit and compared with what was written.

Durability: WAL mode, ``synchronous = FULL``, one transaction per record, committed (and read back) before
:meth:`append` returns, so before any unlock hook runs.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from realtime.data_dir import prepare_parent
from realtime.errors import AuditError, ConfigError, SinkError
from realtime.gallery.names import spreadsheet_cell
from realtime.io.sqlite_file import create_schema, identify, schema_cookie, schema_difference, use_wal

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: genesis of 64 zeros, meta not covered, sha256 only; read and verify only
APPLICATION_ID = 0x72747661  # b"rtva"
GENESIS = "0" * 64
LIVENESS = "none"
KINDS = ("decision", "alarm", "recovery", "hook", "start", "stop", "admin")  # admin: a console or API action
MAC_SHA256 = "sha256"
MAC_HMAC = "hmac-sha256"
MIN_KEY_BYTES = 32
MAX_KEY_BYTES = 4096
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
_HEAD_RE = re.compile(r"^(\d{1,18}):([0-9a-f]{64})$")


@dataclass(frozen=True)
class VerifyReport:
    """Result of :meth:`AuditLog.verify`: ``ok``; ``records`` checked; ``head``: last good hash and
    ``head_seq`` its record (0: the anchor, no record); ``broken_seq``: the first bad record (None when ok, or when
    the problem is the end of the log) and ``problem``: what is wrong."""

    ok: bool
    records: int
    head: str
    broken_seq: int | None = None
    problem: str = ""
    head_seq: int = 0

    @property
    def head_text(self) -> str:
        """``SEQ:HASH``, what ``rtv audit head`` prints and ``--expect-head`` takes."""
        return f"{self.head_seq}:{self.head}"


def canonical_content(record: Mapping[str, Any], face_jpeg: bytes | None) -> bytes:
    """The bytes that are hashed: sorted-key compact JSON of the content columns plus the image's sha256.

    Floats are written with ``repr`` (exact round trip through SQLite REAL); NaN/inf are stored as NULL.
    """
    content = {k: record.get(k) for k in CONTENT_COLUMNS}
    content["face_jpeg_sha256"] = None if face_jpeg is None else hashlib.sha256(face_jpeg).hexdigest()
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _digest(data: bytes, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def record_hash(prev_hash: str, record: Mapping[str, Any], face_jpeg: bytes | None, key: bytes | None = None) -> str:
    """``D(prev_hash (ASCII hex) + canonical_content(record))`` as hex; ``D`` is sha256, or HMAC-SHA256 with
    ``key``."""
    return _digest(prev_hash.encode("ascii") + canonical_content(record, face_jpeg), key)


def meta_anchor(meta: Mapping[str, str], key: bytes | None = None) -> str:
    """The first record's ``prev_hash`` (schema 2): ``D`` of the meta rows as sorted compact JSON."""
    text = json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _digest(b"rtv-audit-meta\n" + text.encode("utf-8"), key)


def key_id(key: bytes) -> str:
    """A name for a key that says nothing about it: the first 16 hex digits of an HMAC of a fixed text."""
    return hmac.new(key, b"rtv-audit-key-id", hashlib.sha256).hexdigest()[:16]


def load_key(path: str | os.PathLike, setting: str = "door.audit_key_file") -> bytes:
    """The key in a key file (its bytes, surrounding white space removed): :class:`ConfigError` naming
    ``setting`` when it is missing, unreadable, not a regular file, shorter than :data:`MIN_KEY_BYTES` or longer
    than :data:`MAX_KEY_BYTES`. Make one with ``rtv audit keygen FILE``."""
    import stat as _stat

    p = Path(path)
    try:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise ConfigError(f"{setting}={str(p)!r}: no such key file (make one with 'rtv audit keygen FILE')") \
                from None
        if _stat.S_ISDIR(st.st_mode):
            raise ConfigError(f"{setting}={str(p)!r} is a folder, not a key file")
        if not _stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{setting}={str(p)!r} is not a regular file (a device or pipe), so not a key file")
        if st.st_mode & 0o077:
            import logging

            logging.getLogger(__name__).warning(
                "%s=%s is readable or writable by other users (mode %o); anyone who can read it can forge the log: "
                "chmod 600 it", setting, p, _stat.S_IMODE(st.st_mode))
        with open(p, "rb") as fh:
            if fh.read(15) == b"SQLite format 3":
                raise ConfigError(f"{setting}={str(p)!r} is an SQLite database, not a key file; the key must live "
                                  "outside the audit log")
        if p.stat().st_size > MAX_KEY_BYTES:
            raise ConfigError(f"{setting}={str(p)!r}: {p.stat().st_size} bytes is too long for a key file "
                              f"(at most {MAX_KEY_BYTES}); is it the right file?")
        key = p.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{setting}={str(p)!r}: cannot read the key file ({exc.strerror or exc})") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{setting}={str(p)!r}: the key has {len(key)} bytes, fewer than {MIN_KEY_BYTES}; make "
                          "one with 'rtv audit keygen FILE'")
    return key


def write_key_file(path: str | os.PathLike) -> str:
    """Create a new key file (64 random hex digits, mode 0600) at ``path``, never replacing a file; returns the
    key id. :class:`SinkError` when the path exists or cannot be written."""
    p = Path(path)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SinkError(f"{p} already exists; a key file is never replaced (pick a new path)") from None
    except OSError as exc:
        raise SinkError(f"cannot create key file {p}: {exc.strerror or exc}") from None
    text = secrets.token_hex(32)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        p.unlink(missing_ok=True)
        raise SinkError(f"cannot write key file {p}: {exc.strerror or exc}") from None
    return key_id(text.encode("ascii"))


def parse_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as :meth:`AuditLog.head` gives it) -> ``(seq, hash)``; :class:`ConfigError` otherwise."""
    match = _HEAD_RE.match(str(text).strip().lower())
    if match is None:
        raise ConfigError(f"head {text!r} is not SEQ:HASH (a record number, a colon and 64 hex digits, as "
                          "'rtv audit head' prints it)")
    return int(match.group(1)), match.group(2)


class AuditLog:
    """An open audit log. Use :meth:`open`; a context manager; :meth:`close` is safe twice. One thread only."""

    def __init__(self, connection: sqlite3.Connection, path: Path, meta: Mapping[str, str], version: int,
                 key: bytes | None) -> None:
        self._conn: sqlite3.Connection | None = connection
        self.path = path
        self.meta = dict(meta)
        self.version = version
        self._key = key
        self._schema_cookie = schema_cookie(connection)
        self.kept_path: Path | None = None  # where the log went after the file at ``path`` was swapped
        self._remember_file()

    @classmethod
    def open(cls, path: str | Path, create: bool = True, busy_timeout_s: float = 2.0, *,
             key: bytes | None = None) -> "AuditLog":
        """Open (or, with ``create``, make) the log at ``path``; :class:`AuditError` saying why not.

        ``key`` (from :func:`load_key`): a new log is made keyed (HMAC-SHA256); an existing keyed log must have been
        made with this key. Reading (``records``, ``export_csv``) works without the key; ``append``, ``verify``
        and ``head`` of a keyed log need it.
        """
        path = Path(path)
        if path.is_dir():
            raise AuditError(f"audit path {path} is a folder; set door.audit to a file such as {path / 'audit.db'}")
        if not path.exists():
            if not create:
                raise AuditError(f"no audit log at {path}; door mode creates it (check door.audit)")
            prepare_parent(path)  # the default audit log's data folder is made on first use
            if not path.parent.is_dir():
                raise AuditError(f"cannot create audit log {path}: folder {path.parent} does not exist")
        try:
            conn = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None)
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {path}: cannot open ({exc})") from exc
        try:
            conn.execute("PRAGMA trusted_schema = OFF")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            meta, version = _read_or_create(conn, path, key, create)
            use_wal(conn, busy_timeout_s)
            log = cls(conn, path, meta, version, key)
            log._check_key()
        except sqlite3.Error as exc:
            conn.close()
            if _disk_full(path, exc):
                raise AuditError(f"audit log {path}: the disk is full ({exc}); free space in {path.parent} and "
                                 "start the door again") from exc
            raise AuditError(f"audit log {path}: {exc} (is it an rtv audit log? is it corrupt?)") from exc
        except BaseException:
            conn.close()
            raise
        return log

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

    @property
    def keyed(self) -> bool:
        """Whether the log's records are HMAC-SHA256 MACs (made with a key file)."""
        return self.meta.get("mac") == MAC_HMAC

    @property
    def anchor(self) -> str:
        """What the first record links to: 64 zeros (schema 1) or the MAC/hash of the meta rows."""
        return GENESIS if self.version == 1 else meta_anchor(self.meta, self._key if self.keyed else None)

    def _check_key(self) -> None:
        if self.keyed and self._key is not None and key_id(self._key) != self.meta.get("key_id"):
            raise AuditError(f"audit log {self.path} was written with another key (key id "
                             f"{self.meta.get('key_id')}, the key file gives {key_id(self._key)}); set "
                             "door.audit_key_file to the key this log was made with")

    def _need_key(self, action: str) -> bytes | None:
        """The key to compute MACs with for ``action`` (None: plain sha256); refuses what cannot be checked."""
        if self.keyed:
            if self._key is None:
                raise AuditError(f"audit log {self.path} is keyed (HMAC-SHA256, key id {self.meta.get('key_id')}): "
                                 f"{action} needs its key; set door.audit_key_file (or pass --key-file)")
            return self._key
        if self._key is not None:
            raise AuditError(f"audit log {self.path} has no key (plain sha256 chain), but a key file is set: it was "
                             "not made with this key (replaced by another file?); keep it as evidence, or unset "
                             "door.audit_key_file to read it as an unkeyed log")
        return None

    def append(self, kind: str, door_id: str, reason: str, *, decision: str | None = None,
               person: str | None = None, track_id: int | None = None, distance: float | None = None,
               margin: float | None = None, frames_used: int | None = None, threshold: float | None = None,
               model_sha256: str | None = None, detail: Mapping[str, Any] | None = None,
               face_jpeg: bytes | None = None, ts: str | None = None) -> int:
        """Append one record, commit it (durably) and read it back before returning its ``seq``.

        :class:`AuditError` when the log's schema has been altered, the record is not there (unchanged, as the
        last one) after the commit, or the write fails: the caller must then not act on the event (no unlock).
        """
        if kind not in KINDS:
            raise AuditError(f"audit record kind {kind!r} is not one of {', '.join(KINDS)}")
        if self.version != SCHEMA_VERSION:
            raise AuditError(f"audit log {self.path} has schema version {self.version}, which this rtv reads but "
                             "does not extend; keep it, and set door.audit to a new file")
        key = self._need_key("appending")
        record: dict[str, Any] = {
            "ts": ts or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "door_id": str(door_id), "kind": kind, "decision": decision, "person": person,
            "track_id": None if track_id is None else int(track_id), "distance": _real(distance),
            "margin": _real(margin), "frames_used": None if frames_used is None else int(frames_used),
            "threshold": _real(threshold), "model_sha256": model_sha256, "reason": str(reason),
            "liveness": LIVENESS,
            "detail": None if detail is None else json.dumps(detail, sort_keys=True, separators=(",", ":")),
        }
        self.watch()
        conn = self._db
        try:
            _begin_immediate(conn, self.path)
            try:
                cookie = schema_cookie(conn)
                if cookie != self._schema_cookie:  # someone changed the schema since we looked: look again
                    _check_schema(conn, self.path)
                    self._schema_cookie = cookie
                row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (1, self.anchor) if row is None else (int(row[0]) + 1, str(row[1]))
                record["seq"] = seq
                digest = record_hash(prev, record, face_jpeg, key)
                values = [record[c] for c in CONTENT_COLUMNS] + [face_jpeg, prev, digest]
                conn.execute(f"INSERT INTO events ({', '.join(_ALL_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(_ALL_COLUMNS))})", values)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._read_back(seq, values, kind)
            self._remember_file()
        except sqlite3.Error as exc:
            if _disk_full(self.path, exc):
                raise AuditError(f"audit log {self.path}: the disk is full; the {kind} record was not written "
                                 f"({exc}); free space in {self.path.parent}") from exc
            raise AuditError(f"audit log {self.path}: writing a {kind} record failed ({exc})") from exc
        return seq

    def grants_without_hook(self, since_seq: int) -> list[tuple[int, str | None]]:
        """``(seq, person)`` of every GRANT after record ``since_seq`` that no hook record refers to (the door
        logs those as not run when it stops, so no GRANT is left without its hook outcome)."""
        rows = self._db.execute("SELECT seq, kind, decision, person, detail FROM events WHERE seq > ? ORDER BY seq",
                                (int(since_seq),)).fetchall()
        hooked = set()
        for _seq, kind, _decision, _person, detail in rows:
            if kind == "hook" and detail:
                try:
                    hooked.add(int(json.loads(detail).get("grant_seq")))
                except (ValueError, TypeError, AttributeError):
                    pass
        return [(seq, person) for seq, kind, decision, person, _detail in rows
                if kind == "decision" and decision == "GRANT" and seq not in hooked]

    # ------------------------------------------------------------------------------------- watching the file
    def _remember_file(self) -> None:
        """What :meth:`watch` compares with: the file's (device, inode) and size, SQLite's data_version, the last
        record (seq, hash)."""
        conn = self._db
        try:
            st = os.stat(self.path)
            self._file_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
            self._file_size = st.st_size
        except OSError:
            self._file_id, self._file_size = None, 0
        self._data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self._last: tuple[int, str] | None = None if row is None else (int(row[0]), str(row[1]))

    def _tampering(self) -> str | None:
        """Why the log on disk is no longer the one this process writes, or None."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return "was deleted or moved away"
        except OSError as exc:
            return f"cannot be looked at ({exc.strerror or exc})"
        if self._file_id is not None and (st.st_dev, st.st_ino) != self._file_id:
            return "was replaced by another file (its inode changed)"
        if st.st_size < self._file_size:
            return f"shrank from {self._file_size} to {st.st_size} bytes"
        conn = self._db
        cookie = schema_cookie(conn)
        if cookie != self._schema_cookie:
            try:
                _check_schema(conn, self.path)
            except AuditError as exc:
                return f"had its schema changed ({exc})"
            self._schema_cookie = cookie
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version != self._data_version:  # another connection wrote: our records must be as we left them
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            head = None if row is None else (int(row[0]), str(row[1]))
            if head != self._last:
                return (f"was written by another program (last record {head and head[0]}, the door's was "
                        f"{self._last and self._last[0]})")
            try:
                report = self.verify(expect_head=self._last)
            except AuditError as exc:
                return str(exc)
            if not report.ok:
                return f"was changed by another program ({report.problem})"
            self._data_version = version
        return None

    def watch(self) -> None:
        """Check that the file at ``path`` is still the log this process writes (device and inode, size never
        shrinking, SQLite's schema and data_version, the last record); the door calls it every frame and
        :meth:`append` before every record. When it is not, the log as this process holds it (every record up
        to now, plus an alarm record saying what happened) is saved beside it as ``<name>.kept-<UTC>.sqlite``,
        later records (the stop record) go there, and :class:`AuditError` is raised: the caller grants nothing
        and stops (fail-secure)."""
        if self._conn is None:
            raise AuditError(f"audit log {self.path} is closed")
        problem = self._tampering()
        if problem is None:
            return
        shown = self.path
        swapped = problem.startswith(("was deleted", "was replaced", "shrank"))
        # only the door's own file (still open, unlinked or not) takes the alarm; never a file someone changed
        kept = self._keep_evidence(f"the audit log file {problem} while the door was writing it") if swapped \
            else None
        if not swapped:
            raise AuditError(f"audit log {shown} {problem}; nothing is granted and the door stops. Keep the file "
                             "as evidence and start the door with a new door.audit")
        where = (f"the log as the door kept it, with an alarm record, is saved as {kept}" if kept else
                 "the door's own copy could not be saved")
        raise AuditError(f"audit log {shown} {problem}; nothing is granted and the door stops; {where}. Keep "
                         "both files as evidence and start the door with a new door.audit")

    def _keep_evidence(self, reason: str) -> Path | None:
        conn = self._db
        try:
            _check_schema(conn, self.path)
            key = self._need_key("appending")
            _begin_immediate(conn, self.path, budget_s=2.0)
            row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (1, self.anchor) if row is None else (int(row[0]) + 1, str(row[1]))
            record = {c: None for c in CONTENT_COLUMNS}
            record.update(seq=seq, ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                          door_id="", kind="alarm", reason=reason, liveness=LIVENESS,
                          detail=json.dumps({"alarm": "audit"}, separators=(",", ":")))
            values = [record[c] for c in CONTENT_COLUMNS] + [None, prev, record_hash(prev, record, None, key)]
            conn.execute(f"INSERT INTO events ({', '.join(_ALL_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(_ALL_COLUMNS))})", values)
            conn.execute("COMMIT")
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            kept = self.path.with_name(f"{self.path.name}.kept-{stamp}.sqlite")
            n = 0
            while os.path.lexists(kept):
                n += 1
                kept = self.path.with_name(f"{self.path.name}.kept-{stamp}-{n}.sqlite")
            target = sqlite3.connect(str(kept))
            try:
                conn.backup(target)
            finally:
                target.close()
            conn.close()
            self._conn = sqlite3.connect(str(kept), timeout=2.0, isolation_level=None)
            self._conn.execute("PRAGMA trusted_schema = OFF")
            self._conn.execute("PRAGMA synchronous = FULL")
            self.path = kept
            self.kept_path = kept
            self._schema_cookie = schema_cookie(self._conn)
            self._remember_file()
            return kept
        except (sqlite3.Error, OSError, AuditError):
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            return None

    def _read_back(self, seq: int, values: list[Any], kind: str) -> None:
        conn = self._db
        row = conn.execute(f"SELECT {', '.join(_ALL_COLUMNS)} FROM events WHERE seq = ?", (seq,)).fetchone()
        last = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
        if row is None or list(row) != values or last != seq:
            what = "is missing" if row is None else ("differs from what was written" if list(row) != values
                                                     else f"is followed by record {last} already")
            raise AuditError(f"audit log {self.path}: the {kind} record #{seq} {what} after its commit; the "
                             "database has been tampered with (a trigger, or another writer). Keep the file as "
                             "evidence and start a new log")

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

    def verify(self, expect_head: str | tuple[int, str] | None = None) -> VerifyReport:
        """Walk the chain from the anchor; stop at the first record that does not check out.

        ``expect_head``: a head kept from earlier (``"SEQ:HASH"``): the log must still hold that record with that
        hash (it may have grown since), else the report says the end was cut off or the log was rewritten.
        """
        key = self._need_key("verifying")
        wanted = parse_head(expect_head) if isinstance(expect_head, str) else expect_head
        try:
            self._check_meta()
        except AuditError as exc:
            return VerifyReport(False, 0, "", 1, str(exc))
        prev = self.anchor
        expected_seq = 1
        count = 0
        seen_wanted: str | None = None
        for rec in self.records(with_faces=True):
            seq = rec["seq"]
            if seq != expected_seq:
                return VerifyReport(False, count, prev, seq, f"record {seq} follows record {expected_seq - 1}: "
                                    f"record(s) {expected_seq}..{seq - 1} are missing", count)
            if rec["prev_hash"] != prev:
                what = ("the meta table or the key differs from when the log was made" if seq == 1 else
                        f"record {seq} does not link to record {seq - 1} (its prev_hash differs)")
                return VerifyReport(False, count, prev, seq, what if seq > 1 else f"record 1 does not link to the "
                                    f"log's anchor: {what}", count)
            try:
                digest = record_hash(prev, rec, rec["face_jpeg"], key)
            except (TypeError, ValueError) as exc:
                return VerifyReport(False, count, prev, seq, f"record {seq} cannot be hashed ({exc})", count)
            if not hmac.compare_digest(digest, str(rec["hash"])):
                return VerifyReport(False, count, prev, seq, f"record {seq} was changed after it was written "
                                    "(its content does not match its " + ("MAC)" if key else "hash)"), count)
            prev = digest
            expected_seq += 1
            count += 1
            if wanted is not None and seq == wanted[0]:
                seen_wanted = digest
        if wanted is not None:
            want_seq, want_hash = wanted
            if want_seq == 0:
                seen_wanted = self.anchor
            if want_seq > count:
                return VerifyReport(False, count, prev, None, f"the log ends at record {count}, but the head you "
                                    f"kept is record {want_seq}: record(s) {count + 1}..{want_seq} were cut off "
                                    "the end", count)
            if seen_wanted != want_hash:
                return VerifyReport(False, count, prev, want_seq, f"record {want_seq} is not the one you kept "
                                    f"(hash {want_hash[:16]}..., now {str(seen_wanted)[:16]}...): the log was "
                                    f"rewritten at or before record {want_seq}", count)
        return VerifyReport(True, count, prev, head_seq=count)

    def head(self) -> str:
        """``SEQ:HASH`` of the last record (``0:ANCHOR`` for an empty log), after verifying the whole chain;
        :class:`AuditError` when it does not verify."""
        report = self.verify()
        if not report.ok:
            raise AuditError(f"audit log {self.path}: chain broken at record {report.broken_seq}: "
                             f"{report.problem}; no head to keep")
        return report.head_text

    def _check_meta(self) -> None:
        if self.version == 1:
            return
        stored = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if stored != self.meta:
            raise AuditError(f"the meta table changed while the log was open ({sorted(set(stored) ^ set(self.meta))})")

    def export_csv(self, path: str | Path, since: str | None = None) -> int:
        """Write the records (without images) as CSV; returns how many. Text cells a spreadsheet would run as a
        formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR) get a leading ``'``."""
        path = Path(path)
        columns = tuple(c for c in _ALL_COLUMNS if c != "face_jpeg")
        tmp = path.with_name(path.name + ".partial")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns)
                writer.writeheader()
                n = 0
                for rec in self.records(since=since):
                    writer.writerow({k: spreadsheet_cell(v) for k, v in rec.items()})
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


BUSY_BUDGET_S = 30.0  # how long an append waits for another program's write lock before giving up


def _begin_immediate(conn: sqlite3.Connection, path: Path, budget_s: float = BUSY_BUDGET_S) -> None:
    """``BEGIN IMMEDIATE``, retried while another program holds the write lock, for at most ``budget_s``
    (nothing is granted meanwhile: the record comes first); then :class:`AuditError`."""
    import logging
    import time

    deadline = time.monotonic() + budget_s
    warned = False
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if "locked" not in text and "busy" not in text:
                raise
            if time.monotonic() >= deadline:
                raise AuditError(f"audit log {path}: another program has held its write lock for more than "
                                 f"{budget_s:g} s; nothing was granted meanwhile. Stop that program") from exc
            if not warned:
                logging.getLogger(__name__).warning(
                    "ALARM audit log %s is locked by another program; waiting up to %g s (no GRANT meanwhile)",
                    path, budget_s)
                warned = True
            time.sleep(0.2)


def _disk_full(path: Path, exc: BaseException) -> bool:
    """Whether an SQLite error comes from a full disk (SQLite says "disk is full" or, at open, "disk I/O error")."""
    text = str(exc).lower()
    if "full" in text:
        return True
    if "disk i/o" not in text:
        return False
    try:
        st = os.statvfs(path.parent)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 1 << 20


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """:class:`AuditError` naming the first schema object that rtv did not make or that differs (a trigger, a view,
    an index, a table, a changed definition)."""
    what = schema_difference(conn, _SCHEMA)
    if what is None:
        return
    raise AuditError(f"audit log {path} has been altered: it has {what}; refusing it, since such a change can drop "
                     "or rewrite records. Keep the file as evidence and set door.audit to a new file")


def _read_or_create(conn: sqlite3.Connection, path: Path, key: bytes | None,
                    create: bool) -> tuple[dict[str, str], int]:
    found = identify(conn)
    if found.blank and create:
        meta = {"schema_version": str(SCHEMA_VERSION),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "mac": MAC_SHA256 if key is None else MAC_HMAC}
        if key is not None:
            meta["key_id"] = key_id(key)
        if create_schema(conn, _SCHEMA, meta, APPLICATION_ID, SCHEMA_VERSION):
            return meta, SCHEMA_VERSION
        found = identify(conn)  # another process made it a moment ago
    if found.blank:
        raise AuditError(f"{path} is an empty SQLite database, not an rtv audit log; door mode creates one")
    if found.application_id != APPLICATION_ID:
        raise AuditError(f"{path} is an SQLite database but not an rtv audit log (tables: "
                         f"{', '.join(sorted(found.tables)) or 'none'}); set door.audit to another file")
    version = found.version
    if version not in READABLE_VERSIONS:
        raise AuditError(f"audit log {path} has schema version {version}; this rtv reads "
                         f"{', '.join(map(str, READABLE_VERSIONS))} (upgrade rtv, or start a new log and keep "
                         "this one)")
    _check_schema(conn, path)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("schema_version") != str(version):
        raise AuditError(f"audit log {path} has damaged metadata (schema_version {meta.get('schema_version')!r}, "
                         f"file version {version})")
    if version >= 2 and (meta.get("mac") not in (MAC_SHA256, MAC_HMAC)
                         or (meta.get("mac") == MAC_HMAC) != ("key_id" in meta)):
        raise AuditError(f"audit log {path} has damaged metadata (mac {meta.get('mac')!r}); keep it as evidence "
                         "and start a new log")
    if version == 1:
        meta.setdefault("mac", MAC_SHA256)
    return meta, version
