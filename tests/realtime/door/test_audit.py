"""Audit log: schema, hash chain, verify names the first broken record, list --since, CSV export, durability."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from realtime.door.audit import GENESIS, AuditLog, meta_anchor, record_hash
from realtime.errors import AuditError


def _fill(path, n=4):
    with AuditLog.open(path) as log:
        log.append("start", "d1", "started", threshold=0.55)
        for i in range(n - 1):
            log.append("decision", "d1", "recognised", decision="GRANT", person=f"p{i}", track_id=i,
                       distance=0.1 + i / 7, margin=0.04, frames_used=5, threshold=0.55, model_sha256="ab" * 32,
                       detail={"frame": i}, face_jpeg=b"\xff\xd8jpeg" if i == 1 else None)


def test_chain_links_each_record_to_the_previous_one(tmp_path):
    path = tmp_path / "audit.sqlite"
    _fill(path)
    with AuditLog.open(path, create=False) as log:
        records = list(log.records(with_faces=True))
        report = log.verify()
        meta = dict(log.meta)
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[0]["prev_hash"] == meta_anchor(meta) != GENESIS  # the meta rows anchor the chain
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:]))
    assert records[2]["hash"] == record_hash(records[1]["hash"], records[2], records[2]["face_jpeg"])
    assert all(r["liveness"] == "none" for r in records)
    assert report.ok and report.records == 4 and report.head == records[-1]["hash"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


@pytest.mark.parametrize("sql, seq, words", [
    ("UPDATE events SET person = 'mallory' WHERE seq = 3", 3, "changed"),
    ("UPDATE events SET distance = 0.01 WHERE seq = 2", 2, "changed"),
    ("UPDATE events SET face_jpeg = x'00' WHERE seq = 3", 3, "changed"),
    ("UPDATE events SET liveness = 'checked' WHERE seq = 4", 4, "changed"),
    ("DELETE FROM events WHERE seq = 2", 3, "missing"),
    ("UPDATE events SET hash = 'x' || substr(hash, 2) WHERE seq = 2", 2, "changed"),
])
def test_verify_names_the_first_broken_record(tmp_path, sql, seq, words):
    path = tmp_path / "audit.sqlite"
    _fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    with AuditLog.open(path, create=False) as log:
        report = log.verify()
    assert not report.ok and report.broken_seq == seq and words in report.problem


def test_rewritten_record_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    path = tmp_path / "audit.sqlite"
    _fill(path)
    with AuditLog.open(path, create=False) as log:
        rec = list(log.records(with_faces=True))[1]
    forged = dict(rec, person="mallory")
    new_hash = record_hash(rec["prev_hash"], forged, rec["face_jpeg"])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET person = 'mallory', hash = ? WHERE seq = 2", (new_hash,))
    with AuditLog.open(path, create=False) as log:
        report = log.verify()
    assert report.broken_seq == 3 and "link" in report.problem


def test_list_since_and_csv_export(tmp_path):
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path) as log:
        log.append("alarm", "d1", "camera lost", ts="2025-01-01T08:00:00.000+00:00")
        log.append("decision", "d1", "unknown person", decision="DENY", distance=float("nan"),
                   ts="2025-01-02T08:00:00.000+00:00")
        assert [r["seq"] for r in log.records(since="2025-01-02T00:00:00+00:00")] == [2]
        with pytest.raises(AuditError, match="ISO 8601"):
            list(log.records(since="yesterday"))
        assert log.export_csv(tmp_path / "out.csv") == 2
        assert log.verify().ok  # NaN distance stored as NULL still hashes the same
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["kind"] for r in rows] == ["alarm", "decision"] and rows[1]["distance"] == ""
    assert "face_jpeg" not in rows[0] and rows[0]["liveness"] == "none"


def test_refuses_other_databases_and_bad_kinds(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(AuditError, match="not an rtv audit log"):
        AuditLog.open(other)
    text = tmp_path / "text.sqlite"
    text.write_text("hello, not a database" * 10)
    with pytest.raises(AuditError):
        AuditLog.open(text)
    with pytest.raises(AuditError, match="no audit log"):
        AuditLog.open(tmp_path / "none.sqlite", create=False)
    with AuditLog.open(tmp_path / "a.sqlite") as log, pytest.raises(AuditError, match="kind"):
        log.append("grant", "d1", "x")


def test_records_survive_a_killed_process(tmp_path):
    """A process appends and dies without closing (os._exit): every appended record is there and verifies."""
    path = tmp_path / "audit.sqlite"
    code = textwrap.dedent(f"""
        import os
        from realtime.door.audit import AuditLog
        log = AuditLog.open({str(path)!r})
        for i in range(3):
            log.append("decision", "d1", "recognised", decision="GRANT", person=f"p{{i}}")
        os._exit(9)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr
    with AuditLog.open(path, create=False) as log:
        assert [r["person"] for r in log.records()] == ["p0", "p1", "p2"]
        assert log.verify().ok
