"""The side-by-side comparison with dlib: statistics, the reference reader, the --against-dlib plumbing (with a
stand-in dlib module built from rtv's own port), and the reference-data command end to end (slow)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.config import ZOO_DIR
from realtime.errors import ModelError
from realtime.face import dlib_eval
from realtime.face.dlib_eval import FaceRow, d_prime, summarise

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data" / "reference" / "dlib_shape5_reference.npz"
MODELS = [ZOO_DIR / n for n in ("centerface.onnx", "dlib_resnet128.onnx", "dlib_shape5.npz")]
needs_reference = pytest.mark.skipif(not REFERENCE.is_file(), reason=f"no dlib reference at {REFERENCE}")
needs_models = pytest.mark.skipif(not all(p.is_file() for p in MODELS), reason="shipped face models absent")


def test_d_prime_of_known_samples():
    genuine = np.array([0.2, 0.4])  # mean 0.3, var 0.02
    impostor = np.array([0.8, 1.0])  # mean 0.9, var 0.02
    assert d_prime(genuine, impostor) == pytest.approx(0.6 / np.sqrt(0.02))
    assert np.isnan(d_prime(genuine[:1], impostor))


def _row(person, photo, scale):
    return FaceRow(person, photo, scale, np.zeros((1, 1, 3), np.uint8), np.zeros(128, np.float32),
                   np.zeros(4, np.int64))


def test_summarise_pairs_rescale_moves_and_distance_to_dlib():
    rows = [_row("a", "a1", 1.0), _row("a", "a1", 0.5), _row("a", "a1", 1.6), _row("b", "b1", 1.0)]
    vectors = np.zeros((4, 128), np.float32)
    vectors[1, 0], vectors[2, 0], vectors[3, 1] = 0.1, 0.3, 1.0
    dlib = vectors.astype(np.float64).copy()
    dlib[3, 1] = 1.2
    out = summarise(rows, vectors, dlib)
    assert out["genuine_pairs"] == 3 and out["impostor_pairs"] == 3
    assert out["rescale"]["x0.5"]["mean"] == pytest.approx(0.1) and out["rescale"]["x1.6"]["max"] == pytest.approx(0.3)
    assert out["to_dlib"]["max"] == pytest.approx(0.2) and out["to_dlib"]["per_face"][:3] == [0.0, 0.0, 0.0]
    lines = dlib_eval.format_table({"rtv": out, "source": "not a row"})
    assert lines[1].startswith("rtv") and "0.100 (max 0.100)" in lines[1]


@needs_reference
def test_reference_rows_group_jittered_boxes_and_rescaled_photos():
    rows = dlib_eval.reference_rows(REFERENCE)
    assert len(rows) == 17  # HOG boxes, real faces and badges
    assert all(r.dlib_jitter_descriptors is not None and len(r.dlib_jitter_descriptors) == 3 for r in rows)
    scales = {(r.photo, r.scale) for r in rows if r.person == "astronaut"}
    assert {("astronaut", 1.0), ("astronaut", 0.5), ("astronaut", 1.6)} <= scales


def test_against_dlib_without_dlib_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(ModelError, match="pip install dlib"):
        dlib_eval.DlibPipeline()


def _key(rgb: np.ndarray) -> int:
    return hash(np.ascontiguousarray(rgb).tobytes())


def _stand_in_dlib(boxes_by_image: dict[int, list]):
    """A module with dlib's Python API, computed by rtv's own port (the detector returns given boxes)."""
    from realtime.face.chip import dlib_face_chips
    from realtime.face.embedder import FaceEmbedder
    from realtime.face.landmarks import load_shape_predictor
    from realtime.runtime import OnnxModel, RuntimeOptions

    predictor = load_shape_predictor(ZOO_DIR / "dlib_shape5.npz")
    embedder = FaceEmbedder(OnnxModel(ZOO_DIR / "dlib_resnet128.onnx", RuntimeOptions(providers="cpu",
                                      intra_op_threads=1), expected_kind="face_embedder"))

    class Rect:
        def __init__(self, ltrb):
            self.ltrb = np.asarray(ltrb, dtype=np.int64)

        def left(self):
            return int(self.ltrb[0])

        def top(self):
            return int(self.ltrb[1])

        def right(self):
            return int(self.ltrb[2])

        def bottom(self):
            return int(self.ltrb[3])

    class Shape:
        def __init__(self, points):
            self.points = points

        def part(self, i):
            return types.SimpleNamespace(x=int(self.points[i, 0]), y=int(self.points[i, 1]))

    module = types.ModuleType("dlib")
    module.__version__ = "stand-in"
    module.get_frontal_face_detector = lambda: (
        lambda rgb, upsample: [Rect(b) for b in boxes_by_image.get(_key(rgb), [])])
    module.shape_predictor = lambda path: (lambda rgb, rect: Shape(predictor.predict(rgb, rect.ltrb[None])[0]))
    module.get_face_chip = lambda rgb, shape, size, padding: dlib_face_chips(rgb, shape.points[None], size,
                                                                           padding)[0]
    module.face_recognition_model_v1 = lambda path: types.SimpleNamespace(
        compute_face_descriptor=lambda chip: embedder.embed(np.ascontiguousarray(chip[None, ..., ::-1]))[0])
    return module


@needs_reference
@needs_models
def test_against_dlib_end_to_end_with_a_stand_in_dlib(tmp_path, monkeypatch, capsys):
    from realtime.cli.main import main

    with np.load(REFERENCE, allow_pickle=False) as ref:
        kinds, owner, boxes = ref["box_kind"], ref["box_image"], ref["boxes_ltrb"]
        names = [str(n) for n in ref["image_names"]]
        images = {"astronaut": 0, "camera": names.index("camera/rot9")}
        boxes_by_image = {}
        for person, k in images.items():
            (person_dir := tmp_path / "data" / person).mkdir(parents=True)
            bgr = np.ascontiguousarray(ref[f"image_{k}"][..., ::-1])
            cv2.imwrite(str(person_dir / "photo.png"), bgr)
            real = int(np.nonzero((owner == k) & (kinds == "hog"))[0][0])
            for scale in (1.0, 0.5, 1.6):  # the copies dlib_rows makes
                copy = bgr if scale == 1.0 else cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=(
                    cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR))
                boxes_by_image[_key(copy[..., ::-1])] = [np.round(boxes[real] * scale).astype(np.int64)]
    models = tmp_path / "dlib_models"
    models.mkdir()
    for name in ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat"):
        (models / name).write_bytes(b"stand-in")
    monkeypatch.setitem(sys.modules, "dlib", _stand_in_dlib(boxes_by_image))
    out = tmp_path / "report.json"
    code = main(["eval", "faces", "--against-dlib", "--data", str(tmp_path / "data"), "--dlib-models", str(models),
                 "--json", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert "dlib stand-in" in report["source"] and report["dlib"]["faces"] == 6
    assert report["dlib"]["impostor_pairs"] == 9 and report["dlib"]["rescale"]["x0.5"]["n"] == 2
    ours = report["rtv dlib5 (box + refine)"]
    assert ours["to_dlib"]["mean"] < 0.15 and "x0.5" in ours["rescale"]
    printed = capsys.readouterr().out
    assert "rtv dlib5 (box + refine)" in printed and "time per image" in printed
    assert report["rtv_seconds_per_image"] > 0 and report["dlib_seconds_per_image"] > 0


@pytest.mark.slow
@needs_reference
@needs_models
def test_reference_table_end_to_end(tmp_path, capsys):
    from realtime.cli.main import main

    out = tmp_path / "report.json"
    assert main(["eval", "faces", "--dlib-reference", str(REFERENCE), "--fit", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    ours, template = report["rtv dlib5 (box + refine)"], report["rtv template5 (shipped)"]
    assert report["dlib"]["faces"] == 9
    assert ours["to_dlib"]["mean"] < 0.08 < template["to_dlib"]["mean"]
    assert ours["rescale"]["x1.6"]["mean"] < 0.08
    assert report["fit"]["box_side"] == pytest.approx(1.0, abs=0.05)
