"""Door mode end to end on a scripted scene, headless: decisions, cooldown, hook calls, audit, fail-secure paths."""

from __future__ import annotations

import json
import sqlite3
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from realtime.io.capture import RawFrame, Source
from realtime.cli.main import main
from realtime.config import SourceConfig, load_config
from realtime.door.mode import run_door
from realtime.door.audit import AuditLog
from realtime.errors import GalleryError, ModelError, SourceError

from .conftest import BLANK, scene_frames

# The cameraman looks into his camera (a three-quarter view, yaw ~0.8 from the landmarks): the scene runs with a
# relaxed pose gate so that he is decided at all; test_default_pose_gate_holds_a_turned_face checks the default.
SCENE_SETTINGS = ["door.max_yaw=1.2", "door.max_roll_deg=30", "door.use_calibration=false", "door.door_id=lab-1",
                  "door.cooldown_s=60", "door.track_cooldown_s=60"]
WEDNESDAY_NOON = datetime(2025, 1, 8, 12, 0)


def _config(tmp_path: Path, gallery: Path, *extra: str):
    return load_config(None, [f"faces.gallery={gallery}", f"door.audit={tmp_path / 'audit.sqlite'}",
                              *SCENE_SETTINGS, *extra])


def _argv_hook(tmp_path: Path) -> tuple[str, Path]:
    """A command that appends its argv (after the script name) as one JSON line to a file."""
    script = tmp_path / "unlock.py"
    calls = tmp_path / "calls.jsonl"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        with open({str(calls)!r}, "a") as fh:
            fh.write(json.dumps(sys.argv[1:]) + "\\n")
    """))
    return f'door.hook_command=["{sys.executable}", "{script}", "--door-event"]', calls


def _decisions(jsonl: Path) -> list[dict]:
    out = []
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        for d in record.get("decisions", []):
            out.append({**d, "frame": record["frame"]})
    return out


def test_scripted_scene_decides_once_per_person_and_logs_before_the_hook(tmp_path, scene_video, astronaut_gallery,
                                                                         capsys):
    video, labels = scene_video
    hook_setting, calls = _argv_hook(tmp_path)
    config = _config(tmp_path, astronaut_gallery, hook_setting)
    messages: list[str] = []
    outcome = run_door(config, str(video), show_window=False, out_jsonl=tmp_path / "door.jsonl",
                       now=lambda: WEDNESDAY_NOON, echo=messages.append)

    assert outcome.result.reason == "end" and outcome.result.frames == len(labels)
    assert "from config" in outcome.threshold_text and outcome.threshold == pytest.approx(0.6)
    assert any("NO LIVENESS CHECK" in m for m in messages)
    assert outcome.grants == ["astronaut"]          # once: the third appearance is inside the person cooldown
    assert outcome.denies == ["unknown"]            # the cameraman is not enrolled
    assert outcome.alarms == []

    new = [d for d in _decisions(tmp_path / "door.jsonl") if d["new"]]
    assert [(d["verdict"], d["person"]) for d in new] == [("GRANT", "astronaut"), ("DENY", None)]
    grant, deny = new
    assert labels[grant["frame"]] == "astronaut" and grant["frame"] >= 3 + BLANK  # not on the 3-frame visit
    assert grant["frames_used"] >= config.door.min_frames and grant["distance"] < 0.6
    assert labels[deny["frame"]] == "cameraman" and deny["reason"] == "unknown person"
    assert deny["distance"] >= config.door.deny_threshold
    # The brief first visit only ever asked to hold still.
    early = [d for d in _decisions(tmp_path / "door.jsonl") if d["frame"] < 3]
    assert early and all(d["verdict"] == "WAIT" and "hold still" in d["reason"] for d in early)
    # Third visit: the standing GRANT is shown, nothing new is decided.
    last_visit = [d for d in _decisions(tmp_path / "door.jsonl") if d["frame"] >= len(labels) - 12]
    assert any(d["verdict"] == "GRANT" and not d["new"] for d in last_visit)

    # The hook ran once, with the person and the door id as separate argv items.
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [["--door-event", "--", "astronaut", "lab-1"]]

    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
        assert audit.verify().ok
    kinds = [(r["kind"], r["decision"]) for r in records]
    assert kinds == [("start", None), ("decision", "GRANT"), ("hook", None), ("decision", "DENY"), ("stop", None)]
    assert all(r["liveness"] == "none" for r in records)
    grant_rec, hook_rec = records[1], records[2]
    assert grant_rec["person"] == "astronaut" and grant_rec["door_id"] == "lab-1"
    assert grant_rec["threshold"] == pytest.approx(0.6) and grant_rec["frames_used"] == grant["frames_used"]
    assert grant_rec["model_sha256"] and len(grant_rec["model_sha256"]) == 64
    assert hook_rec["seq"] > grant_rec["seq"]  # the GRANT was committed before the hook's outcome existed
    assert json.loads(hook_rec["detail"])["ok"] is True and json.loads(hook_rec["detail"])["grant_seq"] == 1 + 1

    # `rtv audit verify` passes, then catches a record edited directly in the database.
    assert main(["audit", "--log", config.door.audit, "verify"]) == 0
    capsys.readouterr()
    with sqlite3.connect(config.door.audit) as conn:
        conn.execute("UPDATE events SET person = 'mallory' WHERE decision = 'DENY'")
    code = main(["audit", "--log", config.door.audit, "verify"])
    err = capsys.readouterr().err
    assert code != 0
    assert f"record {records[3]['seq']}" in err and "changed" in err


def test_access_window_and_allowed_flag_turn_a_match_into_deny(tmp_path, scene_video, astronaut_gallery):
    import shutil

    from realtime.gallery.store import Gallery

    gallery = tmp_path / "g.sqlite"
    shutil.copy(astronaut_gallery, gallery)
    with Gallery.open(gallery, create=False) as g:
        g.set_access("astronaut", True, [{"days": "mon-fri", "start": "07:00", "end": "20:00"}])
    config = _config(tmp_path, gallery)
    sunday = datetime(2025, 1, 12, 12, 0)
    outcome = run_door(config, str(scene_video[0]), show_window=False, max_frames=3 + BLANK + 12,
                       now=lambda: sunday, echo=lambda _t: None)
    assert outcome.grants == [] and outcome.denies == ["astronaut"]
    with AuditLog.open(config.door.audit, create=False) as audit:
        deny = [r for r in audit.records() if r["kind"] == "decision"]
    assert deny[0]["decision"] == "DENY" and deny[0]["reason"] == "outside time window"


def test_default_pose_gate_holds_a_turned_face(tmp_path, astronaut_gallery):
    """With the default door.max_yaw the three-quarter-view cameraman is asked to face the camera, never decided."""
    script = (("cameraman", 10),)
    frames = [f for _w, f in scene_frames(script)]
    config = load_config(None, [f"faces.gallery={astronaut_gallery}", f"door.audit={tmp_path / 'a.sqlite'}"])
    source = Source(ListReader(frames), SourceConfig(policy="every"))
    outcome = run_door(config, source=source, show_window=False, echo=lambda _t: None)
    assert outcome.grants == [] and outcome.denies == []
    assert outcome.result.frames == 10


class ListReader:
    """A scripted source: the given frames, then (``fail_after``) a camera that stops answering."""

    kind = "fake"
    description = "fake camera"
    fps, expected_frames, size_wh = 0.0, 0, (0, 0)

    def __init__(self, frames, live=False, fail_after: int | None = None):
        self.frames = frames
        self.live = live
        self.fail_after = fail_after
        self.i = 0
        self.opens = 0

    def open(self):
        self.opens += 1
        if self.opens > 1:
            raise SourceError("fake camera: open failed (unplugged)")

    def read(self):
        if self.fail_after is not None and self.i >= self.fail_after:
            raise SourceError("fake camera: reading a frame failed")
        if self.i >= len(self.frames):
            return None
        self.i += 1
        return RawFrame(self.frames[self.i - 1], self.i / 10.0)

    def close(self):
        pass


def test_camera_lost_raises_an_alarm_and_never_grants(tmp_path, astronaut_gallery):
    frames = [f for _w, f in scene_frames((("astronaut", 4),))]  # fewer than min_frames good frames, then lost
    config = _config(tmp_path, astronaut_gallery, "door.max_camera_down_s=0.3")
    reader = ListReader(frames, live=True, fail_after=4)
    source = Source(reader, SourceConfig(policy="every", reconnect_attempts=2, reconnect_backoff_s=0.01,
                                         reconnect_backoff_max_s=0.02))
    messages: list[str] = []
    outcome = run_door(config, source=source, show_window=False, echo=messages.append)
    assert outcome.result.reason == "error" and outcome.result.frames == 4
    assert outcome.grants == []
    # lost (door locked, reopening), then given up after door.max_camera_down_s
    assert len(outcome.alarms) == 2 and all(a.startswith("camera:") for a in outcome.alarms)
    assert "max_camera_down_s" in outcome.alarms[1]
    assert any(m.startswith("ALARM camera") for m in messages)
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
        assert audit.verify().ok
    alarm = [r for r in records if r["kind"] == "alarm"]
    assert len(alarm) == 2 and "unplugged" in alarm[0]["reason"] and records[-1]["kind"] == "stop"
    assert not [r for r in records if r["decision"] == "GRANT"]


def test_model_error_is_an_alarm_and_no_grant(tmp_path, astronaut_gallery, monkeypatch):
    from realtime.face.embedder import FaceEmbedder

    def broken(self, chips):
        raise RuntimeError("ONNX Runtime: simulated failure")

    monkeypatch.setattr(FaceEmbedder, "embed", broken)
    frames = [f for _w, f in scene_frames((("astronaut", 8),))]
    config = _config(tmp_path, astronaut_gallery)
    with pytest.raises(ModelError, match="no GRANT"):
        run_door(config, source=Source(ListReader(frames), SourceConfig(policy="every")), show_window=False,
                 echo=lambda _t: None)
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
    assert [r["kind"] for r in records if r["kind"] in ("alarm", "decision")] == ["alarm"]
    assert any(r["kind"] == "alarm" and "simulated failure" in r["reason"] for r in records)


@pytest.mark.parametrize("content", [b"this is not a gallery", None])
def test_gallery_unreadable_or_missing_is_an_alarm(tmp_path, content):
    gallery = tmp_path / "gallery.sqlite"
    if content is not None:
        gallery.write_bytes(content)
    config = load_config(None, [f"faces.gallery={gallery}", f"door.audit={tmp_path / 'a.sqlite'}"])
    with pytest.raises(GalleryError):
        run_door(config, source=Source(ListReader([]), SourceConfig(policy="every")), show_window=False,
                 echo=lambda _t: None)
    with AuditLog.open(config.door.audit, create=False) as audit:
        records = list(audit.records())
    assert [r["kind"] for r in records] == ["alarm", "stop"]  # a door that did not start still says it stopped
    assert json.loads(records[0]["detail"]) == {"alarm": "gallery"}
    assert json.loads(records[1]["detail"])["reason"] == "error: GalleryError"


def test_cli_door_runs_headless_and_reports(tmp_path, scene_video, astronaut_gallery, capsys):
    code = main(["door", "--source", str(scene_video[0]), "--no-window", "--max-frames", "5",
                 "--set", f"faces.gallery={astronaut_gallery}", "--set", f"door.audit={tmp_path / 'a.sqlite'}"])
    err = capsys.readouterr().err
    assert code == 0
    assert "threshold 0.6 from config" in err and "NO LIVENESS CHECK" in err
    assert main(["audit", "--log", str(tmp_path / "a.sqlite"), "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["kind"] for r in listed] == ["start", "stop"]
    assert np.all([r["liveness"] == "none" for r in listed])
