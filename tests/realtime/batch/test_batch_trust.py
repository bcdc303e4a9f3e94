"""Batch outputs are never half-written under final names (workers write ``.partial.``, the driver publishes), even
when the driver is SIGKILLed; signals follow the exit-code table (SIGTERM 143, SIGHUP 129, in-flight inputs kept in
the ledger); a cut ledger line, zero-byte outputs, device/FIFO entries and an out-dir equal to the input folder are
handled in words; the ledger names only outputs that exist and a resume keeps the original timings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from realtime.batch.run import run_batch
from realtime.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def ledger(out: Path) -> dict[str, dict]:
    records = {}
    for line in (out / "batch.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records[record["name"]] = record
    return records


def _start(out, inputs, fast_settings):
    settings = [x for s in fast_settings for x in ("--set", s)]
    return subprocess.Popen([sys.executable, "-m", "realtime.cli", "batch", *map(str, inputs), "--out-dir", str(out),
                             "--workers", "1", "--no-progress", *settings], cwd=ROOT, start_new_session=True,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_partial(out, proc, name="long"):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(out.glob(f"{name}.partial.*"))
        if any(p.stat().st_size > 0 for p in partial):
            return
        time.sleep(0.05)
    raise AssertionError("no partial output appeared")


def test_sigkill_of_the_driver_leaves_no_half_output_and_the_resume_redoes_it(tmp_path, clip_dir, tiny_clip,
                                                                              fast_settings):
    tiny_clip(clip_dir / "long.mp4", 400)
    out = tmp_path / "out"
    inputs = [clip_dir / "long.mp4", clip_dir / "a.mp4"]
    proc = _start(out, inputs, fast_settings)
    _wait_for_partial(out, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its worker must not go on and publish
    proc.communicate(timeout=30)
    time.sleep(1.0)
    assert not (out / "long.mp4").exists() and not (out / "long.jsonl").exists()
    assert list(out.glob("long.partial*"))  # the orphan is there, under its unfinished name
    resume = _start(out, inputs, fast_settings)
    _, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err
    records = ledger(out)
    assert records["long"]["status"] == "done" and records["long"]["frames"] == 400
    assert not list(out.glob("*.partial*"))


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_keep_the_inputs_in_flight_in_the_ledger(tmp_path, clip_dir, tiny_clip, fast_settings,
                                                                    signum, code):
    tiny_clip(clip_dir / "long.mp4", 400)
    out = tmp_path / "out"
    proc = _start(out, [clip_dir / "long.mp4", clip_dir / "a.mp4"], fast_settings)
    _wait_for_partial(out, proc)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert proc.returncode == code, err
    assert f"stopped by {name}" in err and "Ctrl-C" not in err and "Traceback" not in err, err
    records = ledger(out)
    assert records["long"]["status"] == "interrupted" and records["long"]["error"] == f"abandoned on {name}"
    assert records["a"]["status"] == "pending"


def test_a_cut_ledger_line_does_not_fail_the_resume(tmp_path, clip_dir, fast_config):
    out = tmp_path / "out"
    inputs = [str(clip_dir / "a.mp4"), str(clip_dir / "b.mp4")]
    first = run_batch(fast_config, inputs, out, workers=1)
    assert first.ok
    text = (out / "batch.jsonl").read_text()
    (out / "batch.jsonl").write_text(text[:-25])  # the last line cut short, no newline
    (out / "b.mp4").unlink()
    second = run_batch(fast_config, inputs, out, workers=1)
    assert second.ok, second.records
    assert [r["status"] for r in second.records] == ["skipped", "done"]
    assert all(isinstance(r, dict) for r in ledger(out).values())


def test_zero_byte_outputs_are_redone_and_timings_are_kept(tmp_path, clip_dir, fast_config):
    out = tmp_path / "out"
    inputs = [str(clip_dir / "a.mp4"), str(clip_dir / "b.mp4")]
    first = {r["name"]: r for r in run_batch(fast_config, inputs, out, workers=1).records}
    (out / "b.jsonl").write_bytes(b"")
    second = {r["name"]: r for r in run_batch(fast_config, inputs, out, workers=1).records}
    assert second["a"]["status"] == "skipped" and second["a"]["seconds"] == first["a"]["seconds"] > 0
    assert second["b"]["status"] == "done" and (out / "b.jsonl").stat().st_size > 0


def test_the_ledger_names_only_outputs_that_exist(tmp_path, clip_dir, fast_config):
    out = tmp_path / "out"
    result = run_batch(fast_config, [str(clip_dir / "a.mp4"), str(tmp_path / "missing.mp4")], out, workers=1)
    records = {r["name"]: r for r in result.records}
    assert records["a"]["mp4"] == "a.mp4" and (out / "a.mp4").is_file()
    assert records["missing"]["mp4"] is None and records["missing"]["jsonl"] is None


def test_device_and_fifo_list_entries_fail_without_hanging(tmp_path, clip_dir, fast_config):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"/dev/zero\n{fifo}\n{clip_dir / 'a.mp4'}\n")
    start = time.monotonic()
    result = run_batch(fast_config, [str(listing)], tmp_path / "out", workers=1)
    assert time.monotonic() - start < 60
    records = {r["name"]: r for r in result.records}
    assert records["zero"]["status"] == "failed" and "not a regular file" in records["zero"]["error"]
    assert records["pipe"]["status"] == "failed" and "not a regular file" in records["pipe"]["error"]
    assert records["a"]["status"] == "done"


def test_out_dir_equal_to_the_input_folder_is_explained(tmp_path, clip_dir, capsys, fast_settings):
    folder = tmp_path / "only"
    folder.mkdir()
    (clip_dir / "a.mp4").rename(folder / "a.mp4")
    settings = [x for s in fast_settings for x in ("--set", s)]
    code = main(["batch", str(folder), "--out-dir", str(folder), "--no-progress", *settings])
    err = capsys.readouterr().err
    assert code == 2 and "is (or lies inside) the input folder" in err, err
