"""`rtv faces recognize` / `rtv faces detect` print face_recognition's command-line lines (its own output recorded
in tests/data/face_recognition/answers.json by recipes/face_recognition_answers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realtime.cli.main import main

DATA = Path(__file__).resolve().parents[2] / "data" / "face_recognition"
ANSWERS = json.loads((DATA / "answers.json").read_text())


def _run(capsys, monkeypatch, *argv) -> tuple[int, list[str], str]:
    monkeypatch.chdir(DATA)
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_recognize_prints_face_recognitions_lines(capsys, monkeypatch):
    code, lines, _ = _run(capsys, monkeypatch, "faces", "recognize", "known", "unknown")
    assert code == 0
    # face_recognition lists a folder in os.listdir order; rtv sorts by name
    assert lines == sorted(ANSWERS["cli"]["recognize"])


def test_recognize_show_distance_and_tolerance(capsys, monkeypatch):
    code, lines, _ = _run(capsys, monkeypatch, "faces", "recognize", "known", "unknown", "--show-distance", "true")
    assert code == 0
    theirs = {line.rsplit(",", 1)[0]: line.rsplit(",", 1)[1] for line in ANSWERS["cli"]["recognize_distance"]}
    ours = {line.rsplit(",", 1)[0]: line.rsplit(",", 1)[1] for line in lines}
    assert ours.keys() == theirs.keys() and len(lines) == len(theirs)
    for key, value in theirs.items():
        if value == "None":
            assert ours[key] == "None"
        else:
            assert abs(float(ours[key]) - float(value)) < 0.1
    # a bare --show-distance works too; a tolerance below every distance makes everyone unknown
    code, lines, _ = _run(capsys, monkeypatch, "faces", "recognize", "known", "unknown/obama2.jpg",
                          "--show-distance", "--tolerance", "0.05")
    assert code == 0 and lines == ["unknown/obama2.jpg,unknown_person,None"]


def test_recognize_one_file_with_threads_and_warnings(capsys, monkeypatch, tmp_path):
    code, lines, _ = _run(capsys, monkeypatch, "faces", "recognize", "known", "unknown", "--cpus", "2")
    assert code == 0 and lines == sorted(ANSWERS["cli"]["recognize"])
    known = tmp_path / "known"
    known.mkdir()
    (known / "coffee.jpg").write_bytes((DATA / "unknown" / "coffee.jpg").read_bytes())
    (known / "notes.txt").write_text("not an image")
    code, lines, err = _run(capsys, monkeypatch, "faces", "recognize", str(known), "unknown/obama2.jpg")
    assert code == 0 and lines == ["unknown/obama2.jpg,unknown_person"]
    assert f"WARNING: No faces found in {known / 'coffee.jpg'}. Ignoring file." in err


def test_recognize_missing_input_is_one_error_line(capsys, monkeypatch):
    code, lines, err = _run(capsys, monkeypatch, "faces", "recognize", "nowhere", "unknown")
    assert code == 3 and lines == [] and err.startswith("rtv: error:") and len(err.splitlines()) == 1
    code, lines, err = _run(capsys, monkeypatch, "faces", "recognize", "known", "unknown/missing.jpg")
    assert code == 3 and err.startswith("rtv: error:")


def _boxes(lines: list[str]) -> dict[str, list[tuple[int, ...]]]:
    out: dict[str, list] = {}
    for line in lines:
        file, *box = line.split(",")
        assert len(box) == 4
        out.setdefault(file, []).append(tuple(int(v) for v in box))
    return out


def test_detect_prints_file_top_right_bottom_left(capsys, monkeypatch):
    code, lines, _ = _run(capsys, monkeypatch, "faces", "detect", "unknown")
    assert code == 0
    ours, theirs = _boxes(lines), _boxes(ANSWERS["cli"]["detect"])
    assert list(ours) == sorted(ours)  # files in name order
    for file, boxes in theirs.items():
        if file == "unknown/astronaut.jpg":  # dlib's HOG detector also fires on her suit's badge
            boxes = boxes[:1]
        assert len(ours[file]) == len(boxes)
        for (t, r, b, l), (t2, r2, b2, l2) in zip(ours[file], boxes):
            inter = max(0, min(r, r2) - max(l, l2)) * max(0, min(b, b2) - max(t, t2))
            union = (r - l) * (b - t) + (r2 - l2) * (b2 - t2) - inter
            assert inter / union > 0.6, (file, (t, r, b, l), (t2, r2, b2, l2))
    assert "unknown/coffee.jpg" not in ours


@pytest.mark.parametrize("argv", [["--cpus", "0"], ["--model", "mmod"], ["--upsample", "-1"]])
def test_detect_refuses_bad_options(capsys, monkeypatch, argv):
    code, _, err = _run(capsys, monkeypatch, "faces", "detect", "unknown", *argv)
    assert code == 2 and err.startswith("rtv: error:")
