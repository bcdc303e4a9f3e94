"""After ``rtv demo``: the printed replay command is a valid ``rtv run`` line with the demo's gallery."""

import argparse
import shlex
from pathlib import Path

from realtime.cli.main import build_parser
from realtime.cli.run import replay_command


def test_replay_command_parses_as_rtv_run_with_the_gallery(tmp_path):
    clip, gallery = tmp_path / "demo dir" / "demo_input.mp4", tmp_path / "demo dir" / "demo_gallery.sqlite"
    args = argparse.Namespace(config=None, set=["faces.gallery=elsewhere.sqlite", "detector.score_threshold=0.4"])
    line = replay_command(args, clip, gallery)
    words = shlex.split(line)
    assert words[:2] == ["rtv", "run"]
    parsed = build_parser().parse_args(words[1:])
    assert parsed.func.__name__ == "cmd_run"
    assert Path(parsed.source) == clip.resolve()
    assert f"faces.gallery={gallery.resolve()}" in parsed.set
    assert "faces.gallery=elsewhere.sqlite" not in parsed.set  # the demo's gallery, not the one it overrode
    assert "detector.score_threshold=0.4" in parsed.set and "source.pace=true" in parsed.set


def test_replay_command_keeps_the_config_file_and_works_without_a_gallery(tmp_path):
    config = tmp_path / "my.yaml"
    line = replay_command(argparse.Namespace(config=str(config), set=None), tmp_path / "c.mp4", None)
    words = shlex.split(line)
    assert words[words.index("--config") + 1] == str(config.resolve())
    assert not any(w.startswith("faces.gallery=") for w in words)
