"""``rtv batch`` end to end on the local process pool: outputs, batch.jsonl, resume, a killed worker, Ctrl-C."""

import json
import os
import signal
from pathlib import Path

import av

from realtime.batch.run import Reporter, Stop, run_batch
from realtime.cli.main import main


def frames_of(jsonl: Path) -> list[dict]:
    """The per-frame records without the timings (which differ from run to run), and the end record."""
    return [{k: v for k, v in json.loads(line).items() if k != "ms"} for line in jsonl.read_text().splitlines()]


def ledger(out: Path) -> dict[str, dict]:
    return {r["name"]: r for r in map(json.loads, (out / "batch.jsonl").read_text().splitlines())}


def test_outputs_and_ledger(tmp_path, clip_dir, fast_config):
    from realtime.session import annotate

    out = tmp_path / "out"
    missing = tmp_path / "missing.mp4"
    result = run_batch(fast_config, [str(clip_dir), str(missing)], out, workers=2)
    assert not result.ok and result.workers == 2 and result.threads == 1
    records = ledger(out)
    assert list(records) == ["a", "b", "broken", "c", "missing"]  # sorted folder walk, then the missing one
    assert [r["name"] for r in result.records] == list(records)
    for name, n in (("a", 8), ("b", 10), ("c", 12)):
        r = records[name]
        assert (r["status"], r["frames"], r["expected_frames"], r["error"]) == ("done", n, n, None)
        assert len(r["sha256"]) == 64 and r["mp4"] == f"{name}.mp4" and r["jsonl"] == f"{name}.jsonl"
        with av.open(str(out / f"{name}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == n
    assert records["a"]["sha256"] != records["b"]["sha256"]
    broken = records["broken"]
    assert broken["status"] == "failed" and 0 < broken["frames"] < 40
    assert "truncated" in broken["error"] or "damaged" in broken["error"]
    assert frames_of(out / "broken.jsonl")[-1]["end"]["complete"] is False  # finalised up to the damage
    assert records["missing"]["status"] == "failed" and "not found" in records["missing"]["error"]
    assert not (out / "missing.mp4").exists()
    assert not list(out.glob("*.partial"))
    # the same JSONL as 'rtv annotate' with a fresh pipeline (the worker reused its pipeline for several inputs)
    alone = tmp_path / "alone.jsonl"
    annotate(fast_config, str(clip_dir / "sub" / "c.mp4"), None, alone, progress=False)
    assert frames_of(out / "c.jsonl") == frames_of(alone)


def test_resume_skips_finished_and_redoes_the_fixed_ones(tmp_path, clip_dir, fast_config, tiny_clip):
    out = tmp_path / "out"
    missing = tmp_path / "missing.mp4"
    run_batch(fast_config, [str(clip_dir), str(missing)], out, workers=2)
    done_mtime = (out / "a.mp4").stat().st_mtime_ns
    tiny_clip(clip_dir / "broken.mp4", 40)  # fixed
    tiny_clip(missing, 6)  # now there
    second = run_batch(fast_config, [str(clip_dir), str(missing)], out, workers=2)
    assert second.ok
    assert {r["name"]: r["status"] for r in second.records} == {
        "a": "skipped", "b": "skipped", "broken": "done", "c": "skipped", "missing": "done"}
    assert (out / "a.mp4").stat().st_mtime_ns == done_mtime
    records = ledger(out)
    assert len((out / "batch.jsonl").read_text().splitlines()) == 5  # compacted: one line per input
    assert records["broken"]["frames"] == 40 and records["missing"]["frames"] == 6
    # a changed input is redone even though its earlier run was done
    tiny_clip(clip_dir / "a.mp4", 9)
    third = run_batch(fast_config, [str(clip_dir / "a.mp4"), str(clip_dir / "b.mp4")], out, workers=1)
    assert [(r["name"], r["status"], r["frames"]) for r in third.records] == [("a", "done", 9),
                                                                              ("b", "skipped", 10)]
    assert len(ledger(out)) == 5  # the other inputs' lines are kept


def test_an_existing_file_is_replaced_only_when_asked(tmp_path, clip_dir, fast_config):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.jsonl").write_text("mine\n")
    first = run_batch(fast_config, [str(clip_dir / "a.mp4")], out)
    assert first.records[0]["status"] == "failed" and "--overwrite" in first.records[0]["error"]
    assert (out / "a.jsonl").read_text() == "mine\n"
    second = run_batch(fast_config, [str(clip_dir / "a.mp4")], out, overwrite=True)
    assert second.ok and second.records[0]["status"] == "done" and (out / "a.jsonl").read_text() != "mine\n"


class KillOnce(Reporter):
    """Kills the worker process that starts ``victim`` (once), as the OOM killer or a crash would."""

    def __init__(self, victim: str):
        self.victim = victim
        self.killed: int | None = None
        self.notes: list[str] = []

    def started(self, job, worker):
        if job.name == self.victim and self.killed is None:
            self.killed = worker
            os.kill(worker, signal.SIGKILL)

    def note(self, text):
        self.notes.append(text)


def test_a_killed_worker_loses_no_input(tmp_path, clip_dir, fast_config, tiny_clip):
    tiny_clip(clip_dir / "long.mp4", 200)
    out = tmp_path / "out"
    reporter = KillOnce("long")
    result = run_batch(fast_config, [str(clip_dir / "a.mp4"), str(clip_dir / "long.mp4"), str(clip_dir / "b.mp4"),
                                     str(clip_dir / "sub")], out, workers=2, reporter=reporter)
    assert reporter.killed is not None and result.worker_deaths == 1
    assert any("died (signal 9)" in note for note in reporter.notes)
    statuses = {r["name"]: (r["status"], r["frames"]) for r in result.records}
    assert statuses == {"a": ("done", 8), "long": ("done", 200), "b": ("done", 10), "c": ("done", 12)}
    assert frames_of(out / "long.jsonl")[-1]["end"]["frames"] == 200


class CtrlC(Reporter):
    """Presses Ctrl-C twice (abandon) at the second progress report (by then a frame has surely been written)."""

    def __init__(self, stop: Stop):
        self.stop = stop
        self.reports = 0

    def frames(self, n):
        self.reports += 1
        if self.reports == 2:
            self.stop.level = 2


def test_ctrl_c_abandons_cleanly_and_the_next_run_resumes(tmp_path, clip_dir, fast_config, tiny_clip):
    tiny_clip(clip_dir / "long.mp4", 300)
    out = tmp_path / "out"
    inputs = [str(clip_dir / "long.mp4"), str(clip_dir / "a.mp4"), str(clip_dir / "b.mp4")]
    stop = Stop()
    first = run_batch(fast_config, inputs, out, workers=1, reporter=CtrlC(stop), stop=stop)
    assert first.interrupted and not first.ok
    statuses = [r["status"] for r in first.records]
    assert statuses == ["interrupted", "pending", "pending"]
    end = frames_of(out / "long.jsonl")[-1]["end"]  # finalised as Ctrl-C does for annotate
    assert end["reason"] == "interrupted" and 0 < end["frames"] < 300
    assert not list(out.glob("*.partial"))
    second = run_batch(fast_config, inputs, out, workers=1)
    assert second.ok and [r["status"] for r in second.records] == ["done", "done", "done"]


def test_cli_exit_codes_and_lines(tmp_path, clip_dir, capsys, fast_settings):
    settings = [x for s in fast_settings for x in ("--set", s)]
    out = tmp_path / "out"
    code = main(["batch", str(clip_dir / "a.mp4"), str(clip_dir / "broken.mp4"), "--out-dir", str(out),
                 "--no-progress", *settings])
    err = capsys.readouterr().err
    assert code == 11, err
    assert "done        a  8 frames" in err and "failed      broken" in err and "1 done, 1 failed" in err
    code = main(["batch", str(clip_dir / "a.mp4"), "--out-dir", str(out), "--no-progress", *settings])
    assert code == 0 and "skipped     a" in capsys.readouterr().err
    code = main(["batch", str(clip_dir / "a.mp4"), "--out-dir", str(clip_dir), *settings])
    err = capsys.readouterr().err
    assert code == 6 and "would overwrite the input" in err and "Traceback" not in err
    code = main(["batch", str(clip_dir), "--out-dir", str(clip_dir / "annotated"), *settings])
    err = capsys.readouterr().err
    assert code == 6 and "lies inside an input" in err and not (clip_dir / "annotated").exists()
    code = main(["batch", str(tmp_path / "empty_dir_that_is_not_there"), "--out-dir", str(out), "--ray", "x",
                 "--no-progress", *settings])
    assert code == 11  # a missing input fails; Ray is never contacted when nothing is left to run


def test_ctrl_c_at_the_terminal(tmp_path, clip_dir, tiny_clip, fast_settings):
    """SIGINT twice to the whole process group, as a terminal's Ctrl-C does (workers ignore it; the driver
    abandons the input in flight): exit 130, the input finalised as interrupted, the rest pending."""
    import subprocess
    import sys
    import time

    tiny_clip(clip_dir / "long.mp4", 400)
    out = tmp_path / "out"
    settings = [x for s in fast_settings for x in ("--set", s)]
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "batch", str(clip_dir / "long.mp4"),
                             str(clip_dir / "a.mp4"), "--out-dir", str(out), "--workers", "1", "--no-progress",
                             *settings], cwd=Path(__file__).resolve().parents[3], start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("long.partial*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to resume" in err
    records = ledger(out)
    assert (records["long"]["status"], records["a"]["status"]) == ("interrupted", "pending")
    assert frames_of(out / "long.jsonl")[-1]["end"]["reason"] == "interrupted"
