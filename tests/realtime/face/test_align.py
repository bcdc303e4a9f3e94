"""Similarity transform (Umeyama) and face chip alignment."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.face.align import TEMPLATE5_150, align_faces, similarity_transform

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data" / "reference" / "dlib_face_reference.npz"


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx],
                     [scale * np.sin(a), scale * np.cos(a), ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize("seed", range(8))
def test_recovers_known_similarity(seed):
    rng = np.random.default_rng(seed)
    truth = _similarity(rng.uniform(-170, 170), rng.uniform(0.2, 5.0), *rng.uniform(-300, 300, 2))
    src = rng.uniform(0, 200, (5, 2))
    got = similarity_transform(src, _apply(truth, src))
    assert got.dtype == np.float64 and got.shape == (2, 3)
    np.testing.assert_allclose(got, truth, atol=1e-8)


def test_least_squares_with_noise_and_inverse():
    rng = np.random.default_rng(42)
    truth = _similarity(20, 1.7, 15, -4)
    src = TEMPLATE5_150.astype(np.float64)
    dst = _apply(truth, src) + rng.normal(0, 0.5, (5, 2))
    got = similarity_transform(src, dst)
    np.testing.assert_allclose(got, truth, atol=0.05 * 1.7 + 1.0)
    # The fitted map must be at least as good as the true one (it is the least-squares optimum).
    assert np.square(_apply(got, src) - dst).sum() <= np.square(_apply(truth, src) - dst).sum() + 1e-9
    back = similarity_transform(dst, src)
    composed = back[:, :2] @ got[:, :2]
    np.testing.assert_allclose(composed, np.eye(2), atol=0.02)


def test_no_reflection():
    src = TEMPLATE5_150.astype(np.float64)
    mirrored = src.copy()
    mirrored[:, 0] = -mirrored[:, 0]
    got = similarity_transform(src, mirrored)
    assert np.linalg.det(got[:, :2]) > 0


def test_degenerate_and_bad_shapes():
    same = np.ones((5, 2))
    got = similarity_transform(same, TEMPLATE5_150)
    np.testing.assert_allclose(got[:, :2], np.eye(2))
    np.testing.assert_allclose(got[:, 2], TEMPLATE5_150.mean(axis=0) - 1, atol=1e-5)
    with pytest.raises(ValueError, match="K >= 2"):
        similarity_transform(np.ones((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        align_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2), np.float32))


def test_align_empty_and_sizes():
    frame = np.full((60, 80, 3), 7, np.uint8)
    assert align_faces(frame, np.zeros((0, 5, 2), np.float32)).shape == (0, 150, 150, 3)
    landmarks = (TEMPLATE5_150 * 0.3)[None].astype(np.float32)
    chips = align_faces(frame, np.repeat(landmarks, 2, axis=0), TEMPLATE5_150, size=112)
    assert chips.shape == (2, 112, 112, 3) and chips.dtype == np.uint8


def test_align_synthetic_dots_land_on_template():
    """Five bright dots at a rotated, scaled, shifted copy of the template land back on the template."""
    truth = _similarity(-25, 2.2, 180, 40)
    landmarks = _apply(truth, TEMPLATE5_150.astype(np.float64))
    frame = np.zeros((480, 640, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(frame, (int(round(x * 16)), int(round(y * 16))), 5 * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    chip = align_faces(frame, landmarks[None].astype(np.float32))[0]
    gray = chip[..., 0].astype(np.float64)
    for tx, ty in TEMPLATE5_150:
        x0, y0 = int(tx) - 6, int(ty) - 6
        patch = gray[y0:y0 + 13, x0:x0 + 13]
        ys, xs = np.mgrid[y0:y0 + 13, x0:x0 + 13]
        cx, cy = (patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()
        assert abs(cx - tx) < 0.5 and abs(cy - ty) < 0.5


def _five(landmarks68: np.ndarray) -> np.ndarray:
    return np.stack([landmarks68[36:42].mean(0), landmarks68[42:48].mean(0), landmarks68[30],
                     landmarks68[48], landmarks68[54]]).astype(np.float32)


def test_reference_chip_warped_by_known_transform_aligns_back():
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE}")
    with np.load(REFERENCE, allow_pickle=False) as ref:
        chip_bgr = np.ascontiguousarray(ref["chips"][0][..., ::-1])
        landmarks = _five(ref["landmarks68"][0])
    # Place the chip, rotated by 12 degrees and enlarged 1.8x, into a bigger frame; move its landmarks with it.
    truth = _similarity(12, 1.8, 120, 60)
    frame = cv2.warpAffine(chip_bgr, truth, (520, 420), flags=cv2.INTER_LINEAR)
    moved = _apply(truth, landmarks.astype(np.float64)).astype(np.float32)

    direct = align_faces(chip_bgr, landmarks[None])[0]
    via_frame = align_faces(frame, moved[None])[0]
    # The landmarks land where they land from the original chip (same fit), and near the template.
    m_direct = similarity_transform(landmarks, TEMPLATE5_150)
    m_frame = similarity_transform(moved, TEMPLATE5_150)
    np.testing.assert_allclose(_apply(m_frame, moved), _apply(m_direct, landmarks), atol=1e-3)
    # Near the template: it holds where CenterFace's points fall in dlib's chips; on this smiling face dlib's
    # 68-point mouth corners sit about 6 px above and outside those.
    assert np.abs(_apply(m_frame, moved) - TEMPLATE5_150).max() < 8.0
    # The pixels agree too (two bilinear resamplings against one), away from the black border.
    inner = (slice(10, 140), slice(10, 140))
    diff = np.abs(direct[inner].astype(np.int16) - via_frame[inner].astype(np.int16))
    assert diff.mean() < 1.5
