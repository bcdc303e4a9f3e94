"""Offline style keeps the configured width: ``rtv annotate`` (and batch) never adapt it to a frame rate, and the
JSONL's ``style.width`` says so; only live sources adapt."""

from __future__ import annotations

import json

from realtime.cli.main import main
from realtime.config import load_config
from realtime.style.stage import offline_style

from tests.realtime.test_style import style_onnx


def test_annotate_keeps_the_configured_style_width(tmp_path, capsys, video_factory):
    style_onnx(tmp_path / "style_a.onnx", styles=("a",))
    clip = video_factory(tmp_path / "in.mp4", 16, size_wh=(640, 480))
    jsonl = tmp_path / "o.jsonl"
    # a frame rate no machine holds: a live source would fall to min_width at once
    code = main(["annotate", str(clip), "--jsonl", str(jsonl), "--no-progress", "--set", "style.enabled=true",
                 "--set", f"style.model_dir={tmp_path}", "--set", "style.target_fps=1000", "--set",
                 "style.width=320", "--set", "faces.enabled=false", "--set", "detector.enabled=false"])
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    widths = [r["style"]["width"] for r in rows if "style" in r]
    assert len(widths) == 16 and set(widths) == {320}, widths


def test_offline_style_turns_adaptation_off_and_leaves_the_rest():
    config = load_config(None, ["style.width=256"])
    offline = offline_style(config)
    assert config.style.adaptive and not offline.style.adaptive
    assert offline.style.width == 256 and offline.detector == config.detector
