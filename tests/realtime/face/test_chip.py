"""dlib's chip geometry: get_face_chip_details and extract_image_chip (with its pyramid) against dlib's own chips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from realtime.config import ZOO_DIR
from realtime.face import chip as chipmod
from realtime.face.chip import (ChipDetails, dlib5_chip_template, dlib_face_chips, extract_image_chip,
                                face_chip_details, pyramid_down2)

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data" / "reference" / "dlib_shape5_reference.npz"


@pytest.fixture(scope="module")
def reference():
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE} (see tests/data/reference/README.md)")
    with np.load(REFERENCE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def our_chips(reference):
    owner, points = reference["box_image"], reference["points5"]
    out = np.zeros_like(reference["chips"])
    for k in range(len(reference["image_names"])):
        sel = owner == k
        out[sel] = dlib_face_chips(reference[f"image_{k}"], points[sel])
    return out


def test_chips_equal_dlibs_pixel_for_pixel(reference, our_chips):
    diff = np.abs(our_chips.astype(np.int16) - reference["chips"].astype(np.int16))
    assert diff.max() == 0, f"max {diff.max()}, mean {diff.mean():.4f}"


def _pyramid_levels(details: ChipDetails) -> int:
    rect, n = chipmod._rect_down(details.rect_ltrb), 0
    while chipmod._area(rect) > details.rows * details.cols:
        rect, n = chipmod._rect_down(rect), n + 1
    return n


def test_large_face_goes_through_the_pyramid_and_keeps_its_geometry():
    # The reference faces are all small enough for direct sampling (dlib's pyramid starts at a chip rectangle of
    # about 300 px), so the pyramid path is checked on a smooth synthetic image: a chip over a linear ramp must
    # show the ramp's values at the chip pixels' image positions (filtering leaves a ramp unchanged).
    h, w = 900, 1000
    xx, yy = np.meshgrid(np.arange(w), np.arange(h))
    image = np.stack([xx * 0.2, yy * 0.2, 100 + 0 * xx], -1).astype(np.uint8)
    points = dlib5_chip_template() * 4 + [200, 150]  # a chip rectangle of ~600 px: two pyramid levels
    details = face_chip_details(points)
    assert _pyramid_levels(details) == 2
    chip = extract_image_chip(image, details).astype(float)
    x0, y0 = details.rect_ltrb[:2]
    side = details.rect_ltrb[2] - x0
    expect_x = (x0 + np.arange(150) * side / 149) * 0.2
    expect_y = (y0 + np.arange(150) * side / 149) * 0.2
    # Each integer step (the ramp's uint8 values, each pyramid level's division, the chip's truncation) lowers
    # values by about 0.5 on average; a geometry error of a few pixels would move them by 0.2 per pixel.
    err_x, err_y = chip[75, 5:-5, 0] - expect_x[5:-5], chip[5:-5, 75, 1] - expect_y[5:-5]
    for err in (err_x, err_y):
        assert -2.2 <= err.mean() <= -0.5 and np.abs(err).max() <= 3.0
    assert (chip[..., 2] >= 99).all()


def test_descriptors_of_our_chips_match_dlibs(reference, our_chips):
    from realtime.face.embedder import FaceEmbedder
    from realtime.runtime import OnnxModel, RuntimeOptions

    model = ZOO_DIR / "dlib_resnet128.onnx"
    if not model.is_file():
        pytest.skip(f"{model} is absent")
    pick = np.arange(0, len(our_chips), 9)  # 8 chips: one per image or so, kept small for speed
    with FaceEmbedder(OnnxModel(model, RuntimeOptions(providers="cpu", intra_op_threads=1),
                                expected_kind="face_embedder")) as embedder:
        got = embedder.embed(np.ascontiguousarray(our_chips[pick][..., ::-1]))
    distance = np.linalg.norm(got - reference["descriptors"][pick], axis=1)
    assert distance.max() < 1e-4


def test_template_and_details_of_an_upright_face():
    template = dlib5_chip_template()
    # Placing the landmarks exactly on the template of a 150 chip gives the identity: the chip is the image.
    d = face_chip_details(template)
    assert d.angle == pytest.approx(0, abs=1e-12)
    # dlib's centered_drect around (75, 75) with side 150 spans 0.5 .. 149.5: chips sit half a pixel in.
    assert d.rect_ltrb == pytest.approx((0.5, 0.5, 149.5, 149.5), abs=1e-9)
    # Twice as large, shifted and rotated by 30 degrees: rect side doubles, angle follows.
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    d2 = face_chip_details(2 * template @ rot.T + [40, 10])
    assert d2.angle == pytest.approx(a)
    assert d2.rect_ltrb[2] - d2.rect_ltrb[0] == pytest.approx(299, abs=1e-9)


def test_identity_chip_is_a_copy_and_black_outside():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (160, 170, 3), dtype=np.uint8)
    tilted = ChipDetails((0.0, 0.0, 149.0, 149.0), 1e-300, 150, 150)  # not exactly 0: the sampling path
    np.testing.assert_array_equal(extract_image_chip(image, tilted), image[:150, :150])
    np.testing.assert_array_equal(extract_image_chip(image, ChipDetails((0.0, 0.0, 149.0, 149.0), 0.0, 150, 150)),
                                  image[:150, :150])
    shifted = extract_image_chip(image, ChipDetails((100.0, 100.0, 249.0, 249.0), 0.0, 150, 150))
    np.testing.assert_array_equal(shifted[:60, :70], image[100:, 100:])
    assert not shifted[60:].any() and not shifted[:, 70:].any()


def test_pyramid_down2_golden():
    image = np.zeros((12, 12, 1), np.uint8)
    image[4, 4] = 255  # one bright pixel: spreads with weights 6*6/256 at the output pixel centred on it
    out = pyramid_down2(image)
    assert out.shape == ((12 - 3) // 2, (12 - 3) // 2, 1)
    assert out[1, 1, 0] == 255 * 36 // 256
    assert out[0, 0, 0] == 255 * 1 // 256 and out[1, 0, 0] == 255 * 6 // 256
    assert pyramid_down2(np.zeros((8, 20, 3), np.uint8)).shape == (0, 0, 3)
    flat = np.full((30, 31, 3), 200, np.uint8)
    assert (pyramid_down2(flat) == 200).all()


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match=r"\(N, 5, 2\)"):
        dlib_face_chips(np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        face_chip_details(np.zeros((68, 2)))


# dlib 20.0.1 (PyPI dlib-bin 20.0.1.post1, which reproduces all 68 reference points and chips) on scikit-image's
# astronaut and camera photos enlarged by pixel repetition, so that its chips go through the pyramid: the box
# given to dlib's shape predictor, the points it returned, and the sha256 of dlib.get_face_chip(size=150,
# padding=0.25). Recorded numbers only; dlib is not needed to run this test.
DLIB_LARGE_FACES = [
    ("astronaut", 3, (525, 228, 795, 498), [[767, 312], [714, 315], [586, 303], [637, 310], [674, 404]],
     "bd3f37b4c9d4fadfcb78a8e3e2a8f80a364a300b9f5e62cff44d5fa408584586"),
    ("astronaut", 5, (875, 380, 1325, 830), [[1278, 522], [1190, 525], [977, 506], [1061, 518], [1123, 675]],
     "88d27000ab7e8b7e6bb7103a832d1bb3e5b6424d5b1f3e4f66774a86fe37a888"),
    ("camera", 3, (570, 387, 756, 573), [[760, 441], [736, 447], [668, 446], [696, 449], [728, 512]],
     "b45e69d65245d5f6e747af00e532092f002d543f84e5ce793237089bb9130494"),
    ("camera", 5, (950, 645, 1260, 955), [[1251, 739], [1218, 748], [1115, 746], [1159, 751], [1212, 853]],
     "060a0f08a0a868f963f0dae61532fd653b127e62a171f7401302253a42f36ef6"),
]


@pytest.mark.parametrize("photo, factor, box, points, sha", DLIB_LARGE_FACES)
def test_large_faces_match_dlib_through_the_pyramid(photo, factor, box, points, sha):
    import hashlib

    skdata = pytest.importorskip("skimage.data")
    from realtime.face.landmarks import load_shape_predictor

    image = skdata.astronaut() if photo == "astronaut" else np.stack([skdata.camera()] * 3, axis=-1)
    image = np.ascontiguousarray(np.repeat(np.repeat(image, factor, axis=0), factor, axis=1))
    predictor = load_shape_predictor(ZOO_DIR / "dlib_shape5.npz")
    np.testing.assert_array_equal(predictor.predict(image, np.array([box])), [points])
    chip = dlib_face_chips(image, np.array([points]))[0]
    assert hashlib.sha256(chip.tobytes()).hexdigest() == sha
