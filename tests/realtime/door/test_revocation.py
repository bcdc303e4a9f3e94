"""Revocation reaches a running door: gallery changes between frames (remove, replace embeddings, deny, delete,
replace or spoil the file) take effect on the next frames; a missing or unreadable gallery locks the door."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime

import numpy as np
import pytest

from realtime.config import SourceConfig, load_config
from realtime.door.audit import AuditLog
from realtime.door.live_gallery import LiveGallery
from realtime.door.mode import run_door
from realtime.errors import GalleryError
from realtime.gallery.store import Gallery
from realtime.io.capture import RawFrame, Source

from .conftest import scene_frames

SETTINGS = ["door.use_calibration=false", "door.cooldown_s=60", "door.track_cooldown_s=60"]
NOON = datetime(2025, 1, 8, 12, 0)
SHA = "ab" * 32


class MutatingReader:
    """A file-like scripted source that calls ``at_frame(i)`` before handing out frame ``i``."""

    kind = "fake"
    description = "scripted frames"
    live = False
    fps, expected_frames, size_wh = 0.0, 0, (0, 0)

    def __init__(self, frames, at_frame):
        self.frames = frames
        self.at_frame = at_frame
        self.i = 0

    def open(self):
        pass

    def read(self):
        if self.i >= len(self.frames):
            return None
        self.at_frame(self.i)
        self.i += 1
        return RawFrame(self.frames[self.i - 1], self.i / 10.0)

    def close(self):
        pass


def _other_gallery(path, like):
    """A valid gallery for the same model with nobody in it who looks like the astronaut."""
    with Gallery.open(like, create=False) as g:
        sha, name, size = g.model_sha256, g.model_name, g.embedding_size
    with Gallery.open(path, model_sha256=sha, model_name=name, embedding_size=size) as g:
        g.enroll("somebody", np.full((1, size), 0.5, np.float32))


def _remove(path):
    with Gallery.open(path, create=False) as g:
        g.remove("astronaut")


def _replace_embeddings(path):
    with Gallery.open(path, create=False) as g:
        sha, size = g.model_sha256, g.embedding_size
    with Gallery.open(path, model_sha256=sha) as g:
        g.enroll("astronaut", np.full((1, size), 0.5, np.float32), replace=True)


def _deny(path):
    with Gallery.open(path, create=False) as g:
        g.set_access("astronaut", False)


def _delete(path):
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _replace_file(path):
    new = path.with_name("new.sqlite")
    _other_gallery(new, path)
    os.replace(new, path)


def _spoil(path):
    with open(path, "r+b") as fh:
        fh.write(b"garbage, not a database" * 200)


CHANGES = {"remove": _remove, "replace embeddings": _replace_embeddings, "deny": _deny, "delete": _delete,
           "replace file": _replace_file, "spoil": _spoil}


def _run(tmp_path, gallery, change=None, at=2):
    frames = [f for _w, f in scene_frames((("astronaut", 14),))]
    done = []

    def at_frame(i):
        if change is not None and i == at and not done:
            done.append(i)
            change(gallery)

    config = load_config(None, [f"faces.gallery={gallery}", f"door.audit={tmp_path / 'audit.sqlite'}", *SETTINGS])
    source = Source(MutatingReader(frames, at_frame), SourceConfig(policy="every", queue_size=1))
    outcome = run_door(config, source=source, show_window=False, now=lambda: NOON, echo=lambda _t: None)
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
    return outcome, records


@pytest.mark.parametrize("what", list(CHANGES))
def test_a_gallery_change_mid_track_takes_effect(tmp_path, astronaut_gallery, what):
    gallery = tmp_path / "gallery.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    outcome, records = _run(tmp_path, gallery, CHANGES[what])
    assert outcome.grants == [], what
    assert not [r for r in records if r["decision"] == "GRANT"]
    alarms = [r for r in records if r["kind"] == "alarm"]
    recoveries = [r for r in records if r["kind"] == "recovery"]
    if what in ("delete", "spoil"):
        assert alarms and "door locked" in alarms[0]["reason"] and not recoveries
    elif what == "replace file":
        assert "replaced by another file" in alarms[0]["reason"] and recoveries
    else:
        assert not alarms
    if what == "deny":
        assert [r["reason"] for r in records if r["decision"] == "DENY"] == ["not allowed"]
    assert records[-1]["kind"] == "stop"


def test_control_run_without_a_change_grants(tmp_path, astronaut_gallery):
    gallery = tmp_path / "gallery.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    outcome, _records = _run(tmp_path, gallery)
    assert outcome.grants == ["astronaut"]


def test_an_invalid_stored_name_refuses_the_start(tmp_path, astronaut_gallery):
    gallery = tmp_path / "gallery.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    with sqlite3.connect(gallery) as conn:
        conn.execute("UPDATE persons SET name = '--help' WHERE name = 'astronaut'")
    with pytest.raises(GalleryError, match="invalid person name"):
        _run(tmp_path, gallery)
    with AuditLog.open(tmp_path / "audit.sqlite", create=False) as audit:
        assert [r["kind"] for r in audit.records()] == ["alarm", "stop"]


def test_live_gallery_sees_every_kind_of_change(tmp_path):
    """The watch itself, without models: commit by another process, delete, restore, replace, spoil."""
    path = tmp_path / "g.sqlite"
    with Gallery.open(path, model_sha256=SHA, model_name="m", embedding_size=4) as g:
        g.enroll("ann", np.eye(4, dtype=np.float32)[:1])
        g.enroll("bob", np.eye(4, dtype=np.float32)[1:2])
    now = [0.0]
    live = LiveGallery(path, SHA, clock=lambda: now[0])
    live.open()
    assert live.check() == [] and sorted(live.labels.tolist()) == ["ann", "bob"]
    with Gallery.open(path, create=False) as g:
        g.remove("bob")
    (event,) = live.check()
    assert event.kind == "changed" and live.labels.tolist() == ["ann"]
    with Gallery.open(path, create=False) as g:
        g.set_access("ann", False)
    live.check()
    assert live.access("ann").allowed is False
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(path) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    _delete(path)
    (event,) = live.check()
    assert event.kind == "alarm" and live.locked and len(live.labels) == 0
    with pytest.raises(GalleryError, match="unavailable"):
        live.access("ann")
    assert live.check() == []  # still locked, no second alarm
    shutil.copy(backup, path)
    now[0] += 1.0
    (event,) = live.check()
    assert event.kind == "recovered" and not live.locked and live.labels.tolist() == ["ann"]
    _replace_file_plain = tmp_path / "other.sqlite"
    with Gallery.open(_replace_file_plain, model_sha256=SHA, model_name="m", embedding_size=4) as g:
        g.enroll("carol", np.eye(4, dtype=np.float32)[2:3])
    os.replace(_replace_file_plain, path)
    kinds = [e.kind for e in live.check()]
    assert kinds == ["alarm", "recovered"] and live.labels.tolist() == ["carol"]
    _spoil(path)
    (event,) = live.check()
    assert event.kind == "alarm" and "unreadable" in event.reason
    live.close()
    live.close()
