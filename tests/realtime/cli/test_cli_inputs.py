"""Every input validated: bad arguments and config values are usage errors (exit 2, one line), never exit 70; and
behaviours that looked like failures (no display, unreadable or mixed image folders)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from realtime.cli.main import main

NO_MODELS = ["--set", "detector.enabled=false", "--set", "faces.enabled=false"]


def run(capsys, *argv):
    code = main(list(argv))
    _out, err = capsys.readouterr()
    return code, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("argv, needle", [
    (["run", "--max-frames", "-1"], "--max-frames"),
    (["annotate", "in.mp4", "--jsonl", "o.jsonl", "--max-frames", "0"], "--max-frames"),
    (["door", "--max-frames", "-1"], "--max-frames"),
    (["demo", "--seconds", "nan"], "--seconds"),
    (["demo", "--seconds", "inf"], "--seconds"),
    (["bench", "faces", "--faces", "0"], "--faces"),
    (["bench", "detector", "--sizes", "0"], "--sizes"),
    (["gallery", "access", "bob", "--schedule", "x"], "--schedule"),
    (["gallery", "access", "bob", "--schedule", '{"days": "mon"}'], "--schedule"),
    (["audit", "list", "--since", "yesterday"], "--since"),
    (["audit", "export", "o.csv", "--since", "yesterday"], "--since"),
    (["calibrate", "--far", "2"], "--far"),
    (["enroll", "bob", "--camera", "0", "--shots", "0"], "--shots"),
    (["annotate"], "required"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_arguments_are_usage_errors(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, err = run(capsys, *argv)
    assert code == 2 and needle in one_error_line(err)
    assert len(err.strip().splitlines()) == 1, err  # the usage block stays behind --help


@pytest.mark.parametrize("override", [
    "source.fps=.inf", "source.read_timeout_s=-1", "output.crf=-5", "faces.detect_width=100000",
    "runtime.intra_op_threads=1000", "door.hook_timeout_s=.inf", "faces.match_threshold=0",
    "source.queue_size=0", "door.min_frames=-3", "style.strength=.nan",
])
def test_bad_config_values_are_usage_errors_before_any_work(tmp_path, capsys, monkeypatch, video_factory,
                                                            override):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "in.mp4", 3)
    code, err = run(capsys, "annotate", str(clip), "--jsonl", "o.jsonl", "--set", override)
    assert code == 2 and override.split("=")[0] in one_error_line(err)
    assert not list(tmp_path.glob("o.jsonl*"))


def test_every_number_in_config_declares_its_range():
    import dataclasses
    import typing

    from realtime.config import Config

    missing = []
    for section in dataclasses.fields(Config):
        if section.metadata.get("internal"):
            continue
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            if hints[fld.name] in (int, float, int | None, float | None) and "range" not in fld.metadata:
                missing.append(f"{section.name}.{fld.name}")
    assert not missing


def test_run_without_a_display_says_to_use_no_window(tmp_path, capsys, monkeypatch, video_factory):
    monkeypatch.chdir(tmp_path)
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    clip = video_factory(tmp_path / "in.mp4", 3)
    code, err = run(capsys, "run", "--source", str(clip), "--jsonl", "o.jsonl", *NO_MODELS)
    assert code == 6 and "--no-window" in one_error_line(err)  # it aborted inside Qt (exit 134)
    assert not list(tmp_path.glob("o.jsonl*"))


def test_an_image_folder_with_no_readable_image_is_a_source_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "frames" / name).write_bytes(b"not an image")
    code, err = run(capsys, "annotate", "frames", "--out", "out", "--jsonl", "o.jsonl", "--no-progress",
                    *NO_MODELS)
    assert code == 3 and "frames/a.png: not a readable image" in err and "frames/b.jpg" in err
    assert not list((tmp_path / "out").iterdir())  # nothing claimed that was never written
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r.get("source") for r in rows[:2]] == ["frames/a.png", "frames/b.jpg"] and "error" in rows[0]
    assert rows[-1]["end"]["complete"] is False and rows[-1]["end"]["reason"] == "error"


def test_an_image_folder_of_mixed_sizes_keeps_each_size(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "frames"
    folder.mkdir()
    sizes = [(160, 120), (100, 200), (320, 240), (160, 120)]
    for i, (w, h) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((h, w, 3), 40 * (i + 1), np.uint8))
    code, err = run(capsys, "annotate", "frames", "--out", "out", "--jsonl", "o.jsonl", "--no-progress",
                    "--set", "overlay.enabled=false", *NO_MODELS)
    assert code == 0, err
    end = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[-1])["end"]
    assert end == {**end, "frames": 4, "complete": True}
    for i, (w, h) in enumerate(sizes):
        image = cv2.imread(str(tmp_path / "out" / f"{i}.png"))
        assert image.shape == (h, w, 3) and int(image[h // 2, w // 2, 0]) == 40 * (i + 1)  # PNG: exact pixels
