"""A door in ``rtv serve`` on a real RTSP stream (GStreamer's rtsp-server through the system Python): the stream
goes away (alarm: door locked, reconnecting with backoff) and comes back at another resolution (recovery recorded,
frames of the new size), then SIGTERM writes the stop record."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import ServeProcess, _photo_arrays, enrol_in_process, free_port

pytestmark = pytest.mark.slow
requests = pytest.importorskip("requests")
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")
SETTINGS = ["source.reconnect_attempts=1", "source.reconnect_backoff_s=0.2", "source.reconnect_backoff_max_s=1",
            "source.read_timeout_s=3", "door.use_calibration=false"]


def _rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer; gi.require_version('Gst', '1.0'); "
                            "from gi.repository import Gst; Gst.init(None); "
                            "assert Gst.ElementFactory.find('x264enc')"], capture_output=True)
    return probe.returncode == 0


def _start_rtsp(port: int, width: int, height: int) -> subprocess.Popen:
    proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(port), str(width), str(height)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _records(server, kind: str) -> list[dict]:
    r = requests.get(f"{server.url}/api/v1/audit", params={"kind": kind}, headers={"X-API-Key": server.admin_key},
                     timeout=10)
    return r.json()["records"]


def _until(what, check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def _snapshot_size(server):
    import cv2
    import numpy as np

    r = requests.get(f"{server.url}/api/v1/doors/cam/snapshot.jpg", headers={"X-API-Key": server.read_key},
                     timeout=10)
    if r.status_code != 200:
        return None
    image = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    return image.shape[1], image.shape[0]


def test_door_survives_the_stream_going_away_and_coming_back_resized(tmp_path):
    if not _rtsp_available():
        pytest.skip("GStreamer's RTSP server is missing (apt-get install -y gir1.2-gst-rtsp-server-1.0 "
                    "gstreamer1.0-plugins-ugly python3-gi)")
    enrol_in_process(tmp_path / "gallery.sqlite", "cameraman", _photo_arrays()["cameraman"])
    port = free_port()
    rtsp = _start_rtsp(port, 320, 240)
    server = None
    try:
        server = ServeProcess(tmp_path, extra_args=["--door", f"cam=rtsp://127.0.0.1:{port}/door"],
                              extra_settings=SETTINGS)
        _until("frames of 320x240", lambda: _snapshot_size(server) == (320, 240))
        rtsp.terminate()
        rtsp.wait(10)
        alarm = _until("camera alarm", lambda: [r for r in _records(server, "alarm") if r["door_id"] == "cam"])
        assert "camera lost" in alarm[0]["reason"] and "reconnecting" in alarm[0]["reason"]
        time.sleep(1.0)
        rtsp = _start_rtsp(port, 480, 360)
        back = _until("recovery", lambda: [r for r in _records(server, "recovery") if r["door_id"] == "cam"], 90)
        assert "camera back" in back[0]["reason"]
        _until("frames of 480x360", lambda: _snapshot_size(server) == (480, 360))
        door = requests.get(f"{server.url}/api/v1/doors", headers={"X-API-Key": server.read_key},
                            timeout=10).json()["doors"][0]
        assert door["state"] == "running"
    finally:
        if server is not None:
            server.stop()
        rtsp.terminate()
        rtsp.wait(10)
    from realtime.door.audit import AuditLog

    with AuditLog.open(tmp_path / "audit.sqlite", create=False) as log:
        records = [r for r in log.records() if r["door_id"] == "cam"]
        assert log.verify().ok
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and kinds[-1] == "stop" and "alarm" in kinds and "recovery" in kinds
    alarms = [r["reason"] for r in records if r["kind"] == "alarm"]
    assert all(a.startswith("camera lost") for a in alarms), alarms  # only the stream's outage, no model error
    assert "error" not in json.loads(records[-1]["detail"])["reason"], records[-1]
