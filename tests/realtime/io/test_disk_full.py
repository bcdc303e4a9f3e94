"""A full disk: exit 6 with one line, never a crash in the muxer (it was SIGSEGV) or exit 70; the JSONL ends with its
end line when it can; the MP4 is finalised up to the failure or removed, never left half-written. Real small tmpfs
mounts where the tests run as root; a fake file that raises ENOSPC everywhere else."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from realtime.errors import SinkError
from realtime.io.sinks import JsonlWriter, Mp4Writer

REPO = Path(__file__).resolve().parents[3]
NO_MODELS = ["--set", "detector.enabled=false", "--set", "faces.enabled=false"]


def noise_clip(path: Path, frames: int = 20) -> Path:
    """Random frames: H.264 cannot shrink them, so a few fill a small disk."""
    rng = np.random.default_rng(0)
    with Mp4Writer(path, fps=25, crf=30, preset="ultrafast") as writer:
        for _ in range(frames):
            writer.write(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    return path


def fill(folder: Path) -> None:
    """Take every free byte of ``folder``'s filesystem."""
    with open(folder / "filler", "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def rtv(cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """A real process, so a crash in FFmpeg shows as a signal, not as a dead test runner."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "realtime.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("rtv: error")]


def test_disk_full_mid_run_exits_6_with_an_end_line_and_no_half_mp4(tmp_path, tmpfs):
    clip = noise_clip(tmp_path / "noise.mp4")
    disk = tmpfs("disk", 320)
    done = rtv(tmp_path, "annotate", str(clip), "--out", str(disk / "o.mp4"), "--jsonl", str(disk / "o.jsonl"),
               "--no-progress", *NO_MODELS)
    assert done.returncode == 6, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "No space left" in lines[0]
    assert not (disk / "o.mp4").exists() and not list(disk.glob("*.partial*"))  # removed, not half-written
    records = [json.loads(line) for line in (disk / "o.jsonl").read_text().splitlines()]
    end = records[-1]["end"]
    assert end["reason"] == "output-error" and end["complete"] is False and "No space left" in end["error"]
    assert "rtv" in records[0] and len(records) == end["frames"] + 2  # the header, the frames, the end line


@pytest.mark.parametrize("outputs", [["--out", "o.mp4"], ["--jsonl", "o.jsonl"], ["--out", "o.mp4", "--jsonl",
                                                                                  "o.jsonl"]])
def test_disk_full_at_start_exits_6_without_a_crash(tmp_path, tmpfs, video_factory, outputs):
    clip = video_factory(tmp_path / "in.mp4", 10)
    disk = tmpfs("disk", 128)
    fill(disk)
    argv = [a if a.startswith("--") else str(disk / a) for a in outputs]
    done = rtv(tmp_path, "annotate", str(clip), *argv, "--no-progress", *NO_MODELS)
    assert done.returncode == 6, (done.returncode, done.stderr)  # was -11 (SIGSEGV in the muxer) for an MP4
    assert len(error_lines(done.stderr)) == 1
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_jsonl_keeps_room_for_its_end_line(tmpfs):
    disk = tmpfs("disk", 256)
    writer = JsonlWriter(disk / "o.jsonl", flush_every=1)
    for i in range(5):
        writer.write({"frame": i})
    fill(disk)
    with pytest.raises(SinkError, match="No space left"):
        for i in range(5, 5000):
            writer.write({"frame": i, "pad": "x" * 200})
    writer.write_last({"end": {"reason": "output-error"}})
    writer.close()
    lines = (disk / "o.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # whole lines only: the half line was cut back
    assert json.loads(lines[-1]) == {"end": {"reason": "output-error"}}
    assert [json.loads(line)["frame"] for line in lines[:5]] == [0, 1, 2, 3, 4]
    assert not list(disk.glob("*.partial*"))


class _FullFile:
    """A file whose disk is full: every write raises ENOSPC (for machines where no tmpfs can be mounted)."""

    def __init__(self, real):
        self.real = real

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_mp4_write_failure_removes_the_partial_file(tmp_path, frame_factory):
    writer = Mp4Writer(tmp_path / "o.mp4", fps=25, preset="ultrafast")
    writer._io._file = _FullFile(writer._io._file)
    with pytest.raises(SinkError, match="No space left.*removed"):
        for i in range(200):  # FFmpeg writes once its 32 KiB buffer is full
            writer.write(frame_factory(i, (320, 240)))
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
