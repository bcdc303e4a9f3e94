"""Audit log against an attacker: planted schema objects, records that vanish after commit, the keyed MAC, the meta
table, truncation and recomputed chains (the kept head), spreadsheet formulas, forged lines in listings."""

from __future__ import annotations

import csv
import os
import sqlite3
import stat

import pytest

from realtime.cli.main import main
from realtime.door.audit import AuditLog, load_key, meta_anchor, record_hash, write_key_file
from realtime.errors import AuditError, ConfigError

KEY = b"k" * 40


def _fill(path, n=4, key=None):
    with AuditLog.open(path, key=key) as log:
        log.append("start", "d1", "started", threshold=0.55)
        for i in range(n - 1):
            log.append("decision", "d1", "recognised", decision="GRANT", person=f"p{i}", distance=0.1 + i / 7)


def _rows(path):
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM events ORDER BY seq").fetchall()


def _recompute_chain(path, key=None, start_prev=None):
    """What an attacker with write access but no key does: rewrite every hash with plain sha256 (or a key)."""
    with AuditLog.open(path, create=False) as log:
        recs = list(log.records(with_faces=True))
        prev = start_prev if start_prev is not None else log.anchor
    with sqlite3.connect(path) as conn:
        for rec in recs:
            digest = record_hash(prev, rec, rec["face_jpeg"], key)
            conn.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, rec["seq"]))
            prev = digest


@pytest.mark.parametrize("statement, words", [
    ("CREATE TRIGGER drop_all AFTER INSERT ON events BEGIN DELETE FROM events WHERE seq = new.seq; END", "trigger"),
    ("CREATE TRIGGER keep_quiet BEFORE UPDATE ON meta BEGIN SELECT 1; END", "trigger"),
    ("CREATE VIEW v AS SELECT * FROM events", "view"),
    ("CREATE INDEX by_person ON events(person)", "index"),
    ("CREATE TABLE shadow (x)", "table"),
    ("DROP INDEX events_ts", "no index"),
])
def test_a_planted_schema_object_is_refused_on_open(tmp_path, statement, words):
    path = tmp_path / "audit.sqlite"
    _fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    with pytest.raises(AuditError, match=f"altered: it has {words}"):
        AuditLog.open(path, create=False)


def test_a_trigger_planted_while_the_log_is_open_stops_the_next_append(tmp_path):
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path) as log:
        log.append("start", "d1", "started")
        with sqlite3.connect(path) as other:
            other.execute("CREATE TRIGGER drop_all AFTER INSERT ON events BEGIN DELETE FROM events; END")
        with pytest.raises(AuditError, match="trigger 'drop_all'"):
            log.append("decision", "d1", "recognised", decision="GRANT", person="ann")
    assert len(_rows(path)) == 1


def test_a_record_that_vanishes_after_commit_is_an_error_not_a_seq(tmp_path):
    """A temporary trigger (invisible in the file's schema) deletes each record as it is inserted: the read-back
    after the commit catches it, so the door never reports 'audit #N' for a record that is not there."""
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path) as log:
        log.append("start", "d1", "started")
        log._db.execute("CREATE TEMP TRIGGER vanish AFTER INSERT ON main.events BEGIN "
                        "DELETE FROM events WHERE seq = new.seq; END")
        with pytest.raises(AuditError, match="#2 is missing after its commit"):
            log.append("decision", "d1", "recognised", decision="GRANT", person="ann")
        log._db.execute("DROP TRIGGER temp.vanish")
        log._db.execute("CREATE TEMP TRIGGER rewrite AFTER INSERT ON main.events BEGIN "
                        "UPDATE events SET person = 'mallory' WHERE seq = new.seq; END")
        with pytest.raises(AuditError, match="differs from what was written"):
            log.append("decision", "d1", "recognised", decision="GRANT", person="ann")


def test_the_meta_table_is_covered_by_the_chain(tmp_path):
    path = tmp_path / "audit.sqlite"
    _fill(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '2001-01-01T00:00:00+00:00' WHERE key = 'created'")
    with AuditLog.open(path, create=False) as log:
        report = log.verify()
    assert not report.ok and report.broken_seq == 1 and "anchor" in report.problem


def test_truncation_and_a_recomputed_chain_are_caught_by_the_kept_head(tmp_path):
    path = tmp_path / "audit.sqlite"
    _fill(path, n=6)
    with AuditLog.open(path, create=False) as log:
        head = log.head()
    assert head.startswith("6:")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq > 4")
    with AuditLog.open(path, create=False) as log:
        assert log.verify().ok  # a plain chain cannot tell
        report = log.verify(expect_head=head)
    assert not report.ok and "5..6 were cut off the end" in report.problem

    path2 = tmp_path / "audit2.sqlite"
    _fill(path2, n=6)
    with AuditLog.open(path2, create=False) as log:
        head = log.head()
    with sqlite3.connect(path2) as conn:
        conn.execute("UPDATE events SET person = 'mallory' WHERE seq = 3")
    _recompute_chain(path2)
    with AuditLog.open(path2, create=False) as log:
        assert log.verify().ok
        report = log.verify(expect_head=head)
        assert not report.ok and "rewritten" in report.problem and report.broken_seq == 6
        log.append("stop", "d1", "more records after the kept head are fine")
    with AuditLog.open(tmp_path / "audit.sqlite", create=False) as log:
        grown = log.head()
        log.append("stop", "d1", "grown")
        assert log.verify(expect_head=grown).ok


def test_a_keyed_log_cannot_be_rewritten_or_extended_without_the_key(tmp_path):
    path = tmp_path / "audit.sqlite"
    _fill(path, key=KEY)
    with AuditLog.open(path, create=False, key=KEY) as log:
        assert log.keyed and log.verify().ok
        records = list(log.records(with_faces=True))
    assert records[0]["prev_hash"] == meta_anchor(log.meta, KEY)
    with AuditLog.open(path, create=False) as log:
        assert len(list(log.records())) == 4  # reading needs no key
        with pytest.raises(AuditError, match="needs its key"):
            log.verify()
        with pytest.raises(AuditError, match="needs its key"):
            log.append("stop", "d1", "x")
    with pytest.raises(AuditError, match="another key"):
        AuditLog.open(path, create=False, key=b"x" * 40)

    # rewrite a record and recompute every hash (the attacker has no key: plain sha256, or a guessed key)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE events SET person = 'mallory' WHERE seq = 2")
    _recompute_chain(path)
    with AuditLog.open(path, create=False, key=KEY) as log:
        report = log.verify()
    assert not report.ok and report.broken_seq == 1

    # extend a clean keyed log with a record whose hash is a plain sha256
    path2 = tmp_path / "audit2.sqlite"
    _fill(path2, key=KEY)
    with AuditLog.open(path2, create=False, key=KEY) as log:
        last = list(log.records(with_faces=True))[-1]
    forged = dict(last, seq=5, person="mallory", prev_hash=last["hash"])
    forged["hash"] = record_hash(last["hash"], forged, None)
    with sqlite3.connect(path2) as conn:
        cols = ", ".join(forged)
        conn.execute(f"INSERT INTO events ({cols}) VALUES ({', '.join('?' * len(forged))})", list(forged.values()))
    with AuditLog.open(path2, create=False, key=KEY) as log:
        report = log.verify()
    assert not report.ok and report.broken_seq == 5 and "MAC" in report.problem

    # downgrade: make the log claim it has no key, recompute with sha256: the configured key refuses it
    path3 = tmp_path / "audit3.sqlite"
    _fill(path3, key=KEY)
    with sqlite3.connect(path3) as conn:
        conn.execute("UPDATE meta SET value = 'sha256' WHERE key = 'mac'")
        conn.execute("DELETE FROM meta WHERE key = 'key_id'")
    with AuditLog.open(path3, create=False) as log:
        anchor = log.anchor
    _recompute_chain(path3, start_prev=anchor)
    with AuditLog.open(path3, create=False, key=KEY) as log, pytest.raises(AuditError, match="no key"):
        log.verify()


def test_key_files(tmp_path):
    key_path = tmp_path / "audit.key"
    key_id = write_key_file(key_path)
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600 and len(key_id) == 16
    assert len(load_key(key_path)) == 64
    with pytest.raises(Exception, match="never replaced"):
        write_key_file(key_path)
    short = tmp_path / "short.key"
    short.write_text("tiny")
    with pytest.raises(ConfigError, match="door.audit_key_file.*fewer than 32"):
        load_key(short)
    with pytest.raises(ConfigError, match="no such key file"):
        load_key(tmp_path / "none.key")
    log_path = tmp_path / "audit.sqlite"
    _fill(log_path)
    with pytest.raises(ConfigError, match="SQLite database, not a key file"):
        load_key(log_path)


def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_head_verify_expect_head_keygen_and_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key_path = tmp_path / "door.key"
    code, _out, _err = _cli(capsys, "audit", "keygen", str(key_path))
    assert code == 0 and key_path.is_file()
    assert _cli(capsys, "audit", "keygen", str(key_path))[0] == 6
    path = tmp_path / "audit.sqlite"
    _fill(path, n=5, key=load_key(key_path))
    base = ["audit", "--log", str(path), "--key-file", str(key_path)]
    code, out, _err = _cli(capsys, *base, "head")
    head = out.strip()
    assert code == 0 and head.startswith("5:") and len(out.splitlines()) == 1
    assert _cli(capsys, *base, "verify", "--expect-head", head)[0] == 0
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM events WHERE seq = 5")
    code, _out, err = _cli(capsys, *base, "verify", "--expect-head", head)
    assert code == 10 and "cut off the end" in err and len(err.strip().splitlines()) == 1
    code, _out, err = _cli(capsys, "audit", "--log", str(path), "verify")
    assert code == 10 and "needs its key" in err
    for bad in (["list", "--since", "yesterday"], ["export", "x.csv", "--since", "2025-13-45"],
                ["verify", "--expect-head", "not-a-head"]):
        assert main(base + bad) == 2, bad  # a usage error: one line, exit 2 (main returns it)
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_export_escapes_formulas_and_list_escapes_control_and_bidi(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "audit.sqlite"
    names = ['=HYPERLINK("http://evil","x")', "@SUM(1)", "+1+2", "-2+3", "\tTab", "\rCR", "plain"]
    with AuditLog.open(path) as log:
        for name in names:
            log.append("decision", "d1", "recognised", decision="GRANT", person=name, margin=-0.5)
        log.append("decision", "d1", "line one\u2028#99 forged GRANT admin", decision="DENY",
                   person="evil\u202egnp.exe\x1b[2J")
    code, _out, _err = _cli(capsys, "audit", "--log", str(path), "export", str(tmp_path / "out.csv"))
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "out.csv").open(newline="", encoding="utf-8")))
    persons = [r["person"] for r in rows]
    assert persons[:7] == ["'" + n for n in names[:6]] + ["plain"]
    assert rows[0]["margin"] == "-0.5"  # numbers are never formulas: left as numbers
    code, out, _err = _cli(capsys, "audit", "--log", str(path), "list")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(names) + 1
    assert "\\u2028" in lines[-1] and "\\u202e" in lines[-1] and "\\x1b" in lines[-1]
    assert not any(ch in out for ch in "\u2028\u202e\x1b\r")


def test_door_mode_writes_a_keyed_log_with_door_audit_key_file(tmp_path, astronaut_gallery):
    import numpy as np

    from realtime.config import SourceConfig, load_config
    from realtime.door.mode import run_door
    from realtime.io.capture import RawFrame, Source

    class Blank:
        kind, description, live = "fake", "blank frames", False
        fps, expected_frames, size_wh = 0.0, 0, (0, 0)

        def __init__(self):
            self.i = 0

        def open(self):
            pass

        def read(self):
            self.i += 1
            return None if self.i > 2 else RawFrame(np.full((120, 160, 3), 114, np.uint8), self.i / 10)

        def close(self):
            pass

    key_path = tmp_path / "door.key"
    write_key_file(key_path)
    log_path = tmp_path / "audit.sqlite"
    config = load_config(None, [f"faces.gallery={astronaut_gallery}", f"door.audit={log_path}",
                                f"door.audit_key_file={key_path}"])
    run_door(config, source=Source(Blank(), SourceConfig(policy="every")), show_window=False, echo=lambda _t: None)
    with AuditLog.open(log_path, create=False, key=load_key(key_path)) as log:
        assert log.keyed and log.verify().ok and [r["kind"] for r in log.records()] == ["start", "stop"]
    other = tmp_path / "other.key"
    write_key_file(other)
    config = load_config(None, [f"faces.gallery={astronaut_gallery}", f"door.audit={log_path}",
                                f"door.audit_key_file={other}"])
    with pytest.raises(AuditError, match="another key"):
        run_door(config, source=Source(Blank(), SourceConfig(policy="every")), show_window=False,
                 echo=lambda _t: None)
