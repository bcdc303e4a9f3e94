"""``rtv train/export/bench style`` and style config errors through the CLI: one line, the right exit code."""

import json
from pathlib import Path

import pytest

from realtime.cli.main import main

from tests.realtime.test_style import style_onnx


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.torch  # without torch every export command stops first with exit 9, saying how to install it
def test_export_style_needs_a_checkpoint(capsys):
    code, _, err = run_cli(capsys, "export", "style")
    assert code == 2 and "CHECKPOINT" in one_line_error(err)


def test_export_style_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    pytest.importorskip("torch")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    code, _, err = run_cli(capsys, "export", "style", str(junk), "--out", str(tmp_path / "x.onnx"))
    assert code == 9 and "not a style checkpoint" in one_line_error(err)


@pytest.mark.parametrize("style, code, needle", [
    ("99", 2, "0 to 25"),
    ("no_such_painting.jpg", 2, "neither a teacher index"),
])
def test_train_style_bad_style(tmp_path, capsys, style, code, needle):
    pytest.importorskip("torch")
    got, _, err = run_cli(capsys, "train", "style", "--style", style, "--out", str(tmp_path / "s.pt"))
    assert got == code and needle in one_line_error(err)


def test_train_style_unreadable_style_image(tmp_path, capsys):
    pytest.importorskip("torch")
    fake = tmp_path / "painting.jpg"
    fake.write_text("not an image")
    code, _, err = run_cli(capsys, "train", "style", "--style", str(fake), "--out", str(tmp_path / "s.pt"))
    assert code == 8 and "cannot be read" in one_line_error(err)


def test_unknown_style_name_in_config(tmp_path, capsys, video_factory):
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    clip = video_factory(tmp_path / "in.mp4", 3)
    code, _, err = run_cli(capsys, "annotate", str(clip), "--jsonl", str(tmp_path / "o.jsonl"), "--no-progress",
                           "--set", "style.enabled=true", "--set", f"style.model_dir={tmp_path}",
                           "--set", "style.styles=[nope]", "--set", "faces.enabled=false",
                           "--set", "detector.enabled=false")
    assert code == 2 and "unknown style 'nope'" in one_line_error(err)


def test_annotate_with_style_writes_frames(tmp_path, capsys, video_factory):
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    clip = video_factory(tmp_path / "in.mp4", 4)
    code, _, err = run_cli(capsys, "annotate", str(clip), "--out", str(tmp_path / "o.mp4"), "--no-progress",
                           "--set", "style.enabled=true", "--set", f"style.model_dir={tmp_path}",
                           "--set", "faces.enabled=false", "--set", "detector.enabled=false")
    assert code == 0, err
    assert (tmp_path / "o.mp4").stat().st_size > 0


def test_bench_style_report(tmp_path, capsys):
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    report = tmp_path / "r.json"
    code, out, err = run_cli(capsys, "bench", "style", "--set", f"style.model_dir={tmp_path}", "--repeats", "2",
                             "--out-dir", str(tmp_path / "previews"), "--json", str(report))
    assert code == 0, err
    data = json.loads(report.read_text())
    assert {r["size"] for r in data["speed"]} >= {"320x240", "640x480", "stage 640x480 @320"}
    assert data["flicker"][0]["with_stabiliser"] <= data["flicker"][0]["without_stabiliser"]
    assert all(q["psnr_db"] is None for q in data["quality"])   # no teacher in that folder
    assert len(list(Path(tmp_path / "previews").glob("*.png"))) == len(data["quality"])
    assert "flicker" in out


def test_bench_style_without_models(tmp_path, capsys):
    code, _, err = run_cli(capsys, "bench", "style", "--set", f"style.model_dir={tmp_path}")
    assert code == 4 and "no style_*.onnx" in one_line_error(err)
