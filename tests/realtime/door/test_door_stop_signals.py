"""``rtv door`` stopped by SIGTERM (systemd) or Ctrl-C: the stop record is in the audit log, the JSONL has its end
line, and the exit code is 143 / 130 (Ctrl-C exited 0). A real process, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, reason", [(signal.SIGTERM, 143, "terminated"),
                                                  (signal.SIGINT, 130, "interrupted")])
def test_door_stopped_by_a_signal_writes_its_stop_record(tmp_path, scene_video, astronaut_gallery, signum, code,
                                                         reason):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    audit = tmp_path / "audit.sqlite"
    argv = [sys.executable, "-m", "realtime.cli", "door", "--source", str(scene_video[0]), "--no-window",
            "--jsonl", str(tmp_path / "door.jsonl"), "--set", "source.pace=true",
            "--set", f"faces.gallery={astronaut_gallery}", "--set", f"door.audit={audit}"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (tmp_path / "door.jsonl.partial").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signum)
    proc.send_signal(signum)  # a second one while it finalises changes nothing
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    end = json.loads((tmp_path / "door.jsonl").read_text().splitlines()[-1])["end"]
    assert end["reason"] == reason
    listed = subprocess.run([sys.executable, "-m", "realtime.cli", "audit", "--log", str(audit), "list", "--json"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    records = json.loads(listed.stdout)
    assert records[0]["kind"] == "start" and records[-1]["kind"] == "stop" and reason in records[-1]["reason"]
