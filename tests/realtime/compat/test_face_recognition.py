"""realtime.compat.face_recognition against face_recognition 1.3.0's own answers, recorded on the photos of
tests/data/face_recognition (recipes/face_recognition_answers.py ran face_recognition and dlib there; these tests
need neither). Real ONNX Runtime sessions, real photos."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import realtime.compat.face_recognition as face_recognition
from realtime.errors import ConfigError, ModelError, SourceError

DATA = Path(__file__).resolve().parents[2] / "data" / "face_recognition"
ANSWERS = json.loads((DATA / "answers.json").read_text())
UNKNOWN = sorted(f for f in ANSWERS["locations"] if f.startswith("unknown/"))


def _iou(a, b) -> float:
    """IoU of two (top, right, bottom, left) boxes."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = lambda r: (r[1] - r[3]) * (r[2] - r[0])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {f: face_recognition.load_image_file(DATA / f) for f in ANSWERS["locations"]}


@pytest.fixture(scope="module")
def known(images) -> list[np.ndarray]:
    """recognize_faces_in_pictures.py: the known faces, in face_recognition's order (biden, obama)."""
    return [face_recognition.face_encodings(images[f])[0] for f in ANSWERS["compare_faces_known"]]


@pytest.mark.parametrize("file", UNKNOWN)
def test_example_compare_two_photos_gives_face_recognitions_answers(file, images, known):
    # face_recognition's recognize_faces_in_pictures.py, only the import changed.
    unknown_face_encodings = face_recognition.face_encodings(images[file])
    results = [face_recognition.compare_faces(known, encoding) for encoding in unknown_face_encodings]
    assert [[bool(m) for m in r] for r in results] == ANSWERS["compare_faces"][file]
    assert all(isinstance(r, list) for r in results)


@pytest.mark.parametrize("file", sorted(ANSWERS["locations"]))
def test_example_find_faces_finds_face_recognitions_faces(file, images):
    # face_recognition's find_faces_in_picture.py: the same faces, boxes (top, right, bottom, left) close to dlib's.
    face_locations = face_recognition.face_locations(images[file])
    expected = ANSWERS["locations"][file]
    assert len(face_locations) == len(expected)
    for box, theirs in zip(face_locations, expected):
        assert isinstance(box, tuple) and all(type(v) is int for v in box)
        top, right, bottom, left = box
        assert top < bottom and left < right
        assert _iou(box, theirs) > 0.7, (box, theirs)


@pytest.mark.parametrize("file", [f for f in sorted(ANSWERS["encodings"]) if ANSWERS["encodings"][f]])
def test_encodings_sit_close_to_face_recognitions(file, images):
    ours = face_recognition.face_encodings(images[file])
    theirs = np.array(ANSWERS["encodings"][file])
    assert len(ours) == len(theirs)
    assert isinstance(ours, list) and ours[0].shape == (128,) and ours[0].dtype == np.float64
    assert np.linalg.norm(ours[0] - theirs[0]) < 0.15
    # On dlib's own box (and its two rescaled copies, averaged) the descriptor stays close to dlib's
    on_their_box = face_recognition.face_encodings(images[file], [tuple(ANSWERS["locations"][file][0])])
    assert np.linalg.norm(on_their_box[0] - theirs[0]) < 0.08


def test_the_port_gives_dlibs_descriptor_on_dlibs_box(images):
    # one box, no rescaled copies: rtv's predictor, chip and network give dlib's descriptor (float32 network)
    from realtime.face.chip import dlib_face_chips

    models = face_recognition.models()
    image = images["known/obama.jpg"]
    top, right, bottom, left = ANSWERS["locations"]["known/obama.jpg"][0]
    points = models.landmarks(image, np.array([[left, top, right, bottom]]))
    vector = models.embedder.embed(dlib_face_chips(np.ascontiguousarray(image[..., ::-1]), points))[0]
    assert np.linalg.norm(vector - np.array(ANSWERS["encodings"]["known/obama.jpg"][0])) < 1e-3


def test_face_landmarks_small_has_face_recognitions_keys_and_large_is_refused(images):
    marks = face_recognition.face_landmarks(images["known/obama.jpg"], model="small")
    assert len(marks) == 1 and set(marks[0]) == {"nose_tip", "left_eye", "right_eye"}
    assert len(marks[0]["nose_tip"]) == 1 and len(marks[0]["left_eye"]) == 2 and len(marks[0]["right_eye"]) == 2
    (nose,) = marks[0]["nose_tip"]
    top, right, bottom, left = face_recognition.face_locations(images["known/obama.jpg"])[0]
    assert left < nose[0] < right and top < nose[1] < bottom
    # face_recognition's left_eye is on the image's left
    assert max(x for x, _ in marks[0]["left_eye"]) < min(x for x, _ in marks[0]["right_eye"])
    with pytest.raises(ModelError, match="model='small'"):
        face_recognition.face_landmarks(images["known/obama.jpg"])
    with pytest.raises(ConfigError):
        face_recognition.face_landmarks(images["known/obama.jpg"], model="tiny")


def test_no_face_gives_empty_lists(images):
    coffee = images["unknown/coffee.jpg"]
    assert face_recognition.face_locations(coffee) == []
    assert face_recognition.face_encodings(coffee) == []
    assert face_recognition.face_landmarks(coffee, model="small") == []


def test_distance_and_compare_keep_face_recognitions_types():
    a, b = np.zeros(128), np.full(128, 0.05)
    d = face_recognition.face_distance([a, b], a)
    assert isinstance(d, np.ndarray) and d.shape == (2,) and d[1] == pytest.approx(0.05 * np.sqrt(128))
    assert face_recognition.face_distance([], a).shape == (0,)
    assert face_recognition.compare_faces([a, b], a) == [True, True]
    assert face_recognition.compare_faces([a, b], a, tolerance=0.5) == [True, False]
    assert face_recognition.compare_faces([], a) == []


def test_load_image_file_modes_and_errors(tmp_path):
    path = DATA / "known" / "obama.jpg"
    rgb = face_recognition.load_image_file(path)
    grey = face_recognition.load_image_file(str(path), mode="L")
    assert rgb.shape == (480, 384, 3) and rgb.dtype == np.uint8 and grey.shape == (480, 384)
    with open(path, "rb") as handle:
        assert np.array_equal(face_recognition.load_image_file(handle), rgb)
    assert np.array_equal(face_recognition.load_image_file(io.BytesIO(path.read_bytes())), rgb)
    # RGB order: the red channel of OpenCV's BGR decode is last there, first here
    import cv2

    assert np.array_equal(rgb, cv2.imread(str(path))[..., ::-1])
    with pytest.raises(SourceError):
        face_recognition.load_image_file(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(SourceError):
        face_recognition.load_image_file(tmp_path / "bad.jpg")
    with pytest.raises(ConfigError):
        face_recognition.load_image_file(path, mode="CMYK")


def test_grey_images_and_upsample_and_cnn(images):
    grey = face_recognition.load_image_file(DATA / "known" / "obama.jpg", mode="L")
    (box,) = face_recognition.face_locations(grey)
    assert _iou(box, ANSWERS["locations"]["known/obama.jpg"][0]) > 0.7
    (cnn,) = face_recognition.face_locations(images["known/obama.jpg"], model="cnn")
    assert _iou(cnn, box) > 0.5
    batched = face_recognition.batch_face_locations([images["known/obama.jpg"], images["unknown/coffee.jpg"]])
    assert batched == [[cnn], []]
    with pytest.raises(ConfigError):
        face_recognition.face_locations(images["known/obama.jpg"], model="mmod")
    with pytest.raises(ConfigError):
        face_recognition.face_locations(images["known/obama.jpg"], number_of_times_to_upsample=-1)
    with pytest.raises(SourceError):
        face_recognition.face_locations(np.zeros((10, 10, 3), np.float32))


def test_jitters_are_repeatable_and_close(images):
    image = images["known/obama.jpg"]
    one = face_recognition.face_encodings(image)[0]
    a = face_recognition.face_encodings(image, num_jitters=3)[0]
    b = face_recognition.face_encodings(image, num_jitters=3)[0]
    assert np.array_equal(a, b)
    assert 0 < np.linalg.norm(a - one) < 0.15


def test_models_open_once_across_threads():
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(face_recognition.models())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(m) for m in seen}) == 1
