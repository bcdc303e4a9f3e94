"""Small door guarantees: door_id validated, key files named for what they are (folder, device, pipe) and a warning
for one others can read, audit errors at start are one line (no traceback), a full disk is named."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from realtime.cli.main import main
from realtime.door.audit import AuditLog, _disk_full, load_key, write_key_file
from realtime.errors import ConfigError


@pytest.mark.parametrize("door_id, words", [("front\ndoor", "line-break"), ("a\x1b[31m", "control"),
                                            ("a\u202eb", "bidi")])
def test_door_id_control_characters_are_refused(door_id, words):
    from realtime.cli.door import check_door_id

    with pytest.raises(ConfigError, match=words):
        check_door_id(door_id)


@pytest.mark.parametrize("door_id, words", [("''", "empty"), ("x" * 3000, "more than 64"), ("-rf", "starts with '-'")])
def test_door_id_is_validated(tmp_path, capsys, door_id, words):
    code = main(["door", "--no-window", "--source", str(tmp_path / "x.mp4"), "--set", f"door.door_id={door_id}",
                 "--set", f"door.audit={tmp_path / 'a.sqlite'}"])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "\x1b" not in err, err


def test_key_files_are_named_for_what_they_are(tmp_path, caplog):
    with pytest.raises(ConfigError, match="is a folder"):
        load_key(tmp_path)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_key("/dev/zero")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_key(fifo)
    key = tmp_path / "k.key"
    write_key_file(key)
    with caplog.at_level(logging.WARNING):
        load_key(key)
    assert not caplog.records
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_key(key)
    assert any("chmod 600" in r.getMessage() for r in caplog.records)


def _blank_video(path: Path) -> Path:
    import numpy as np

    from realtime.io.sinks import Mp4Writer

    with Mp4Writer(path, fps=10.0, crf=30, preset="ultrafast") as writer:
        for _ in range(2):
            writer.write(np.full((120, 160, 3), 114, np.uint8))
    return path


def _keyed_log(tmp_path):
    key = tmp_path / "k.key"
    write_key_file(key)
    log = tmp_path / "keyed.sqlite"
    AuditLog.open(log, key=load_key(key)).close()
    return log


def _schema1_log(tmp_path):
    log = tmp_path / "old.sqlite"
    AuditLog.open(log).close()
    with sqlite3.connect(log) as conn:
        conn.execute("PRAGMA user_version = 1")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    return log


@pytest.mark.parametrize("make", [_keyed_log, _schema1_log])
def test_door_audit_errors_at_start_are_one_line(tmp_path, astronaut_gallery, capsys, make):
    log = make(tmp_path)
    video = _blank_video(tmp_path / "v.mp4")
    code = main(["door", "--no-window", "--source", str(video), "--set", f"faces.gallery={astronaut_gallery}",
                 "--set", f"door.audit={log}"])
    err = capsys.readouterr().err
    assert code == 10 and "Traceback" not in err, err
    assert sum(line.startswith("rtv: error") for line in err.splitlines()) == 1, err


def test_a_full_disk_is_named():
    assert _disk_full(Path("/tmp"), sqlite3.OperationalError("database or disk is full"))
    assert not _disk_full(Path("/tmp"), sqlite3.OperationalError("no such table: x"))
