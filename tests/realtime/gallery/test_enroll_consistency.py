"""One enrolment, one person: images that disagree (pairwise distance above the match threshold) are refused and
the odd image is named, unless --force; so are new images that match none of the faces already stored."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.cli.main import main
from realtime.errors import EnrollmentError
from realtime.face.enroll import FaceSample, check_consistent
from realtime.gallery.store import Gallery


def _sample(name, vector):
    return FaceSample(name, np.asarray(vector, np.float32), np.zeros(4, np.float32), 1.0, 100.0)


def test_the_odd_image_is_named():
    e = np.eye(3, dtype=np.float32)
    same = [_sample(f"a{i}.png", e[0] + 0.01 * i) for i in range(3)]
    check_consistent(same, 0.6)  # one person: fine
    with pytest.raises(EnrollmentError, match=r"^b\.png does not show the same person .* 3 of 3"):
        check_consistent([*same, _sample("b.png", e[1])], 0.6, name="alice")
    with pytest.raises(EnrollmentError, match=r"a0\.png and b\.png are 1\.414 apart"):
        check_consistent([same[0], _sample("b.png", e[1])], 0.6)
    with pytest.raises(EnrollmentError, match=r"c\.png does not match the 2 face\(s\) already enrolled"):
        check_consistent([_sample("c.png", e[2])], 0.6, stored=e[:1].repeat(2, axis=0))


@pytest.fixture
def photos(tmp_path, monkeypatch):
    import cv2

    data = pytest.importorskip("skimage.data")
    monkeypatch.chdir(tmp_path)
    astronaut = np.ascontiguousarray(data.astronaut()[..., ::-1])
    files = {"alice.png": astronaut, "alice_flipped.png": np.ascontiguousarray(astronaut[:, ::-1]),
             "bob.png": np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))}
    for name, image in files.items():
        cv2.imwrite(str(tmp_path / name), image)
    return tmp_path


def _enroll(capsys, gallery, *argv):
    code = main(["enroll", *argv, "--set", f"faces.gallery={gallery}"])
    return code, capsys.readouterr().err


def test_cli_refuses_an_enrolment_of_two_people_and_names_the_odd_image(photos, capsys):
    gallery = photos / "gallery.db"
    code, err = _enroll(capsys, gallery, "alice", "alice.png", "alice_flipped.png", "bob.png")
    assert code == 7 and err.startswith("rtv: error: bob.png does not show the same person") and "--force" in err
    assert len(err.strip().splitlines()) == 1 and not gallery.exists()  # nothing stored, no gallery made
    code, err = _enroll(capsys, gallery, "alice", "alice.png", "bob.png")
    assert code == 7 and "alice.png and bob.png" in err

    assert _enroll(capsys, gallery, "alice", "alice.png", "alice_flipped.png")[0] == 0
    code, err = _enroll(capsys, gallery, "alice", "bob.png")  # adding Bob's face to Alice
    assert code == 7 and "already enrolled for 'alice'" in err
    assert _enroll(capsys, gallery, "alice", "bob.png", "--replace")[0] == 0  # starting over is allowed
    assert _enroll(capsys, gallery, "carol", "alice.png", "bob.png", "--force")[0] == 0
    with Gallery.open(gallery, create=False) as g:
        assert {p.name: p.n_embeddings for p in g.persons()} == {"alice": 1, "carol": 2}


def test_cli_refuses_a_bad_name_before_running_any_model(photos, capsys):
    code, err = _enroll(capsys, photos / "gallery.db", "--", "-rf", "alice.png")
    assert code == 5 and "starts with '-'" in err and not (photos / "gallery.db").exists()
