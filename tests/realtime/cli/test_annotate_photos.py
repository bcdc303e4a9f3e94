"""``rtv annotate`` on photos (each on its own, at its own size), mixed folders, and default numbered outputs."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime.cli.main import main
from realtime.config import ZOO_DIR

HAS_MODELS = all((ZOO_DIR / n).is_file() for n in ("yolov3_tiny_coco_int8.onnx", "centerface.onnx",
                                                   "dlib_resnet128.onnx", "dlib_shape5.npz"))
NO_MODELS = ["--set", "detector.enabled=false", "--set", "faces.enabled=false"]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rows(path: Path) -> list[dict]:
    """The JSONL's frame and end lines (the header line, keyed ``rtv``, is skipped as readers do)."""
    return [row for row in map(json.loads, path.read_text().splitlines()) if "rtv" not in row]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("in") / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "astronaut.png"), data.astronaut()[..., ::-1])
    cv2.imwrite(str(folder / "coffee.jpg"), data.coffee()[..., ::-1])
    cv2.imwrite(str(folder / "motorcycle.jpg"), data.stereo_motorcycle()[0][..., ::-1])
    return folder


@pytest.mark.skipif(not HAS_MODELS, reason="shipped models absent")
def test_photos_are_annotated_one_by_one_in_their_own_pixels(tmp_path, capsys, monkeypatch, photos):
    from realtime.api import stills_config
    from realtime.build import build_detector_stage
    from realtime.config import Config
    from realtime.serialize import detections_json

    monkeypatch.chdir(tmp_path)
    gallery = tmp_path / "g.sqlite"
    code, _, err = run(capsys, "annotate", str(photos), "--out", "out", "--jsonl", "o.jsonl", "--no-progress",
                       "--set", f"faces.gallery={gallery}")
    assert code == 0, err
    found = rows(tmp_path / "o.jsonl")
    assert [Path(r["source"]).name for r in found[:-1]] == ["astronaut.png", "coffee.jpg", "motorcycle.jpg"]
    assert found[-1]["end"] == {**found[-1]["end"], "frames": 3, "complete": True}
    stage = build_detector_stage(stills_config(Config()))
    try:
        for row in found[:-1]:
            original = cv2.imread(row["source"])
            annotated = cv2.imread(str(tmp_path / "out" / Path(row["source"]).name))
            assert annotated.shape == original.shape  # same name, same format, same size
            alone = detections_json(stage.detector.detect(original))
            assert [d["box"] for d in row["detections"]] == [d["box"] for d in alone]
            assert [d["class"] for d in row["detections"]] == [d["class"] for d in alone]
            assert all("track" not in item for item in row["detections"] + row["faces"])
    finally:
        stage.close()
    assert "motorbike" in {d["class"] for d in found[2]["detections"]}
    assert not list((tmp_path / "out").glob("*.mp4"))


@pytest.mark.skipif(not HAS_MODELS, reason="shipped models absent")
def test_a_name_is_confirmed_on_a_single_photo(tmp_path, capsys, monkeypatch, photos):
    monkeypatch.chdir(tmp_path)
    gallery = f"faces.gallery={tmp_path / 'g.sqlite'}"
    mirror = tmp_path / "mirror.png"
    cv2.imwrite(str(mirror), cv2.imread(str(photos / "astronaut.png"))[:, ::-1])
    assert run(capsys, "enroll", "eileen", str(mirror), "--set", gallery)[0] == 0
    code, _, err = run(capsys, "annotate", str(photos / "astronaut.png"), "--set", gallery, "--no-progress")
    assert code == 0, err
    assert "results in runs/annotate/1" in err
    (face,) = rows(tmp_path / "runs" / "annotate" / "1" / "astronaut.jsonl")[0]["faces"]
    assert face["identity"] == "eileen" and face["track_identity"] == "eileen"
    annotated = tmp_path / "runs" / "annotate" / "1" / "astronaut.png"
    assert cv2.imread(str(annotated)).shape == (512, 512, 3)  # one photo gives one image, not an MP4


def test_default_outputs_go_to_a_new_numbered_folder(tmp_path, capsys, monkeypatch, video_factory):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "clip.mp4", 5)
    (tmp_path / "runs" / "annotate" / "7").mkdir(parents=True)
    (tmp_path / "runs" / "annotate" / "7" / "keep.txt").write_text("mine")
    for expected in ("8", "9"):
        code, _, err = run(capsys, "annotate", str(clip), "--no-progress", *NO_MODELS)
        assert code == 0, err
        folder = tmp_path / "runs" / "annotate" / expected
        assert f"results in runs/annotate/{expected}" in err
        assert sorted(p.name for p in folder.iterdir()) == ["clip.jsonl", "clip.mp4"]
        with av.open(str(folder / "clip.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == 5
        assert all(r.get("source") == str(clip) for r in rows(folder / "clip.jsonl")[:-1])
    assert (tmp_path / "runs" / "annotate" / "7" / "keep.txt").read_text() == "mine"


def test_runs_dir_comes_from_config(tmp_path, capsys, monkeypatch, video_factory):
    monkeypatch.chdir(tmp_path)
    clip = video_factory(tmp_path / "clip.mp4", 3)
    code, _, err = run(capsys, "annotate", str(clip), "--no-progress", "--set", f"output.runs_dir={tmp_path / 'r'}",
                       *NO_MODELS)
    assert code == 0, err
    assert (tmp_path / "r" / "annotate" / "1" / "clip.mp4").is_file()


def test_a_mixed_folder_gives_images_videos_and_one_jsonl(tmp_path, capsys, monkeypatch, video_factory):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "mixed"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((40, 60, 3), 90, np.uint8))
    video_factory(folder / "b.mp4", 4, size_wh=(96, 64))
    cv2.imwrite(str(folder / "c.jpg"), np.full((80, 30, 3), 90, np.uint8))
    code, _, err = run(capsys, "annotate", "mixed", "--no-progress", *NO_MODELS)
    assert code == 0, err
    out = tmp_path / "runs" / "annotate" / "1"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.mp4", "c.jpg", "mixed.jsonl"]
    found = rows(out / "mixed.jsonl")
    sources = [r.get("source") for r in found]
    assert sources == ["mixed/a.png", *["mixed/b.mp4"] * 5, "mixed/c.jpg", None]  # b's 4 frames + its end row
    assert found[5]["end"]["frames"] == 4 and found[-1]["end"]["frames"] == 6
    assert cv2.imread(str(out / "c.jpg")).shape == (80, 30, 3)


def test_one_photo_to_a_named_image_and_folders_for_several(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cv2.imwrite("a.jpg", np.full((40, 60, 3), 90, np.uint8))
    cv2.imwrite("b.jpg", np.full((40, 60, 3), 90, np.uint8))
    code, _, err = run(capsys, "annotate", "a.jpg", "--out", "a_annotated.png", "--no-progress", *NO_MODELS)
    assert code == 0 and cv2.imread("a_annotated.png").shape == (40, 60, 3), err
    code, _, err = run(capsys, "annotate", "a.jpg", "b.jpg", "--out", "x.jpg", "--no-progress", *NO_MODELS)
    assert code == 2 and "give a folder" in err
    code, _, err = run(capsys, "annotate", "*.jpg", "--out", "both", "--no-progress", *NO_MODELS)
    assert code == 0 and sorted(p.name for p in Path("both").iterdir()) == ["a.jpg", "b.jpg"], err
    code, _, err = run(capsys, "annotate", "*.jpg", "--out", "both", "--no-progress", *NO_MODELS)
    assert code == 6 and "--overwrite" in err  # never over what exists unless asked
