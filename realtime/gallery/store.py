"""The face gallery: enrolled people, their embeddings and their door access, in one SQLite file.

Schema (version :data:`SCHEMA_VERSION`, stored in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file
as an rtv gallery)::

    meta(key TEXT PRIMARY KEY, value TEXT)      schema_version, model_sha256, model_name, embedding_size, created
    persons(id, name UNIQUE, allowed 0/1 default 1, schedule JSON or NULL, created_at)
    embeddings(id, person_id -> persons ON DELETE CASCADE, vector float32 little-endian BLOB, model_sha256,
               source, quality, created_at)

The file is opened in WAL mode with foreign keys on; every write is one ``BEGIN IMMEDIATE`` transaction, so a crash
or an error part-way through a write leaves the gallery as it was. Embeddings carry the hash of the embedding model
that made them; a gallery opened for another model, or an import from another model, is refused.

A schedule is a list of time windows in local wall-clock time, e.g.
``[{"days": "mon-fri", "start": "07:00", "end": "20:00"}]``; see :func:`validate_schedule` and
:func:`schedule_allows`. ``None`` means no time restriction.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from realtime.data_dir import prepare_parent
from realtime.errors import GalleryError
from realtime.gallery.names import (MAX_NAME_CHARS, check_name, check_not_confusable, confusable_key, escape_text,
                                    name_problem)
from realtime.gallery.schedule import validate_schedule
from realtime.gallery.transfer import (FIX_MODEL, MAX_EXPORT_BYTES, check_sha, check_size, export_document,
                                       now_text, read_import, write_export)
from realtime.io.sqlite_file import create_schema, identify, schema_cookie, schema_difference, use_wal

SCHEMA_VERSION = 1
APPLICATION_ID = 0x72747667  # b"rtvg"
SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE persons ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " allowed INTEGER NOT NULL DEFAULT 1 CHECK (allowed IN (0, 1)),"
    " schedule TEXT,"
    " created_at TEXT NOT NULL)",
    "CREATE TABLE embeddings ("
    " id INTEGER PRIMARY KEY,"
    " person_id INTEGER NOT NULL REFERENCES persons(id) ON DELETE CASCADE,"
    " vector BLOB NOT NULL,"
    " model_sha256 TEXT NOT NULL,"
    " source TEXT,"
    " quality REAL,"
    " created_at TEXT NOT NULL)",
    "CREATE INDEX embeddings_person_id ON embeddings(person_id)",
)
_COLUMNS = {
    "meta": ("key", "value"),
    "persons": ("id", "name", "allowed", "schedule", "created_at"),
    "embeddings": ("id", "person_id", "vector", "model_sha256", "source", "quality", "created_at"),
}
_META_KEYS = ("schema_version", "model_sha256", "model_name", "embedding_size", "created")
_FIX_MODEL = FIX_MODEL


@dataclass(frozen=True)
class PersonSummary:
    """One enrolled person. ``schedule``: list of windows (see :func:`validate_schedule`) or None (any time)."""

    name: str
    n_embeddings: int
    allowed: bool
    schedule: list[dict[str, str]] | None
    created_at: str


class Gallery:
    """An open gallery file. Use :meth:`open`; a context manager; :meth:`close` is safe to call twice.

    Not thread-safe: use it from the thread that opened it (SQLite's default check).
    """

    def __init__(self, connection: sqlite3.Connection, path: Path, meta: Mapping[str, str], verified: bool,
                 busy_timeout_s: float) -> None:
        self._conn: sqlite3.Connection | None = connection
        self.path = path
        self.model_sha256: str = meta["model_sha256"]
        self.model_name: str = meta["model_name"]
        self.embedding_size: int = int(meta["embedding_size"])
        self.created: str = meta["created"]
        self._verified = verified
        self._busy_timeout_s = busy_timeout_s
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None
        self._schema_cookie = schema_cookie(connection)

    # ----------------------------------------------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike, model_sha256: str | None = None, model_name: str | None = None,
             embedding_size: int | None = None, *, create: bool = True, busy_timeout_s: float = 1.0) -> "Gallery":
        """Open (or, with ``create``, make) the gallery at ``path``.

        ``model_sha256``: hex sha256 of the embedding model's ONNX file; when given, the gallery must have been built
        with that model (else :class:`GalleryError` saying both hashes). ``None`` opens for inspection only
        (list, remove, access, export, import); :meth:`enroll` then refuses. Making a new gallery needs
        ``model_sha256``, ``model_name`` and ``embedding_size``. ``busy_timeout_s``: how long to wait for another
        process's write lock before reporting the gallery as locked.
        """
        path = Path(path)
        sha = None if model_sha256 is None else _check_sha(model_sha256, "model_sha256")
        size = None if embedding_size is None else _check_size(embedding_size)
        if path.is_dir():
            raise GalleryError(f"gallery path {path} is a folder; pass a file path such as {path / 'gallery.db'}")
        existed = path.exists()
        if existed:
            with open(path, "rb") as fh:
                header = fh.read(len(SQLITE_HEADER))
            if header and header != SQLITE_HEADER:
                raise GalleryError(f"{path} is not an SQLite database, so not an rtv gallery; "
                                   "pass the path of a gallery file (or a new path to create one)")
            is_blank = not header
        else:
            is_blank = True
        if is_blank and not create:
            raise GalleryError(f"no gallery at {path}" + (" (empty file)" if existed else "")
                               + "; enrol a face with 'rtv enroll' to create one, or check the path")
        if is_blank and (sha is None or size is None or not model_name):
            raise GalleryError(f"cannot create gallery {path}: the embedding model's sha256, name and embedding "
                               "size are needed to make a new gallery")
        if not existed and create:
            prepare_parent(path)  # the default gallery's data folder is made on first use
        if not existed and not path.parent.is_dir():
            raise GalleryError(f"cannot create gallery {path}: folder {path.parent} does not exist; create it first")
        try:
            conn = sqlite3.connect(str(path), timeout=float(busy_timeout_s), isolation_level=None)
        except sqlite3.Error as exc:
            raise _db_error(path, "opening", exc, busy_timeout_s) from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            meta = _read_or_create(conn, path, create, sha, model_name, size)
            use_wal(conn, busy_timeout_s)
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise GalleryError(f"gallery {path} is corrupt ({'; '.join(problems[:3])}); restore it from an "
                                   "export with 'rtv gallery import' into a new file, or rebuild it")
        except sqlite3.Error as exc:
            conn.close()
            raise _db_error(path, "opening", exc, busy_timeout_s) from exc
        except BaseException:
            conn.close()
            raise
        gallery = cls(conn, path, meta, verified=sha is not None, busy_timeout_s=busy_timeout_s)
        try:
            gallery._check_model(sha, size)
        except GalleryError:
            gallery.close()
            raise
        return gallery

    def _check_model(self, sha: str | None, size: int | None) -> None:
        if sha is not None and sha != self.model_sha256:
            raise GalleryError(
                f"gallery {self.path} holds embeddings from model {self.model_name} (sha256 {self.model_sha256}), "
                f"but the embedder in use has sha256 {sha}; {_FIX_MODEL}")
        if size is not None and size != self.embedding_size:
            raise GalleryError(
                f"gallery {self.path} holds {self.embedding_size}-dimensional embeddings, but the embedder gives "
                f"{size}; {_FIX_MODEL}")

    # ------------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the file. Safe to call twice."""
        conn, self._conn = self._conn, None
        self._cache = None
        if conn is not None:
            conn.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Gallery({str(self.path)!r}, model={self.model_name!r}, size={self.embedding_size}, {state})"

    # ----------------------------------------------------------------------------------------------------- writes
    def enroll(self, name: str, vectors: np.ndarray, sources: Sequence[str | None] | None = None,
               qualities: Sequence[float | None] | None = None, *, replace: bool = False) -> int:
        """Store ``vectors``: float32 (K, D) embeddings of ``name``, all or nothing. Returns the person's count now.

        A new name becomes a new person (allowed, no schedule); an existing one gets the vectors added, or, with
        ``replace``, instead of the old ones. ``sources``: K strings (e.g. image paths) or None; ``qualities``: K
        finite numbers or None.
        """
        if not self._verified:
            raise GalleryError(f"gallery {self.path} was opened without the embedder's model sha256; open it with "
                               "the model that made these embeddings to enrol")
        person = _check_name(name)
        vecs = self._check_vectors(vectors, f"enrolment of {person!r}")
        k = len(vecs)
        srcs = _check_sources(sources, k)
        quals = _check_qualities(qualities, k)
        now = _now()
        with self._transaction(f"enrolling {person!r}") as conn:
            row = conn.execute("SELECT id FROM persons WHERE name = ?", (person,)).fetchone()
            if row is None:
                stored = {confusable_key(n): n for (n,) in conn.execute("SELECT name FROM persons")}
                check_not_confusable(person, stored)
                person_id = conn.execute("INSERT INTO persons (name, created_at) VALUES (?, ?)",
                                         (person, now)).lastrowid
            else:
                person_id = row[0]
                if replace:
                    conn.execute("DELETE FROM embeddings WHERE person_id = ?", (person_id,))
            before = 0 if row is None or replace else int(conn.execute(
                "SELECT count(*) FROM embeddings WHERE person_id = ?", (person_id,)).fetchone()[0])
            conn.executemany(
                "INSERT INTO embeddings (person_id, vector, model_sha256, source, quality, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                self._embedding_rows(person_id, vecs, srcs, quals, [now] * k))
        count = self._count_embeddings(person)
        if count != before + k:
            raise self._did_not_take(f"enrolling {escape_text(person)!r}", f"{count} embedding(s) stored, "
                                     f"{before + k} expected")
        return count

    def remove(self, name: str) -> int:
        """Delete a person and (by cascade) their embeddings. Returns how many embeddings went."""
        person = _lookup_name(name)
        with self._transaction(f"removing {escape_text(person)!r}") as conn:
            person_id = self._person_id(conn, person)
            count = conn.execute("SELECT count(*) FROM embeddings WHERE person_id = ?", (person_id,)).fetchone()[0]
            conn.execute("DELETE FROM persons WHERE id = ?", (person_id,))
        left = self._read("reading back", "SELECT count(*) FROM persons WHERE id = ?", (person_id,))[0][0]
        orphans = self._read("reading back", "SELECT count(*) FROM embeddings WHERE person_id = ?", (person_id,))
        if left or orphans[0][0]:
            raise self._did_not_take(f"removing {escape_text(person)!r}", "the person is still there")
        return int(count)

    def set_access(self, name: str, allowed: bool, schedule: Sequence[Mapping[str, str]] | None = None) -> None:
        """Set whether ``name`` may open the door, and when (``schedule`` windows, or None for any time)."""
        person = _lookup_name(name)
        if not isinstance(allowed, (bool, np.bool_)):
            raise GalleryError(f"allowed must be true or false, got {allowed!r}")
        windows = validate_schedule(schedule)
        text = None if windows is None else json.dumps(windows, separators=(",", ":"))
        with self._transaction(f"setting access of {escape_text(person)!r}") as conn:
            person_id = self._person_id(conn, person)
            conn.execute("UPDATE persons SET allowed = ?, schedule = ? WHERE id = ?",
                         (int(bool(allowed)), text, person_id))
        row = self._read("reading back", "SELECT allowed, schedule FROM persons WHERE id = ?", (person_id,))
        if not row or row[0] != (int(bool(allowed)), text):
            raise self._did_not_take(f"setting access of {escape_text(person)!r}",
                                     f"stored {row[0] if row else 'nothing'}, wanted {(int(bool(allowed)), text)}")

    # ------------------------------------------------------------------------------------------------------ reads
    def persons(self) -> list[PersonSummary]:
        """Everyone enrolled, sorted by name."""
        rows = self._read("listing persons",
                          "SELECT p.name, count(e.id), p.allowed, p.schedule, p.created_at FROM persons p "
                          "LEFT JOIN embeddings e ON e.person_id = p.id GROUP BY p.id ORDER BY p.name")
        return [PersonSummary(name, int(n), bool(allowed), self._load_schedule(name, schedule), created)
                for name, n, allowed, schedule, created in rows]

    def bad_names(self) -> list[tuple[str, str]]:
        """Stored names that are not valid person names (written by an older rtv or by hand): ``(name, why)``."""
        rows = self._read("checking names", "SELECT name FROM persons ORDER BY name")
        found = [(name, name_problem(name)) for (name,) in rows]
        return [(name, problem) for name, problem in found if problem is not None]

    def check_names(self) -> None:
        """:class:`GalleryError` naming (escaped) every stored name that is not a valid person name; door mode
        refuses to start on such a gallery, since the name would reach the unlock hook and the audit log."""
        bad = self.bad_names()
        if bad:
            listed = "; ".join(f"{escape_text(name)!r}: {problem}" for name, problem in bad[:3])
            more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
            raise GalleryError(f"gallery {self.path} holds {len(bad)} invalid person name(s): {listed}{more}; "
                               "remove them with 'rtv gallery remove -- NAME' and enrol them again under a valid name")

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits to the file. Also checks the
        schema when SQLite's schema version changed (a running door calls this every frame), so a trigger, view or
        table that rtv did not make is a :class:`GalleryError` at once."""
        self.check_schema()
        return int(self._read("reading the data version", "PRAGMA data_version")[0][0])

    def check_schema(self) -> None:
        """:class:`GalleryError` when the file holds a schema object rtv did not make (trigger, view, table, index)
        or a changed definition; cheap (one pragma) while SQLite's schema version is unchanged."""
        conn = self._require_open()
        try:
            cookie = schema_cookie(conn)
            if cookie != self._schema_cookie:
                _check_schema(conn, self.path)
                self._schema_cookie = cookie
        except sqlite3.Error as exc:
            raise _db_error(self.path, "checking the schema", exc, self._busy_timeout_s) from exc

    def _count_embeddings(self, name: str) -> int:
        return int(self._read("reading back", "SELECT count(*) FROM embeddings e JOIN persons p ON p.id = "
                              "e.person_id WHERE p.name = ?", (name,))[0][0])

    def _did_not_take(self, action: str, what: str) -> GalleryError:
        return GalleryError(f"gallery {self.path}: {action} did not take ({what} when read back after the "
                            "commit); the file has been tampered with (a trigger, or another writer). Keep it as "
                            "evidence and rebuild the gallery from an export")

    def vectors(self, refresh: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """All embeddings for matching: ``(vectors float32 (M, D), labels str (M,) person names)``, by name.

        Cached until the gallery changes (a write here, or a commit by another process, seen through
        ``PRAGMA data_version``) or ``refresh``. The arrays are read-only; a new read returns new arrays.
        """
        version = self.data_version()  # checks the schema first
        if self._cache is not None and self._cache[0] == version and not refresh:
            return self._cache[1], self._cache[2]
        rows = self._read("reading embeddings",
                          "SELECT p.name, e.vector, e.model_sha256 FROM embeddings e "
                          "JOIN persons p ON p.id = e.person_id ORDER BY p.name, e.id")
        d = self.embedding_size
        bad_model = sorted({sha for _, _, sha in rows if sha != self.model_sha256})
        if bad_model:
            raise GalleryError(f"gallery {self.path} holds embeddings from another model (sha256 {bad_model[0]}, "
                               f"gallery model {self.model_sha256}); {_FIX_MODEL}")
        bad_size = [name for name, blob, _ in rows if len(blob) != 4 * d]
        if bad_size:
            raise GalleryError(f"gallery {self.path} is corrupt: an embedding of {bad_size[0]!r} is not {d} float32 "
                               "values; remove that person and re-enrol them")
        vecs = np.frombuffer(b"".join(blob for _, blob, _ in rows), dtype="<f4").astype(np.float32).reshape(-1, d)
        if not np.isfinite(vecs).all():
            raise GalleryError(f"gallery {self.path} is corrupt: it holds non-finite embedding values; "
                               "remove the affected person and re-enrol them")
        labels = np.array([name for name, _, _ in rows], dtype=str) if rows else np.zeros(0, dtype="<U1")
        vecs.setflags(write=False)
        labels.setflags(write=False)
        self._cache = (version, vecs, labels)
        return vecs, labels

    # ---------------------------------------------------------------------------------------------- export/import
    # ---------------------------------------------------------------------------------------------- export/import
    def export(self, path: str | os.PathLike, *, overwrite: bool = False) -> int:
        """Write everyone to a portable JSON file (see :mod:`realtime.gallery.transfer`); never half a file.
        Returns the number of persons written."""
        people = self._read("exporting", "SELECT id, name, allowed, schedule, created_at FROM persons ORDER BY name")
        rows = self._read("exporting",
                          "SELECT person_id, vector, model_sha256, source, quality, created_at FROM embeddings "
                          "ORDER BY person_id, id")
        model = {"sha256": self.model_sha256, "name": self.model_name, "embedding_size": self.embedding_size}
        write_export(path, export_document(model, people, rows, self._load_schedule), overwrite)
        return len(people)

    def import_(self, path: str | os.PathLike, *, replace: bool = False, max_bytes: int = MAX_EXPORT_BYTES) -> int:
        """Add everyone from an :meth:`export` file, all or nothing, read within the limits of
        :mod:`realtime.gallery.transfer`; every person is read back after the commit. A name already in the
        gallery is an error unless ``replace`` (that person's embeddings and access are then replaced); a
        look-alike of a stored name is refused. Returns the number of persons imported."""
        src = Path(path)
        stored = [name for (name,) in self._read("importing", "SELECT name FROM persons")]
        entries = read_import(src, self.model_sha256, self.embedding_size, stored, max_bytes)
        with self._transaction(f"importing {src}") as conn:
            existing = sorted(e["name"] for e in entries
                              if conn.execute("SELECT 1 FROM persons WHERE name = ?", (e["name"],)).fetchone())
            if existing and not replace:
                raise GalleryError(f"{src} holds people already in gallery {self.path}: "
                                   f"{', '.join(map(escape_text, existing[:5]))}; remove them first, or import "
                                   "with replace")
            for entry in entries:
                conn.execute("DELETE FROM persons WHERE name = ?", (entry["name"],))
                person_id = conn.execute(
                    "INSERT INTO persons (name, allowed, schedule, created_at) VALUES (?, ?, ?, ?)",
                    (entry["name"], int(entry["allowed"]), entry["schedule"], entry["created_at"])).lastrowid
                conn.executemany(
                    "INSERT INTO embeddings (person_id, vector, model_sha256, source, quality, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    self._embedding_rows(person_id, entry["vectors"], entry["sources"], entry["qualities"],
                                         entry["created"]))
        counts = dict(self._read("reading back", "SELECT p.name, count(e.id) FROM persons p LEFT JOIN embeddings e "
                                 "ON e.person_id = p.id GROUP BY p.id"))
        wrong = [e["name"] for e in entries if counts.get(e["name"]) != len(e["vectors"])]
        if wrong:
            raise self._did_not_take(f"importing {src}", f"{escape_text(wrong[0])!r} is not as imported")
        return len(entries)

    # -------------------------------------------------------------------------------------------------- internals
    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {self.path} is closed; open it again")
        return self._conn

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._require_open()
        self._cache = None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _db_error(self.path, action, exc, self._busy_timeout_s) from exc
        try:
            self.check_schema()  # under the write lock: nothing can be planted between the check and the write
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _db_error(self.path, action, exc, self._busy_timeout_s) from exc
            raise
        finally:
            self._cache = None

    def _read(self, action: str, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        conn = self._require_open()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _db_error(self.path, action, exc, self._busy_timeout_s) from exc

    def _person_id(self, conn: sqlite3.Connection, name: str) -> int:
        """The id of the person stored exactly as ``name``, else as ``name`` stripped and in NFC form."""
        for candidate in dict.fromkeys((name, unicodedata.normalize("NFC", name.strip()))):
            row = conn.execute("SELECT id FROM persons WHERE name = ?", (candidate,)).fetchone()
            if row is not None:
                return int(row[0])
        raise GalleryError(f"no person named {escape_text(name)!r} in gallery {self.path}; 'rtv gallery list' "
                           "shows the names")

    def _embedding_rows(self, person_id: int, vectors: np.ndarray, sources: Sequence[str | None],
                        qualities: Sequence[float | None], created: Sequence[str]) -> Iterator[tuple]:
        for vector, source, quality, when in zip(vectors, sources, qualities, created):
            yield person_id, _vector_blob(vector), self.model_sha256, source, quality, when

    def _check_vectors(self, vectors: Any, what: str) -> np.ndarray:
        try:
            vecs = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise GalleryError(f"{what}: embeddings must be a numeric (K, D) array ({exc})") from None
        if vecs.ndim != 2 or vecs.shape[0] == 0:
            raise GalleryError(f"{what}: embeddings must be a non-empty (K, D) array, got shape {vecs.shape}")
        if vecs.shape[1] != self.embedding_size:
            raise GalleryError(f"{what}: embeddings have size {vecs.shape[1]}, but gallery {self.path} holds "
                               f"{self.embedding_size}-dimensional embeddings of model {self.model_name}; "
                               f"{_FIX_MODEL}")
        if not np.isfinite(vecs).all():
            bad = int(np.flatnonzero(~np.isfinite(vecs).all(axis=1))[0])
            raise GalleryError(f"{what}: embedding {bad} holds NaN or infinite values; nothing was stored "
                               "(check the face crop and the embedding model)")
        return vecs

    def _load_schedule(self, name: str, text: str | None) -> list[dict[str, str]] | None:
        if text is None:
            return None
        try:
            return validate_schedule(json.loads(text))
        except (ValueError, GalleryError) as exc:
            raise GalleryError(f"gallery {self.path}: the schedule of {name!r} is unreadable ({exc}); set it again "
                               "with the access command") from None


# ------------------------------------------------------------------------------------------------------- schedules


# --------------------------------------------------------------------------------------------------------- helpers
def _vector_blob(vector: np.ndarray) -> bytes:
    """One embedding as little-endian float32 bytes (the on-disk and export encoding)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


_now = now_text
_check_sha = check_sha
_check_size = check_size


def _check_name(name: Any) -> str:
    """A new person's name (see :mod:`realtime.gallery.names`)."""
    return check_name(name)


def _lookup_name(name: Any) -> str:
    """A name to look up: any non-empty text (so a person stored under a name that is no longer valid can still be
    removed or denied)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 10 * MAX_NAME_CHARS:
        raise GalleryError(f"a person's name must be non-empty text of at most {MAX_NAME_CHARS} characters, got "
                           f"{escape_text(name) if isinstance(name, str) else name!r}")
    return name


def _check_sources(sources: Sequence[Any] | None, k: int) -> list[str | None]:
    if sources is None:
        return [None] * k
    items = list(sources)
    if len(items) != k:
        raise GalleryError(f"got {len(items)} sources for {k} embeddings; pass one source per embedding or none")
    return [None if s is None else str(s) for s in items]


def _check_qualities(qualities: Sequence[Any] | None, k: int) -> list[float | None]:
    if qualities is None:
        return [None] * k
    items = list(qualities)
    if len(items) != k:
        raise GalleryError(f"got {len(items)} qualities for {k} embeddings; pass one quality per embedding or none")
    out: list[float | None] = []
    for q in items:
        if q is None:
            out.append(None)
            continue
        try:
            value = float(q)
        except (TypeError, ValueError):
            raise GalleryError(f"quality must be a number, got {q!r}") from None
        if not math.isfinite(value):
            raise GalleryError(f"quality must be finite, got {q!r}")
        out.append(value)
    return out


def _db_error(path: Path, action: str, exc: sqlite3.Error, busy_timeout_s: float) -> GalleryError:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return GalleryError(f"gallery {path} is locked by another process (waited {busy_timeout_s:g} s while "
                            f"{action}); close the other rtv or sqlite3 session and try again")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return GalleryError(f"gallery {path} is corrupt ({text}); restore it from an export with "
                            "'rtv gallery import' into a new file, or rebuild it")
    return GalleryError(f"gallery {path}: {action} failed ({text})")


def _read_or_create(conn: sqlite3.Connection, path: Path, create: bool, sha: str | None, model_name: str | None,
                    size: int | None) -> dict[str, str]:
    found = identify(conn)
    app_id, version, tables = found.application_id, found.version, found.tables
    if found.blank:
        if not create:
            raise GalleryError(f"{path} is an empty SQLite database, not an rtv gallery; enrol a face with "
                               "'rtv enroll' to create one")
        if sha is None or size is None or not model_name:
            raise GalleryError(f"cannot create gallery {path}: the embedding model's sha256, name and embedding "
                               "size are needed to make a new gallery")
        meta = {"schema_version": str(SCHEMA_VERSION), "model_sha256": sha, "model_name": str(model_name),
                "embedding_size": str(size), "created": _now()}
        if create_schema(conn, _SCHEMA, meta, APPLICATION_ID, SCHEMA_VERSION):
            return meta
        found = identify(conn)  # another process created it a moment ago: read it like any existing gallery
        app_id, version, tables = found.application_id, found.version, found.tables
    if app_id != APPLICATION_ID:
        raise GalleryError(f"{path} is an SQLite database but not an rtv gallery (tables: "
                           f"{', '.join(sorted(tables)) or 'none'}); pass the path of a gallery file")
    if version > SCHEMA_VERSION:
        raise GalleryError(f"gallery {path} has schema version {version}, newer than this rtv reads "
                           f"({SCHEMA_VERSION}); upgrade rtv")
    if version != SCHEMA_VERSION:
        raise GalleryError(f"gallery {path} has unknown schema version {version} (this rtv reads "
                           f"{SCHEMA_VERSION}); rebuild the gallery")
    for table, columns in _COLUMNS.items():
        found = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            raise GalleryError(f"gallery {path} has a damaged schema: table {table} has columns "
                               f"{list(found)}, expected {list(columns)}; rebuild the gallery")
    _check_schema(conn, path)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    missing = [key for key in _META_KEYS if key not in meta]
    if missing or meta.get("schema_version") != str(SCHEMA_VERSION):
        raise GalleryError(f"gallery {path} has damaged metadata (missing {', '.join(missing) or 'nothing'}, "
                           f"schema_version {meta.get('schema_version')!r}); rebuild the gallery")
    try:
        _check_sha(meta["model_sha256"], "meta.model_sha256")
        _check_size(int(meta["embedding_size"]))
    except (GalleryError, ValueError) as exc:
        raise GalleryError(f"gallery {path} has damaged metadata ({exc}); rebuild the gallery") from None
    return meta


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """:class:`GalleryError` naming the first schema object rtv did not make (a trigger can silently keep a removed
    person or a revoked access), or one that differs."""
    what = schema_difference(conn, _SCHEMA)
    if what is None:
        return
    raise GalleryError(f"gallery {path} has been altered: it has {what}; refusing it, since such a change can keep "
                       "removed people or revoked access. Keep the file as evidence and rebuild the gallery from an "
                       "export (after checking it)")


