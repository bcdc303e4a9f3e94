"""``identify``, ``verify``, ``embed`` and ``enroll`` take files, folders and globs; "no face" has one exit code (12),
several faces without a choice another (13); a refused first enrolment makes no gallery (exit 7)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from realtime.cli.main import main
from realtime.config import ZOO_DIR

pytestmark = pytest.mark.skipif(
    not all((ZOO_DIR / n).is_file() for n in ("centerface.onnx", "dlib_resnet128.onnx", "dlib_shape5.npz")),
    reason="shipped face models absent")


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("faces")
    astronaut = np.ascontiguousarray(data.astronaut()[..., ::-1])
    (root / "people").mkdir()
    cv2.imwrite(str(root / "people" / "a_astronaut.png"), astronaut)
    cv2.imwrite(str(root / "people" / "b_small.jpg"), cv2.resize(astronaut, (300, 300)))
    cv2.imwrite(str(root / "grey.png"), np.full((120, 160, 3), 128, np.uint8))
    cv2.imwrite(str(root / "two.png"), np.hstack([astronaut[:, :256], astronaut]))  # a small and a large face
    cv2.imwrite(str(root / "mirror.png"), np.ascontiguousarray(astronaut[:, ::-1]))
    return root


@pytest.fixture(scope="module")
def gallery(folder):
    path = folder / "g.sqlite"
    assert main(["enroll", "eileen", str(folder / "mirror.png"), "--set", f"faces.gallery={path}"]) == 0
    return f"faces.gallery={path}"


def test_identify_takes_a_folder_and_a_glob(capsys, folder, gallery):
    code, out, err = run(capsys, "identify", str(folder / "people"), "--set", gallery)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["image"].rsplit("/", 1)[1] for line in lines] == ["a_astronaut.png", "b_small.jpg"]
    assert all([f["identity"] for f in line["faces"]] == ["eileen"] for line in lines)
    code, out, err = run(capsys, "identify", str(folder / "people" / "*.jpg"), "--set", gallery)
    assert code == 0 and len(out.splitlines()) == 1, err
    assert "image not found" not in err


def test_no_face_is_exit_11_for_identify_verify_and_embed(capsys, folder, gallery):
    grey, face = str(folder / "grey.png"), str(folder / "people" / "a_astronaut.png")
    code, out, err = run(capsys, "identify", face, grey, "--set", gallery)
    assert code == 12 and "no face found in" in err and grey in err
    assert [len(json.loads(line)["faces"]) for line in out.splitlines()] == [1, 0]  # every photo still reported
    code, out, err = run(capsys, "verify", grey, face)
    assert code == 12 and "no face" in err and out == ""
    code, out, err = run(capsys, "embed", face, grey, "--json")
    assert code == 12 and [len(item["faces"]) for item in json.loads(out)] == [1, 0]


def test_verify_refuses_several_faces_unless_told_which(capsys, folder):
    two, face = str(folder / "two.png"), str(folder / "people" / "a_astronaut.png")
    code, out, err = run(capsys, "verify", face, two)
    assert code == 13 and "2 faces found" in err and "--largest" not in out
    code, out, err = run(capsys, "verify", face, two, "--largest")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["same_person"] is True and answer["faces"][1]["chosen"] == "largest"
    assert f"{two}: used the largest face" in err
    code, out, err = run(capsys, "verify", face, two, "--box2", "0,0,256,512")
    assert code == 0, err
    assert json.loads(out)["faces"][1]["chosen"] == "box" and json.loads(out)["faces"][1]["box"][0] < 256


def test_verify_compares_the_first_photo_with_each_of_a_folder(capsys, folder):
    code, out, err = run(capsys, "verify", str(folder / "mirror.png"), str(folder / "people"))
    assert code == 0, err
    assert [json.loads(line)["same_person"] for line in out.splitlines()] == [True, True]


def test_a_refused_first_enrolment_makes_no_gallery(capsys, folder, tmp_path):
    path = tmp_path / "new.sqlite"
    code, _, err = run(capsys, "enroll", "nobody", str(folder / "grey.png"), "--set", f"faces.gallery={path}")
    assert code == 7 and "nothing was enrolled" in err and "no face" in err
    assert not path.exists()
    code, out, err = run(capsys, "enroll", "eileen", str(folder / "people"), "--set", f"faces.gallery={path}")
    assert code == 0 and "enrolled 2 face(s)" in out, err
