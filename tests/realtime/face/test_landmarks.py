"""dlib's 5-point shape predictor in numpy: dlib's own points on the reference boxes, a plain-loop twin, bad files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from realtime.config import ZOO_DIR
from realtime.errors import ModelError
from realtime.face.landmarks import ShapePredictor, load_shape_predictor, similarity_matrices

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data" / "reference" / "dlib_shape5_reference.npz"
SHIPPED = ZOO_DIR / "dlib_shape5.npz"


@pytest.fixture(scope="module")
def shipped():
    return load_shape_predictor(SHIPPED)


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE} (see tests/data/reference/README.md)")
    with np.load(REFERENCE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_same_box_gives_dlibs_integer_points(shipped, reference):
    boxes, owner, expected = reference["boxes_ltrb"], reference["box_image"], reference["points5"]
    got = np.zeros_like(expected)
    for k in range(len(reference["image_names"])):
        sel = owner == k
        got[sel] = shipped.predict(reference[f"image_{k}"], boxes[sel])
    assert len(boxes) == 68
    np.testing.assert_array_equal(got, expected)


def test_bgr_and_rgb_give_the_same_points(shipped, reference):
    image, boxes = reference["image_0"], reference["boxes_ltrb"][reference["box_image"] == 0]
    np.testing.assert_array_equal(shipped.predict(image, boxes), shipped.predict(image[..., ::-1].copy(), boxes))


def _dlib_loop(sp: ShapePredictor, image: np.ndarray, box) -> np.ndarray:
    """dlib's shape_predictor::operator() for one box, one scalar at a time (the test's ground truth)."""
    f32 = np.float32
    left, top, right, bottom = (int(v) for v in box)
    h, w = image.shape[:2]
    shape = sp.initial_shape.copy()
    for c in range(sp.num_cascades):
        m = similarity_matrices(sp.initial_shape, shape[None])[0].astype(f32)
        grey = np.zeros(len(sp.anchor_idx[c]), f32)
        for i, (anchor, (dx, dy)) in enumerate(zip(sp.anchor_idx[c], sp.deltas[c])):
            px = f32(f32(m[0, 0] * dx) + f32(m[0, 1] * dy)) + shape[anchor, 0]
            py = f32(f32(m[1, 0] * dx) + f32(m[1, 1] * dy)) + shape[anchor, 1]
            x = int(np.floor((right - left) * float(px) + left + 0.5))
            y = int(np.floor((bottom - top) * float(py) + top + 0.5))
            if 0 <= x < w and 0 <= y < h:
                grey[i] = (int(image[y, x, 0]) + int(image[y, x, 1]) + int(image[y, x, 2])) // 3
        for t in range(sp.num_trees):
            node = 0
            while node < sp.num_splits:
                a, b = sp.idx1[c, t, node], sp.idx2[c, t, node]
                node = 2 * node + 1 if grey[a] - grey[b] > sp.split_thresh[c, t, node] else 2 * node + 2
            shape = (shape + sp.leaf_values[c, t, node - sp.num_splits]).astype(f32)
    return shape


def _random_predictor(rng, cascades=3, trees=300, depth=3, pixels=40, k=5) -> ShapePredictor:
    s = 2 ** depth - 1
    return ShapePredictor({
        "initial_shape": rng.uniform(0.2, 0.8, (k, 2)).astype(np.float32),
        "split_idx": rng.integers(0, pixels, (cascades, trees, s, 2)),
        "split_thresh": rng.uniform(-40, 40, (cascades, trees, s)).astype(np.float32),
        "leaf_values": rng.normal(0, 0.03, (cascades, trees, s + 1, k, 2)).astype(np.float32),
        "anchor_idx": rng.integers(0, k, (cascades, pixels)),
        "deltas": rng.normal(0, 0.2, (cascades, pixels, 2)).astype(np.float32),
    })


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_cascade_equals_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    sp = _random_predictor(rng)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    # 300 trees: enough that a pairwise (not sequential) float32 sum of the leaves would show.
    # Boxes inside, overlapping the border, and mostly outside (feature pixels read 0 there).
    boxes = np.array([[10, 12, 70, 72], [-20, -15, 40, 45], [90, 60, 150, 120], [30, 5, 31, 6]])
    got = sp.predict_shapes(image, boxes)
    for i, box in enumerate(boxes):
        np.testing.assert_array_equal(got[i], _dlib_loop(sp, image, box), err_msg=f"box {i}")


def test_no_boxes_and_bad_inputs(shipped):
    image = np.zeros((40, 40, 3), np.uint8)
    assert shipped.predict(image, np.zeros((0, 4), np.int64)).shape == (0, 5, 2)
    with pytest.raises(ValueError, match="uint8"):
        shipped.predict(image.astype(np.float32), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        shipped.predict(image, np.zeros((4,)))


def test_similarity_matrices_match_umeyama():
    from realtime.face.align import similarity_transform

    rng = np.random.default_rng(0)
    src = rng.normal(size=(5, 2))
    dst = rng.normal(size=(3, 5, 2))
    dst[1] = src[:, ::-1]  # a mirrored copy: the best rotation is still a rotation (no reflection)
    got = similarity_matrices(src, dst)
    for i in range(3):
        np.testing.assert_allclose(got[i], similarity_transform(src, dst[i])[:, :2], atol=1e-12)


# --- bad files ---------------------------------------------------------------------------------------------------

def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def small_arrays():
    rng = np.random.default_rng(1)
    sp = _random_predictor(rng)
    return {"format": np.int64(1), "initial_shape": sp.initial_shape, "split_thresh": sp.split_thresh,
            "split_idx": np.stack([sp.idx1, sp.idx2], -1), "leaf_values": sp.leaf_values,
            "anchor_idx": sp.anchor_idx, "deltas": sp.deltas}


def test_a_written_file_loads(tmp_path, small_arrays):
    np.savez(tmp_path / "ok.npz", **small_arrays)
    assert load_shape_predictor(tmp_path / "ok.npz").num_cascades == 3


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(format=np.int64(2)), "format"),
    (lambda a: a.pop("deltas"), "missing deltas"),
    (lambda a: a.update(anchor_idx=a["anchor_idx"] + 5), "index range"),
    (lambda a: a.update(split_idx=a["split_idx"][:, :, :2]), "shape"),
])
def test_bad_arrays_raise_model_error(tmp_path, small_arrays, change, message):
    arrays = dict(small_arrays)
    change(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelError, match=message):
        load_shape_predictor(tmp_path / "bad.npz")


def test_truncated_missing_and_pickled_files_raise_model_error(tmp_path, small_arrays):
    np.savez(tmp_path / "ok.npz", **small_arrays)
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="cannot read"):
        load_shape_predictor(tmp_path / "cut.npz")
    with pytest.raises(ModelError, match="cannot read"):
        load_shape_predictor(tmp_path / "absent.npz")
    arrays = dict(small_arrays, deltas=np.array([{"x": 1}], dtype=object))
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(ModelError):
        load_shape_predictor(tmp_path / "pickled.npz")
    assert zipfile.is_zipfile(tmp_path / "ok.npz")
