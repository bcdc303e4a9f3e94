"""The public Python API (realtime.open_pipeline, Vision, Result, open_gallery, open_faces) on real models, real
photo files and real video files."""

from __future__ import annotations

import doctest
import importlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import realtime
from realtime.config import ZOO_DIR
from realtime.errors import ConfigError, EnrollmentError, NoFaceError, SeveralFacesError, SourceError

MODELS = [ZOO_DIR / n for n in ("yolov3_tiny_coco_int8.onnx", "centerface.onnx", "dlib_resnet128.onnx",
                                "dlib_shape5.npz")]
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in MODELS), reason="shipped models absent")


def _rtv_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("capture:", "rtv-stage"))]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Four scikit-image photos of different sizes (astronaut 512x512 PNG, coffee 600x400 JPEG, cat 451x300,
    motorcycle 741x500 JPEG)."""
    data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    cv2.imwrite(str(folder / "astronaut.png"), data.astronaut()[..., ::-1])
    cv2.imwrite(str(folder / "coffee.jpg"), data.coffee()[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(folder / "chelsea.png"), data.chelsea()[..., ::-1])
    cv2.imwrite(str(folder / "motorcycle.jpg"), data.stereo_motorcycle()[0][..., ::-1])
    return folder


@pytest.fixture(scope="module")
def vision():
    with realtime.open_pipeline() as v:
        yield v


# ---------------------------------------------------------------- the package surface


def test_import_is_cheap_and_lazy():
    code = ("import sys, realtime; heavy = [m for m in ('onnxruntime', 'cv2', 'realtime.api', 'realtime.build') "
            "if m in sys.modules]; realtime.open_pipeline; realtime.Result; "
            "print(heavy, 'onnxruntime' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] False"


def test_every_public_name_has_a_docstring_with_an_example():
    for name in realtime.__all__:
        if name == "__version__":
            continue
        obj = getattr(realtime, name)
        assert obj.__doc__ and ">>>" in obj.__doc__, f"realtime.{name} has no example in its docstring"
    assert (Path(realtime.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError):
        realtime.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", ["realtime.api", "realtime.results", "realtime.face.describe",
                                    "realtime.face.enroll"])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_overrides_and_config_forms(tmp_path):
    from realtime.api import resolve_config

    yaml = tmp_path / "c.yaml"
    yaml.write_text("detector:\n  score_threshold: 0.3\n")
    assert resolve_config(yaml).detector.score_threshold == 0.3
    config = resolve_config(yaml, {"faces.detect_width": 480})
    assert (config.detector.score_threshold, config.faces.detect_width) == (0.3, 480)
    assert resolve_config(config, ["tracking.min_hits=5"]).tracking.min_hits == 5
    assert resolve_config(None, {"detector.classes": ("person", "cup")}).detector.classes == ("person", "cup")
    with pytest.raises(ConfigError, match="faces.no_such"):
        resolve_config(None, {"faces.no_such": 1})
    with pytest.raises(ConfigError, match="detector.score_threshold"):
        resolve_config(config, {"detector.score_threshold": 2})


# ---------------------------------------------------------------- photos


def test_predict_files_keeps_each_photo_at_its_size_with_the_detectors_own_boxes(vision, photos):
    from realtime.api import stills_config
    from realtime.build import build_detector_stage
    from realtime.io.capture import read_image

    results = list(vision.predict_files(photos))
    assert [Path(r.source).name for r in results] == ["astronaut.png", "chelsea.png", "coffee.jpg",
                                                      "motorcycle.jpg"]
    stage = build_detector_stage(stills_config(vision.config))  # the detector at detector.score_threshold
    try:
        for r in results:
            image = read_image(r.source)
            assert r.frame_bgr.shape == image.shape and r.index == 0
            alone = stage.detector.detect(image)
            np.testing.assert_allclose(r.detections.boxes_xyxy, alone.boxes_xyxy, atol=1e-3)
            assert list(r.detections.class_ids) == list(alone.class_ids)
            assert (r.detections.scores > vision.config.detector.score_threshold).all()
            assert (r.detections.track_ids == -1).all()
            assert r.identities is None or (r.identities.track_ids == -1).all()
    finally:
        stage.close()
    motorcycle = results[3].to_json()
    assert motorcycle["source"].endswith("motorcycle.jpg")
    assert "motorbike" in {d["class"] for d in motorcycle["detections"]}
    assert all("track" not in d for r in results for d in r.to_json()["detections"])


def test_a_photo_does_not_depend_on_the_photos_before(vision, photos):
    first = vision.predict(photos / "astronaut.png")
    vision.predict(photos / "coffee.jpg")
    again = vision.predict(photos / "astronaut.png")
    assert first.to_json()["faces"] == again.to_json()["faces"]
    np.testing.assert_array_equal(first.detections.boxes_xyxy, again.detections.boxes_xyxy)


def test_predict_takes_arrays_and_refuses_bad_ones(vision):
    result = vision.predict(np.zeros((50, 70), np.uint8))
    assert result.frame_bgr.shape == (50, 70, 3) and result.source is None
    with pytest.raises(SourceError, match="uint8"):
        vision.predict(np.zeros((50, 70, 3), np.float32))
    with pytest.raises(SourceError, match="image not found"):
        vision.predict("no/such.jpg")


def test_exif_orientation_is_applied(vision, tmp_path):
    """A JPEG stored 40 wide x 20 high with EXIF orientation 6 (rotate 90 clockwise) is read 20 wide x 40 high."""
    ok, jpeg = cv2.imencode(".jpg", np.full((20, 40, 3), 200, np.uint8))
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
            + b"\x00\x00\x00\x00")
    app1 = b"Exif\x00\x00" + tiff
    data = jpeg.tobytes()
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:])
    assert vision.predict(path).frame_bgr.shape[:2] == (40, 20)


def test_plot_and_supervision(vision, photos):
    result = vision.predict(photos / "motorcycle.jpg")
    image = result.plot()
    assert image.shape == result.frame_bgr.shape and not np.array_equal(image, result.frame_bgr)
    assert result.frame_bgr is result.packet.frame_bgr  # plot drew on a copy
    sv = pytest.importorskip("supervision")
    detections = result.to_supervision()
    assert isinstance(detections, sv.Detections) and len(detections) == len(result.detections)
    np.testing.assert_allclose(detections.xyxy, result.detections.boxes_xyxy)
    assert "motorbike" in list(detections.data["class_name"])


def test_to_supervision_without_the_package_says_how_to_install(vision, monkeypatch):
    monkeypatch.setitem(sys.modules, "supervision", None)
    with pytest.raises(ImportError, match="pip install supervision"):
        vision.predict(np.zeros((32, 32, 3), np.uint8)).to_supervision()


# ---------------------------------------------------------------- streams


def test_stream_break_closes_the_source_and_the_workers(vision, tmp_path, video_factory):
    clip = video_factory(tmp_path / "clip.mp4", 40, size_wh=(160, 120))
    seen = []
    for result in vision.stream(clip):
        seen.append(result.index)
        assert result.source == str(clip)
        if len(seen) == 3:
            assert _rtv_threads()  # the capture thread is running while we iterate
            break
    assert seen == [0, 1, 2]
    assert _rtv_threads() == []
    # the pipeline stays usable; tracks start over for the next stream
    assert [r.index for r in vision.stream(clip, max_frames=5)] == [0, 1, 2, 3, 4]
    assert _rtv_threads() == []


def test_stream_of_a_paced_file_is_live_and_closes(tmp_path, video_factory):
    clip = video_factory(tmp_path / "live.mp4", 20, size_wh=(96, 64))
    with realtime.open_pipeline(overrides={"source.pace": True, "faces.enabled": False}) as vision:
        stream = vision.stream(clip)
        first = next(stream)
        assert first.frame_bgr.shape == (64, 96, 3)
        stream.close()
        assert _rtv_threads() == []


def test_stream_missing_file_raises_before_iteration(vision):
    with pytest.raises(SourceError):
        vision.stream("no/such/video.mp4")


def test_mixed_folder_gives_photos_and_video_frames(vision, tmp_path, video_factory):
    video_factory(tmp_path / "b.mp4", 4, size_wh=(96, 64))
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((30, 40, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "c.jpg"), np.zeros((50, 20, 3), np.uint8))
    got = [(Path(r.source).name, r.index, r.frame_bgr.shape[:2]) for r in vision.predict_files(tmp_path)]
    assert got == [("a.png", 0, (30, 40)), *[("b.mp4", i, (64, 96)) for i in range(4)], ("c.jpg", 0, (50, 20))]
    assert _rtv_threads() == []


def test_closed_vision_refuses():
    vision = realtime.open_pipeline(overrides={"faces.enabled": False})
    vision.close()
    vision.close()
    with pytest.raises(RuntimeError, match="closed"):
        vision.predict(np.zeros((8, 8, 3), np.uint8))


# ---------------------------------------------------------------- faces and the gallery


@pytest.fixture(scope="module")
def faces_folder(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("faces")
    astronaut = data.astronaut()[..., ::-1]
    cv2.imwrite(str(folder / "astronaut.png"), astronaut)
    cv2.imwrite(str(folder / "astronaut_small.jpg"), cv2.resize(astronaut, (384, 384)))
    cv2.imwrite(str(folder / "grey.png"), np.full((120, 160, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "two.png"), np.hstack([astronaut, astronaut]))
    return folder


def test_gallery_enrol_identify_list_remove(tmp_path, faces_folder):
    path = tmp_path / "people.sqlite"
    with realtime.open_gallery(path) as gallery:
        with pytest.raises(EnrollmentError, match="nothing was enrolled"):
            gallery.enroll("nobody", faces_folder / "grey.png")
        assert not path.exists()  # a refused first enrolment makes no gallery
        done = gallery.enroll("eileen", [faces_folder / "astronaut.png", faces_folder / "astronaut_small.jpg"])
        assert (done.enrolled, done.stored, done.refused) == (2, 2, ())
        assert gallery.names() == ["eileen"]
        matches = gallery.identify(faces_folder / "two.png")
        assert [m.name for m in matches] == ["eileen", "eileen"]
        assert all(m.distance is not None and m.distance < 0.6 for m in matches)
        assert gallery.identify(faces_folder / "grey.png") == []
        assert gallery.remove("eileen") == 2
        assert gallery.names() == []


def test_verify_refuses_several_faces_unless_told_which(faces_folder):
    with realtime.open_faces() as faces:
        with pytest.raises(SeveralFacesError, match="2 faces"):
            faces.verify(faces_folder / "two.png", faces_folder / "astronaut.png")
        answer = faces.verify(faces_folder / "two.png", faces_folder / "astronaut.png", largest=True)
        assert answer.same_person and answer.chosen == ("largest", "only")
        right = faces.verify(faces_folder / "two.png", faces_folder / "astronaut.png",
                             boxes=((512, 0, 1024, 512), None))
        assert right.chosen == ("box", "only") and right.faces[0].box_xyxy[0] >= 512
        with pytest.raises(NoFaceError, match="no face"):
            faces.verify(faces_folder / "grey.png", faces_folder / "astronaut.png")
        assert json.loads(json.dumps(answer.to_json()))["same_person"] is True


def test_stream_of_a_truncated_video_gives_the_frames_then_the_error(tmp_path, video_factory):
    clip = video_factory(tmp_path / "full.mp4", 40)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[: int(clip.stat().st_size * 0.6)])
    seen = []
    with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
        with pytest.raises(SourceError, match="truncated or damaged|damaged video data"):
            for result in vision.stream(broken):
                seen.append(result.index)
    assert 0 < len(seen) < 40 and seen == list(range(len(seen)))
    assert _rtv_threads() == []
