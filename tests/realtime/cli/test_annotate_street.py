"""``rtv annotate`` on real street footage (Debian opencv-doc's vtest.avi, when cached) boxes the pedestrians as
``person`` with the default (COCO) detector."""

from __future__ import annotations

import json
import statistics

import pytest

from realtime.cli.main import main


@pytest.mark.slow
def test_annotate_street_video_finds_persons(tmp_path, capsys):
    from models.sources import VTEST_AVI, locate_debian
    from realtime.errors import ExportError

    try:
        video = locate_debian(VTEST_AVI, download=False)
    except ExportError as exc:
        pytest.skip(str(exc))
    jsonl = tmp_path / "street.jsonl"
    code = main(["annotate", str(video), "--jsonl", str(jsonl), "--max-frames", "60", "--no-progress",
                 "--set", "faces.enabled=false", "--set", "runtime.providers=cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    frames = [json.loads(line) for line in jsonl.read_text().splitlines() if '"frame"' in line]
    persons = [sum(d["class"] == "person" for d in f["detections"]) for f in frames]
    assert len(frames) == 60
    assert statistics.median(persons) >= 3 and sum(p > 0 for p in persons) >= 0.9 * len(persons), persons
