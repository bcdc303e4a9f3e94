"""A lost camera does not end the door: alarm, door locked, reopened with capped backoff until it is back (recovery
in the audit log), or until door.max_camera_down_s; a source that cannot be opened at start is an alarm and a stop."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import numpy as np
import pytest

from realtime.config import SourceConfig, load_config
from realtime.door.audit import AuditLog
from realtime.door.camera import ResilientSource
from realtime.door.mode import run_door
from realtime.errors import SourceError
from realtime.io.capture import RawFrame, Source

from .conftest import scene_frames

SETTINGS = ["door.use_calibration=false", "door.cooldown_s=60", "door.track_cooldown_s=60"]
NOON = datetime(2025, 1, 8, 12, 0)
QUICK = dict(policy="every", reconnect_attempts=1, reconnect_backoff_s=0.01, reconnect_backoff_max_s=0.04)


class FlakyCamera:
    """A live camera: ``frames``; it breaks before frame ``fail_at``, then refuses ``bad_opens`` reopens."""

    kind = "fake"
    description = "flaky camera"
    live = True
    fps, expected_frames, size_wh = 0.0, 0, (0, 0)

    def __init__(self, frames, fail_at=None, bad_opens=0, fail_first_open=False):
        self.frames = frames
        self.fail_at = fail_at
        self.bad_opens = bad_opens
        self.fail_first_open = fail_first_open
        self.i = 0
        self.opens = 0
        self.broken = False

    def open(self):
        self.opens += 1
        if self.fail_first_open:
            raise SourceError("flaky camera: cannot open /dev/video0 (no such device)")
        if self.broken:
            if self.bad_opens > 0:
                self.bad_opens -= 1
                raise SourceError("flaky camera: open failed (unplugged)")
            self.broken = False

    def read(self):
        if self.broken:
            raise SourceError("flaky camera: not open")
        if self.fail_at is not None and self.i == self.fail_at:
            self.fail_at = None
            self.broken = True
            raise SourceError("flaky camera: reading a frame failed")
        if self.i >= len(self.frames):
            return None
        self.i += 1
        return RawFrame(self.frames[self.i - 1], self.i / 10.0)

    def close(self):
        pass


def _door(tmp_path, gallery, camera, *extra):
    config = load_config(None, [f"faces.gallery={gallery}", f"door.audit={tmp_path / 'audit.sqlite'}",
                                f"door.door_id=lab", *SETTINGS, *extra])
    return config, Source(camera, SourceConfig(**QUICK))


def test_camera_lost_mid_visit_comes_back_and_the_door_works_again(tmp_path, astronaut_gallery):
    gallery = tmp_path / "gallery.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    frames = [f for _w, f in scene_frames((("astronaut", 3), ("astronaut", 12)))]
    camera = FlakyCamera(frames, fail_at=3, bad_opens=4)
    config, source = _door(tmp_path, gallery, camera)
    messages: list[str] = []
    outcome = run_door(config, source=source, show_window=False, out_jsonl=tmp_path / "d.jsonl", now=lambda: NOON,
                       echo=messages.append)
    assert outcome.result.reason == "end" and outcome.result.frames == len(frames)
    assert outcome.grants == ["astronaut"]
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
        assert audit.verify().ok
    kinds = [r["kind"] for r in records]
    assert kinds[:3] == ["start", "alarm", "recovery"] and kinds[-1] == "stop"
    assert "door locked" in records[1]["reason"] and "camera back" in records[2]["reason"]
    assert [r["decision"] for r in records if r["kind"] == "decision"] == ["GRANT"]
    assert kinds.index("decision") > kinds.index("recovery")
    frames_seen = [json.loads(line)["frame"] for line in (tmp_path / "d.jsonl").read_text().splitlines()
                   if "frame" in json.loads(line)]
    assert frames_seen == list(range(len(frames)))  # numbering continues across the outage
    assert any(m.startswith("ALARM camera") for m in messages) and any("RECOVERED camera" in m for m in messages)


def test_camera_down_beyond_the_limit_stops_the_door_with_an_alarm(tmp_path, astronaut_gallery):
    frames = [f for _w, f in scene_frames((("astronaut", 3),))]
    camera = FlakyCamera(frames, fail_at=2, bad_opens=10 ** 6)
    config, source = _door(tmp_path, astronaut_gallery, camera, "door.max_camera_down_s=0.2")
    outcome = run_door(config, source=source, show_window=False, echo=lambda _t: None)
    assert outcome.result.reason == "error" and "max_camera_down_s" in outcome.result.error
    assert camera.opens > 2  # it kept trying
    with AuditLog.open(config.door.audit, create=False) as audit:
        kinds = [r["kind"] for r in audit.records()]
    assert kinds == ["start", "alarm", "alarm", "stop"]


def test_a_source_that_fails_to_open_writes_an_alarm_and_a_stop_record(tmp_path, astronaut_gallery):
    config, source = _door(tmp_path, astronaut_gallery, FlakyCamera([], fail_first_open=True))
    with pytest.raises(SourceError, match="no such device"):
        run_door(config, source=source, show_window=False, echo=lambda _t: None)
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
    assert [r["kind"] for r in records] == ["start", "alarm", "stop"]
    assert "failed to open" in records[1]["reason"] and json.loads(records[2]["detail"])["reason"].startswith("error")


def test_resilient_source_backoff_is_capped_and_clocks_continue():
    frames = [np.zeros((8, 8, 3), np.uint8)] * 4
    camera = FlakyCamera(frames, fail_at=2, bad_opens=6)
    waits: list[float] = []
    events: list[str] = []
    now = [0.0]

    def sleep(s):
        waits.append(s)
        now[0] += s

    source = ResilientSource(Source(camera, SourceConfig(policy="every", reconnect_attempts=0,
                                                         reconnect_backoff_s=0.5, reconnect_backoff_max_s=2.0)),
                             on_lost=lambda r: events.append("lost"), on_back=lambda r: events.append("back"),
                             clock=lambda: now[0], sleep=sleep)
    with source:
        packets = []
        while (p := source.next_packet()) is not None:
            packets.append(p)
    assert events == ["lost", "back"]
    assert waits == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # doubling, capped at reconnect_backoff_max_s
    assert [p.index for p in packets] == [0, 1, 2, 3]
    ts = [p.t_source for p in packets]
    assert all(b > a for a, b in zip(ts, ts[1:])) and ts[2] - ts[1] >= sum(waits)
