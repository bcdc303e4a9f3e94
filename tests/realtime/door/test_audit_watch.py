"""The door watches its own audit log: a swapped, shrunk or foreign-written log is caught before the next record
(and by a running door within one frame); nothing is granted after it, the door's own copy is kept as evidence with
an alarm and the stop record, and the error is one line (no traceback)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime

import pytest

from realtime.door.audit import AuditLog, load_key, write_key_file
from realtime.errors import AuditError


def _swap(path):
    """A backup copy of the log moved over it, -wal/-shm removed (what an attacker with write access can do)."""
    copy = path.with_name("copy.sqlite")
    src = sqlite3.connect(str(path))
    dst = sqlite3.connect(str(copy))
    src.backup(dst)
    src.close(), dst.close()
    for suffix in ("-wal", "-shm"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass
    os.replace(copy, path)


def test_a_swapped_log_is_caught_before_the_next_record_and_the_door_copy_is_kept(tmp_path):
    key_path = tmp_path / "k.key"
    write_key_file(key_path)
    key = load_key(key_path)
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path, key=key) as log:
        for i in range(3):
            log.append("decision", "d1", "ok", decision="GRANT", person=f"p{i}")
        _swap(path)
        with pytest.raises(AuditError, match="replaced by another file") as caught:
            log.append("decision", "d1", "ok", decision="GRANT", person="late")
        assert log.kept_path is not None and str(log.kept_path) in str(caught.value)
        log.append("stop", "d1", "stopped")  # later records go to the kept copy
    with AuditLog.open(log.kept_path, create=False, key=key) as kept:
        kinds = [r["kind"] for r in kept.records()]
        assert kinds == ["decision"] * 3 + ["alarm", "stop"] and kept.verify().ok
        assert not any(r["person"] == "late" for r in kept.records())
    with AuditLog.open(path, create=False, key=key) as on_disk:
        assert [r["person"] for r in on_disk.records()] == ["p0", "p1", "p2"]


def test_a_deleted_log_a_rewritten_last_record_and_a_planted_trigger_are_caught(tmp_path):
    path = tmp_path / "audit.sqlite"
    with AuditLog.open(path) as log:
        log.append("start", "d", "go")
        other = sqlite3.connect(str(path))
        other.execute("UPDATE events SET reason = 'forged' WHERE seq = 1")
        other.commit()
        with pytest.raises(AuditError, match="another program|schema"):
            log.watch()
    path2 = tmp_path / "b.sqlite"
    with AuditLog.open(path2) as log:
        log.append("start", "d", "go")
        other = sqlite3.connect(str(path2))
        other.execute("CREATE TRIGGER t BEFORE INSERT ON events BEGIN SELECT RAISE(IGNORE); END")
        other.commit()
        other.close()
        with pytest.raises(AuditError, match="schema"):
            log.watch()
    path3 = tmp_path / "c.sqlite"
    with AuditLog.open(path3) as log:
        log.append("start", "d", "go")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path3}{suffix}"):
                os.remove(f"{path3}{suffix}")
        with pytest.raises(AuditError, match="deleted or moved"):
            log.watch()


def test_a_running_door_stops_within_one_frame_of_a_swap(tmp_path, astronaut_gallery):
    from realtime.config import SourceConfig, load_config
    from realtime.door.mode import run_door
    from realtime.io.capture import Source

    from .conftest import scene_frames
    from .test_revocation import MutatingReader

    frames = [f for _w, f in scene_frames((("blank", 2), ("astronaut", 16)))]
    key_path = tmp_path / "k.key"
    write_key_file(key_path)
    log_path = tmp_path / "audit.sqlite"
    swapped_at = []

    def at_frame(i):
        if i == 4 and not swapped_at:
            swapped_at.append(i)
            _swap(log_path)

    config = load_config(None, [f"faces.gallery={astronaut_gallery}", f"door.audit={log_path}",
                                f"door.audit_key_file={key_path}", "door.use_calibration=false"])
    said = []
    with pytest.raises(AuditError, match="replaced") as caught:
        run_door(config, source=Source(MutatingReader(frames, at_frame), SourceConfig(policy="every", queue_size=1)),
                 show_window=False, now=lambda: datetime(2025, 1, 8, 12), echo=said.append)
    assert not any("GRANT" in line for line in said), said
    kept = sorted(tmp_path.glob("audit.sqlite.kept-*.sqlite"))
    assert len(kept) == 1 and str(kept[0]) in str(caught.value)
    with AuditLog.open(kept[0], create=False, key=load_key(key_path)) as log:
        kinds = [r["kind"] for r in log.records()]
        assert kinds[0] == "start" and kinds[-2:] == ["alarm", "stop"] and log.verify().ok
        assert not any(r["decision"] == "GRANT" for r in log.records())


def test_door_audit_errors_are_one_line_without_traceback(tmp_path, astronaut_gallery, capsys):
    from realtime.cli.main import main

    key_path = tmp_path / "k.key"
    write_key_file(key_path)
    log_path = tmp_path / "audit.sqlite"
    AuditLog.open(log_path).close()  # an unkeyed log, then a key set for it
    video = tmp_path / "v.mp4"
    shutil.copy(_blank_video(tmp_path), video)
    code = main(["door", "--no-window", "--source", str(video), "--set", f"faces.gallery={astronaut_gallery}",
                 "--set", f"door.audit={log_path}", "--set", f"door.audit_key_file={key_path}"])
    err = capsys.readouterr().err
    assert code == 10 and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("rtv: error")]) == 1


def _blank_video(tmp_path):
    import numpy as np

    from realtime.io.sinks import Mp4Writer

    path = tmp_path / "blank.mp4"
    with Mp4Writer(path, fps=10.0, crf=30, preset="ultrafast") as writer:
        for _ in range(3):
            writer.write(np.full((120, 160, 3), 114, np.uint8))
    return path
