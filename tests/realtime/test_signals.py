"""SIGTERM and SIGHUP end a run like Ctrl-C: outputs finalised, JSONL end line, exit 128 + signal; a second signal
during finalising does not abandon it. Real signals: to this process, and to a real ``rtv run`` subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from realtime.io.interrupts import Stopped, exit_code_for_interrupt, finalising, first_signal, stop_signals
from realtime.serialize import SCHEMA_VERSION, read_result_lines

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _restore_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_handlers_come_back_after_a_run_without_signals():
    with stop_signals():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_first_signal_raises_later_ones_do_not():
    finished = False
    with stop_signals():
        with pytest.raises(Stopped) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at the next bytecode: Stopped is raised here
        assert caught.value.signum == signal.SIGTERM and isinstance(caught.value, KeyboardInterrupt)
        # finalising after the first signal: a second Ctrl-C (and a SIGHUP) must not cut it short
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        finished = True
        assert first_signal() == signal.SIGTERM and exit_code_for_interrupt() == 143
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a stopped process exits without a 3rd-signal kill


def test_a_signal_during_finalising_is_held_until_it_is_done():
    steps = []
    with stop_signals():
        with pytest.raises(Stopped):
            with finalising():
                os.kill(os.getpid(), signal.SIGHUP)
                time.sleep(0.05)
                steps.append("renamed")  # reached: the signal waits for the block
        assert exit_code_for_interrupt() == 129
    assert steps == ["renamed"]


def _run_and_signal(tmp_path: Path, signals: list[int]) -> tuple[int, str]:
    """A real ``rtv run`` replaying a 5 s clip at its own pace; ``signals`` sent once it is writing."""
    from tests.conftest import write_video

    clip = write_video(tmp_path / "clip.mp4", 125, fps=25.0)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("DISPLAY", None)
    argv = [sys.executable, "-m", "realtime.cli", "run", "--source", str(clip), "--no-window",
            "--out", str(tmp_path / "out.mp4"), "--jsonl", str(tmp_path / "out.jsonl"),
            "--set", "source.pace=true", "--set", "source.policy=every",
            "--set", "detector.enabled=false", "--set", "faces.enabled=false"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "out.jsonl.partial").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)  # some frames in
    for signum in signals:
        proc.send_signal(signum)
        time.sleep(0.02)
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.parametrize("signals, code", [
    ([signal.SIGTERM], 143),
    pytest.param([signal.SIGHUP], 129, marks=pytest.mark.slow),
    pytest.param([signal.SIGINT, signal.SIGINT, signal.SIGINT], 130, marks=pytest.mark.slow),
    pytest.param([signal.SIGTERM, signal.SIGINT, signal.SIGTERM], 143, marks=pytest.mark.slow),
])
def test_rtv_run_finalises_outputs_on_a_stop_signal(tmp_path, signals, code):
    returncode, err = _run_and_signal(tmp_path, signals)
    assert returncode == code, err
    assert "Traceback" not in err
    lines = read_result_lines(tmp_path / "out.jsonl")
    end = lines.end
    assert end["reason"] == ("interrupted" if code == 130 else "terminated") and end["complete"] is False
    frames = end["frames"]
    assert 0 < frames < 125 and len(lines.frames) == frames and lines.header["schema"] == SCHEMA_VERSION
    with av.open(str(tmp_path / "out.mp4")) as container:  # finalised: the moov atom is there, every frame too
        assert sum(1 for _ in container.decode(video=0)) == frames
    assert not list(tmp_path.glob("*.partial"))


def test_door_ctrl_c_exits_130(monkeypatch, capsys, tmp_path):
    """``rtv door`` stopped by Ctrl-C returns 130 (it returned 0)."""
    from realtime.cli.main import main
    from realtime.door import mode
    from realtime.pipeline import RunResult

    class Outcome:
        result = RunResult(frames=7, reason="interrupted")
        summary: dict = {}
        grants: list = []
        denies: list = []
        alarms: list = []

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(mode, "run_door", lambda *a, **k: Outcome())
    assert main(["door", "--no-window", "--source", "x.mp4"]) == 130
    assert "interrupted after 7 frames" in capsys.readouterr().err
