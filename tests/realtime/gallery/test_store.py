"""The SQLite face gallery: round trips, persistence, atomic writes, every refusal, export/import, schedules."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from realtime.errors import GalleryError
from realtime.gallery import store as gallery_module
from realtime.gallery.schedule import parse_days, schedule_allows, validate_schedule
from realtime.gallery.store import APPLICATION_ID, SCHEMA_VERSION, Gallery

REPO = Path(__file__).resolve().parents[3]
SHA = "ab" * 32
OTHER_SHA = "cd" * 32
D = 8


def _vecs(k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(k, D)).astype(np.float32)


def _state(g: Gallery):
    """Everything a user can see, to compare before and after a refused operation."""
    vectors, labels = g.vectors()
    return g.persons(), vectors.copy(), labels.copy()


def _assert_same_state(a, b):
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


@pytest.fixture()
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "gallery.db"


@pytest.fixture()
def filled(db_path: Path):
    """A gallery with alice (3 embeddings) and bob (2)."""
    with Gallery.open(db_path, SHA, "test-embedder", D) as g:
        g.enroll("alice", _vecs(3, 1), sources=["a1.jpg", "a2.jpg", "a3.jpg"], qualities=[0.9, 0.8, 0.7])
        g.enroll("bob", _vecs(2, 2))
    return db_path


# ------------------------------------------------------------------------------------------------------ round trip
def test_enroll_and_read_back(db_path):
    a, b = _vecs(3, 1), _vecs(2, 2)
    with Gallery.open(db_path, SHA, "test-embedder", D) as g:
        assert g.persons() == []
        vectors, labels = g.vectors()
        assert vectors.shape == (0, D) and labels.shape == (0,)
        assert g.enroll("bob", b) == 2
        assert g.enroll("alice", a[:2]) == 2
        assert g.enroll("alice", a[2:]) == 3  # appends
        vectors, labels = g.vectors()
        assert vectors.dtype == np.float32 and vectors.shape == (5, D)
        assert list(labels) == ["alice", "alice", "alice", "bob", "bob"]
        np.testing.assert_array_equal(vectors, np.concatenate([a, b]))  # bit exact
        people = g.persons()
        assert [(p.name, p.n_embeddings, p.allowed, p.schedule) for p in people] == [
            ("alice", 3, True, None), ("bob", 2, True, None)]
        assert g.enroll("alice", a[:1], replace=True) == 1
        np.testing.assert_array_equal(g.vectors()[0][0], a[0])


def test_persists_across_reopen_with_schema_and_pragmas(filled):
    with Gallery.open(filled, SHA, create=False) as g:
        assert g.model_name == "test-embedder" and g.embedding_size == D and g.model_sha256 == SHA
        assert [(p.name, p.n_embeddings) for p in g.persons()] == [("alice", 3), ("bob", 2)]
        assert g._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn = sqlite3.connect(filled)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert meta["model_sha256"] == SHA and meta["embedding_size"] == str(D)
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        shas = {row[0] for row in conn.execute("SELECT model_sha256 FROM embeddings")}
        assert shas == {SHA}
        sources = [row[0] for row in conn.execute("SELECT source FROM embeddings ORDER BY id")]
        assert sources == ["a1.jpg", "a2.jpg", "a3.jpg", None, None]
    finally:
        conn.close()


def test_vectors_cached_until_a_write_here_or_elsewhere(filled):
    with Gallery.open(filled, SHA) as g, Gallery.open(filled, SHA) as other:
        first = g.vectors()
        assert g.vectors()[0] is first[0]  # cached
        with pytest.raises(ValueError):
            first[0][0, 0] = 1.0  # read-only
        g.enroll("carol", _vecs(1, 3))
        second = g.vectors()
        assert second[0] is not first[0] and len(second[0]) == 6
        other.enroll("dave", _vecs(1, 4))  # another connection commits: seen through data_version
        assert "dave" in set(g.vectors()[1])


def test_remove_cascades(filled):
    with Gallery.open(filled, SHA) as g:
        assert g.remove("alice") == 3
        assert [p.name for p in g.persons()] == ["bob"]
        assert g._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 2
        with pytest.raises(GalleryError, match="no person named 'alice'"):
            g.remove("alice")


def test_set_access_and_schedule(filled):
    window = [{"days": "Mon-Fri", "start": "07:00", "end": "20:00"}]
    with Gallery.open(filled, SHA) as g:
        g.set_access("bob", False, window)
    with Gallery.open(filled, create=False) as g:  # inspection open, no model hash needed to read
        bob = [p for p in g.persons() if p.name == "bob"][0]
        assert bob.allowed is False
        assert bob.schedule == [{"days": "mon-fri", "start": "07:00", "end": "20:00"}]
        g.set_access("bob", True, None)
        assert [p.schedule for p in g.persons()] == [None, None]
        with pytest.raises(GalleryError, match="no person named 'zed'"):
            g.set_access("zed", True)
        with pytest.raises(GalleryError, match="HH:MM"):
            g.set_access("bob", True, [{"days": "mon", "start": "7am", "end": "20:00"}])
        with pytest.raises(GalleryError, match="true or false"):
            g.set_access("bob", "yes")


# ---------------------------------------------------------------------------------------------------- atomicity
def test_failure_halfway_through_enrolment_stores_nothing(filled, monkeypatch):
    real = gallery_module._vector_blob
    calls = {"n": 0}

    def failing(vector):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure while writing embedding 3")
        return real(vector)

    with Gallery.open(filled, SHA) as g:
        before = _state(g)
        monkeypatch.setattr(gallery_module, "_vector_blob", failing)
        with pytest.raises(RuntimeError, match="injected"):
            g.enroll("carol", _vecs(4, 5))  # person row and two embeddings were written, then the failure
        calls["n"] = 0
        with pytest.raises(RuntimeError, match="injected"):
            g.enroll("alice", _vecs(4, 6))  # appending to an existing person
        _assert_same_state(before, _state(g))
        monkeypatch.setattr(gallery_module, "_vector_blob", real)
        assert g.enroll("carol", _vecs(4, 5)) == 4  # the connection is still usable


def test_database_error_halfway_is_rolled_back(filled):
    with Gallery.open(filled, SHA) as g:
        # a TEMP trigger lives in this connection only (a trigger in the file is refused at open)
        g._conn.execute("CREATE TEMP TRIGGER fail_third BEFORE INSERT ON embeddings "
                        "WHEN (SELECT count(*) FROM embeddings WHERE person_id = NEW.person_id) >= 2 "
                        "BEGIN SELECT RAISE(ABORT, 'injected constraint failure'); END")
        before = _state(g)
        with pytest.raises(GalleryError, match="injected constraint failure"):
            g.enroll("carol", _vecs(3, 7))
        _assert_same_state(before, _state(g))


def test_process_killed_mid_enrolment_loses_nothing(filled):
    script = textwrap.dedent(f"""
        import os, numpy as np
        from realtime.gallery import store as gm
        real, n = gm._vector_blob, [0]
        def dying(v):
            n[0] += 1
            if n[0] == 2:
                os._exit(17)  # hard crash inside the write transaction, no cleanup
            return real(v)
        gm._vector_blob = dying
        g = gm.Gallery.open({str(filled)!r}, {SHA!r})
        g.enroll("carol", np.ones((3, {D}), np.float32))
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=60)
    assert result.returncode == 17, result.stderr.decode()
    with Gallery.open(filled, SHA, create=False) as g:
        assert [(p.name, p.n_embeddings) for p in g.persons()] == [("alice", 3), ("bob", 2)]
        assert g._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------------------------------------- refusals: open
def test_missing_path_without_create(tmp_path):
    with pytest.raises(GalleryError, match="no gallery at .*missing.db"):
        Gallery.open(tmp_path / "missing.db", SHA, create=False)
    assert not (tmp_path / "missing.db").exists()


def test_empty_file_without_create(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    with pytest.raises(GalleryError, match="empty file"):
        Gallery.open(path, SHA, create=False)


def test_missing_folder_and_missing_model_info(tmp_path):
    with pytest.raises(GalleryError, match="does not exist"):
        Gallery.open(tmp_path / "nope" / "g.db", SHA, "m", D)
    with pytest.raises(GalleryError, match="sha256, name and embedding size"):
        Gallery.open(tmp_path / "g.db", SHA)
    with pytest.raises(GalleryError, match="64 hex digits"):
        Gallery.open(tmp_path / "g.db", "not-a-hash", "m", D)
    with pytest.raises(GalleryError, match="folder"):
        Gallery.open(tmp_path, SHA, "m", D)


def test_random_bytes_file_is_not_sqlite(tmp_path):
    path = tmp_path / "random.db"
    payload = np.random.default_rng(0).bytes(4096)
    path.write_bytes(payload)
    with pytest.raises(GalleryError, match="not an SQLite database"):
        Gallery.open(path, SHA, "m", D)
    assert path.read_bytes() == payload  # untouched


def test_sqlite_header_then_garbage_is_corrupt(tmp_path):
    path = tmp_path / "corrupt.db"
    payload = b"SQLite format 3\x00" + np.random.default_rng(1).bytes(8192)
    path.write_bytes(payload)
    with pytest.raises(GalleryError, match="corrupt"):
        Gallery.open(path, SHA, "m", D)
    assert path.read_bytes() == payload


def test_damaged_pages_are_corrupt(db_path):
    with Gallery.open(db_path, SHA, "m", D) as g:
        for i in range(40):
            g.enroll(f"person{i:02d}", _vecs(4, i))
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(db_path.read_bytes())
    assert len(data) >= 4 * page
    data[page:len(data)] = np.random.default_rng(2).bytes(len(data) - page)  # everything after the first page
    db_path.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="corrupt|damaged"):
        Gallery.open(db_path, SHA)


def test_other_sqlite_database_is_not_a_gallery(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(GalleryError, match="not an rtv gallery"):
        Gallery.open(path, SHA, "m", D)
    conn = sqlite3.connect(path)
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["songs"]
    conn.close()


def test_wrong_schema_is_refused(filled):
    conn = sqlite3.connect(filled)
    conn.execute("ALTER TABLE persons ADD COLUMN nickname TEXT")
    conn.commit()
    conn.close()
    with pytest.raises(GalleryError, match="damaged schema: table persons"):
        Gallery.open(filled, SHA)


def test_newer_schema_version_is_refused(filled):
    conn = sqlite3.connect(filled)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(GalleryError, match="newer than this rtv"):
        Gallery.open(filled, SHA)


def test_model_mismatch_at_open(filled):
    with pytest.raises(GalleryError) as info:
        Gallery.open(filled, OTHER_SHA, "other-embedder", D)
    message = str(info.value)
    assert SHA in message and OTHER_SHA in message and "re-enrol with 'rtv enroll' or rebuild the gallery" in message
    assert "\n" not in message
    with pytest.raises(GalleryError, match="8-dimensional .* gives 128; re-enrol"):
        Gallery.open(filled, SHA, "test-embedder", 128)


def test_embeddings_of_another_model_inside_the_file(filled):
    conn = sqlite3.connect(filled)
    conn.execute("UPDATE embeddings SET model_sha256 = ? WHERE id = 1", (OTHER_SHA,))
    conn.commit()
    conn.close()
    with Gallery.open(filled, SHA) as g:
        with pytest.raises(GalleryError, match=f"another model .*{OTHER_SHA}.*re-enrol"):
            g.vectors()


def test_locked_by_another_writer(filled):
    with Gallery.open(filled, SHA, busy_timeout_s=0.1) as g:
        before = _state(g)
        other = sqlite3.connect(filled, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("DELETE FROM embeddings")
            with pytest.raises(GalleryError, match="locked by another process"):
                g.enroll("carol", _vecs(2, 8))
            with pytest.raises(GalleryError, match="locked by another process"):
                g.remove("alice")
            _assert_same_state(before, _state(g))  # readers are not blocked in WAL mode
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert g.enroll("carol", _vecs(2, 8)) == 2


def test_locked_while_creating(tmp_path):
    path = tmp_path / "g.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # a blank database, exclusively locked by another process
        with pytest.raises(GalleryError, match="locked by another process"):
            Gallery.open(path, SHA, "m", D, busy_timeout_s=0.1)
        holder.execute("ROLLBACK")
    finally:
        holder.close()


# --------------------------------------------------------------------------------------------- refusals: enrol
def test_wrong_dimension_and_nonfinite_vectors_store_nothing(filled):
    with Gallery.open(filled, SHA) as g:
        before = _state(g)
        with pytest.raises(GalleryError, match="size 16, but .* 8-dimensional .* re-enrol"):
            g.enroll("carol", np.zeros((2, 16), np.float32))
        bad = _vecs(3, 9)
        bad[1, 4] = np.nan
        with pytest.raises(GalleryError, match="embedding 1 holds NaN"):
            g.enroll("carol", bad)
        bad[1, 4] = np.inf
        with pytest.raises(GalleryError, match="NaN or infinite"):
            g.enroll("alice", bad)
        with pytest.raises(GalleryError, match="non-empty"):
            g.enroll("carol", np.zeros((0, D), np.float32))
        with pytest.raises(GalleryError, match="non-empty"):
            g.enroll("carol", np.zeros(D, np.float32))
        with pytest.raises(GalleryError, match="2 sources for 3"):
            g.enroll("carol", _vecs(3), sources=["a", "b"])
        with pytest.raises(GalleryError, match="quality must be finite"):
            g.enroll("carol", _vecs(1), qualities=[float("nan")])
        with pytest.raises(GalleryError, match="name .* is refused: it is empty"):
            g.enroll("  ", _vecs(1))
        _assert_same_state(before, _state(g))


def test_inspection_open_refuses_enrolment(filled):
    with Gallery.open(filled, create=False) as g:
        assert len(g.vectors()[0]) == 5
        with pytest.raises(GalleryError, match="without the embedder's model sha256"):
            g.enroll("carol", _vecs(1))


def test_closed_gallery(filled):
    g = Gallery.open(filled, SHA)
    g.close()
    g.close()  # idempotent
    assert g.closed
    with pytest.raises(GalleryError, match="closed"):
        g.persons()
    with pytest.raises(GalleryError, match="closed"):
        g.enroll("x", _vecs(1))


# ------------------------------------------------------------------------------------------------ export/import
def test_export_import_round_trip(filled, tmp_path):
    out = tmp_path / "people.json"
    with Gallery.open(filled, SHA) as g:
        g.set_access("bob", False, [{"days": "sat,sun", "start": "10:00", "end": "12:00"}])
        assert g.export(out) == 2
        original = _state(g)
        with pytest.raises(GalleryError, match="already exists"):
            g.export(out)
    document = json.loads(out.read_text())
    assert document["model"] == {"sha256": SHA, "name": "test-embedder", "embedding_size": D}
    with Gallery.open(tmp_path / "copy.db", SHA, "test-embedder", D) as copy:
        assert copy.import_(out) == 2
        imported = _state(copy)
    assert [(p.name, p.n_embeddings, p.allowed, p.schedule) for p in imported[0]] == [
        (p.name, p.n_embeddings, p.allowed, p.schedule) for p in original[0]]
    np.testing.assert_array_equal(imported[1], original[1])  # float32 bit exact
    np.testing.assert_array_equal(imported[2], original[2])


def test_import_refuses_another_model(filled, tmp_path):
    out = tmp_path / "people.json"
    with Gallery.open(filled, SHA) as g:
        g.export(out)
    with Gallery.open(tmp_path / "other.db", OTHER_SHA, "other-embedder", D) as other:
        with pytest.raises(GalleryError) as info:
            other.import_(out)
        assert SHA in str(info.value) and OTHER_SHA in str(info.value) and "re-enrol" in str(info.value)
        assert other.persons() == []
    document = json.loads(out.read_text())
    document["model"]["embedding_size"] = 2 * D
    out.write_text(json.dumps(document))
    with Gallery.open(tmp_path / "small.db", SHA, "test-embedder", D) as small:
        with pytest.raises(GalleryError, match="16-dimensional"):
            small.import_(out)


def test_import_conflicts_are_all_or_nothing(filled, tmp_path):
    out = tmp_path / "people.json"
    with Gallery.open(filled, SHA) as g:
        g.export(out)
    with Gallery.open(tmp_path / "target.db", SHA, "test-embedder", D) as target:
        target.enroll("bob", _vecs(1, 10))
        before = _state(target)
        with pytest.raises(GalleryError, match="already in gallery .*: bob"):
            target.import_(out)  # alice is new, bob conflicts: neither is imported
        _assert_same_state(before, _state(target))
        assert target.import_(out, replace=True) == 2
        assert [(p.name, p.n_embeddings) for p in target.persons()] == [("alice", 3), ("bob", 2)]


def test_import_refuses_malformed_files(filled, tmp_path):
    out = tmp_path / "people.json"
    with Gallery.open(filled, SHA) as g:
        g.export(out)
    good = json.loads(out.read_text())
    with Gallery.open(tmp_path / "target.db", SHA, "test-embedder", D) as target:
        cases = {
            "not json": "{",
            "wrong format": json.dumps({**good, "format": "something"}),
            "nan vector": None,
            "bad base64": None,
            "short vector": None,
        }
        nan_doc = json.loads(json.dumps(good))
        nan_doc["persons"][1]["embeddings"][0]["vector"] = base64.b64encode(
            np.full(D, np.nan, "<f4").tobytes()).decode()
        cases["nan vector"] = json.dumps(nan_doc)
        b64_doc = json.loads(json.dumps(good))
        b64_doc["persons"][0]["embeddings"][0]["vector"] = "***"
        cases["bad base64"] = json.dumps(b64_doc)
        short_doc = json.loads(json.dumps(good))
        short_doc["persons"][0]["embeddings"][0]["vector"] = base64.b64encode(b"\0" * 12).decode()
        cases["short vector"] = json.dumps(short_doc)
        for label, text in cases.items():
            out.write_text(text)
            with pytest.raises(GalleryError):
                target.import_(out)
            assert target.persons() == [], label
        with pytest.raises(GalleryError, match="no export file"):
            target.import_(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------------------------- schedules
def test_parse_days():
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("sat, sun") == frozenset({5, 6})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("daily") == frozenset(range(7))
    assert parse_days("Tuesday") == frozenset({1})
    for bad in ("", "funday", "mon-", "mon-tue-wed", 3):
        with pytest.raises(GalleryError):
            parse_days(bad)


def test_validate_schedule_refusals():
    assert validate_schedule(None) is None
    assert validate_schedule([]) == []
    for bad in ({"days": "mon"}, [{"days": "mon", "start": "07:00"}],
                [{"days": "mon", "start": "07:00", "end": "07:00"}],
                [{"days": "mon", "start": "24:00", "end": "07:00"}],
                [{"days": "mon", "start": "07:60", "end": "08:00"}],
                [{"days": "mon", "start": "07:00", "end": "08:00", "extra": 1}]):
        with pytest.raises(GalleryError):
            validate_schedule(bad)


def test_schedule_allows():
    weekdays = validate_schedule([{"days": "mon-fri", "start": "07:00", "end": "20:00"}])
    monday = datetime(2024, 1, 1)  # a Monday
    assert schedule_allows(weekdays, monday.replace(hour=7))
    assert schedule_allows(weekdays, monday.replace(hour=19, minute=59))
    assert not schedule_allows(weekdays, monday.replace(hour=20))
    assert not schedule_allows(weekdays, monday.replace(hour=6, minute=59))
    assert not schedule_allows(weekdays, datetime(2024, 1, 6, 12))  # Saturday
    night = validate_schedule([{"days": "fri", "start": "22:00", "end": "02:00"}])
    assert schedule_allows(night, datetime(2024, 1, 5, 23, 30))  # Friday night
    assert schedule_allows(night, datetime(2024, 1, 6, 1, 59))  # early Saturday, same window
    assert not schedule_allows(night, datetime(2024, 1, 6, 23, 0))  # Saturday night
    assert not schedule_allows(night, datetime(2024, 1, 5, 1, 0))  # early Friday belongs to Thursday
    assert schedule_allows(None, monday)
    assert not schedule_allows([], monday)
