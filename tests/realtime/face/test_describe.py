"""``rtv embed`` and realtime.face.describe: faces of still images as JSON, with dlib's points and descriptors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.cli.main import main
from realtime.config import ZOO_DIR
from realtime.errors import SourceError
from realtime.face.describe import embed_images

REFERENCE = Path(__file__).resolve().parents[3] / "tests" / "data" / "reference" / "dlib_shape5_reference.npz"
MODELS = [ZOO_DIR / n for n in ("centerface.onnx", "dlib_resnet128.onnx", "dlib_shape5.npz")]
pytestmark = pytest.mark.skipif(not all(p.is_file() for p in MODELS), reason="shipped face models absent")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The reference's astronaut photo (dlib's pixels) and a grey picture without a face, as PNG files."""
    if not REFERENCE.is_file():
        pytest.skip(f"dlib reference data not found at {REFERENCE}")
    folder = tmp_path_factory.mktemp("photos")
    with np.load(REFERENCE, allow_pickle=False) as ref:
        rgb = ref["image_0"]
        hog = int(np.nonzero((ref["box_image"] == 0) & (ref["box_kind"] == "hog"))[0][0])
        dlib = {"points": ref["points5"][hog], "descriptor": ref["descriptors"][hog]}
    cv2.imwrite(str(folder / "astronaut.png"), rgb[..., ::-1])
    cv2.imwrite(str(folder / "grey.png"), np.full((120, 160, 3), 128, np.uint8))
    return folder / "astronaut.png", folder / "grey.png", dlib


def test_api_gives_boxes_points_and_a_descriptor_close_to_dlibs(photos):
    face_png, grey_png, dlib = photos
    result = embed_images([face_png, grey_png])
    assert [r["image"] for r in result] == [str(face_png), str(grey_png)]
    assert result[1]["faces"] == []
    (face,) = result[0]["faces"]
    assert set(face) == {"box", "score", "landmarks", "landmarks_dlib", "descriptor"}
    assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and len(face["descriptor"]) == 128
    # rtv's dlib points come from a CenterFace-derived box, not dlib's detector box: within a pixel or two.
    assert np.abs(np.array(face["landmarks_dlib"]) - dlib["points"]).max() <= 2
    assert np.linalg.norm(np.array(face["descriptor"]) - dlib["descriptor"]) < 0.1


def test_cli_prints_one_json_list(photos, capsys):
    face_png, grey_png, _ = photos
    assert main(["embed", str(face_png), str(grey_png), "--json"]) == 12  # the grey picture shows no face
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 2 and len(out[0]["faces"]) == 1 and out[1]["faces"] == []
    assert all(isinstance(v, float) for v in out[0]["faces"][0]["descriptor"])


def test_unreadable_image_is_one_line_and_nonzero_exit(photos, tmp_path, capsys):
    face_png, _, _ = photos
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    assert main(["embed", str(face_png), str(bad), "--json"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "not a readable image" in lines[0]
    assert main(["embed", str(tmp_path / "absent.jpg")]) == 3
    with pytest.raises(SourceError, match="not found"):
        embed_images([tmp_path / "absent.jpg"])


def test_template_alignment_has_no_dlib_points(photos):
    from realtime.config import Config, FacesConfig

    face_png, _, _ = photos
    config = Config(faces=FacesConfig(alignment="template5"))
    (face,) = embed_images([face_png], config)[0]["faces"]
    assert face["landmarks_dlib"] is None and len(face["descriptor"]) == 128
