"""The default detector: the recipe's data-building steps on a tiny budget, and the shipped model itself."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from recipes import default_detector as recipe
from recipes.default_detector import LabelledImage, RecipeConfig, SourceImage

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "realtime" / "zoo"
SHIPPED = ZOO / "yolo_faces_rtv.onnx"


def astronaut_bgr() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])


@pytest.fixture(scope="module")
def teacher():
    t = recipe.make_teacher(RecipeConfig())
    yield t
    t.close()


def fake(group: str, faces: int, name: str | None = None) -> LabelledImage:
    boxes = np.tile(np.array([[10, 10, 50, 60]], np.float32), (faces, 1))
    return LabelledImage(SourceImage(Path(name or f"/x/{group}.jpg"), group, "test"), boxes,
                         np.full(faces, 0.9, np.float32), (100, 100))


def test_split_keeps_groups_whole_and_is_deterministic():
    items = [fake(f"photo{i}", i % 3) for i in range(40)] + [fake("video#0", 1, f"/x/v{k}.jpg") for k in range(5)]
    config = RecipeConfig(heldout_fraction=0.25, seed=3)
    a = recipe.split_sources(items, config)
    b = recipe.split_sources(list(reversed(items)), config)
    train_groups = {x.source.group for x in a["train"]}
    test_groups = {x.source.group for x in a["test"]}
    assert not train_groups & test_groups
    assert len(a["train"]) + len(a["test"]) == len(items)
    assert test_groups == {x.source.group for x in b["test"]}  # order of the input does not matter
    face_groups = {x.source.group for x in items if x.has_face}
    assert 0 < len(test_groups & face_groups) < len(face_groups)
    video = [x for x in items if x.source.group == "video#0"]
    assert all(x in a["test"] for x in video) or all(x in a["train"] for x in video)
    other = recipe.split_sources(items, RecipeConfig(heldout_fraction=0.25, seed=4))
    assert {x.source.group for x in other["test"]} != test_groups  # the seed chooses


def test_doxygen_diagrams_are_not_photos():
    assert recipe._is_diagram(Path("html/d0a/classcv_1_1Tracker.png"))
    assert recipe._is_diagram(Path("x/structcv_1_1Foo.png"))
    assert not recipe._is_diagram(Path("html/messipyr.jpg"))
    assert not recipe._is_diagram(Path("data/messi5.jpg"))


def test_bundled_sources_and_teacher_labels(tmp_path, teacher):
    pytest.importorskip("skimage.data")
    items = recipe.bundled_sources(tmp_path, every=8)
    names = {i.path.name for i in items}
    assert {"astronaut.png", "coffee.png", "camera.png"} <= names
    assert all(i.path.is_file() for i in items)
    chosen = [i for i in items if i.path.name in ("astronaut.png", "coffee.png")]
    labelled = {x.source.path.name: x for x in recipe.label_sources(chosen, teacher, RecipeConfig(),
                                                                     progress=False)}
    assert len(labelled["astronaut.png"].boxes_xyxy) == 1  # one face
    x1, y1, x2, y2 = labelled["astronaut.png"].boxes_xyxy[0]
    assert 150 < (x1 + x2) / 2 < 280 and 50 < (y1 + y2) / 2 < 170
    assert not labelled["coffee.png"].has_face


def test_composites_are_labelled_by_the_teacher_and_written_as_yolo(tmp_path, teacher):
    image = astronaut_bgr()
    path = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(path), image)
    config = RecipeConfig(composite_size_wh=(320, 240))
    [face] = recipe.label_sources([SourceImage(path, "astro", "test")], teacher, config, progress=False)
    crops = recipe.face_crops([face])
    assert len(crops) == 1
    crop = crops[0]
    fx1, fy1, fx2, fy2 = crop.face_xyxy
    assert 0 <= fx1 < fx2 <= crop.image.shape[1] and 0 <= fy1 < fy2 <= crop.image.shape[0]
    rng = np.random.default_rng(0)
    backgrounds = [np.full((200, 300, 3), 90, np.uint8)]
    composite, pasted = recipe.composite_image(crops, backgrounds, rng, (320, 240), max_faces=3)
    assert composite.shape == (240, 320, 3) and composite.dtype == np.uint8
    assert pasted.shape[1] == 4 and np.all(pasted[:, 2] > pasted[:, 0])
    kept, stats = recipe.make_composites(tmp_path / "comp", crops, backgrounds, 6, teacher, config, seed=1,
                                         progress=False)
    assert stats["made"] == 6 and len(kept) == 6 - stats["dropped_teacher_missed"]
    assert stats["teacher_boxes"] == sum(len(k.boxes_xyxy) for k in kept)
    assert any(k.has_face for k in kept)
    data_yaml = recipe.write_dataset(tmp_path / "data", {"train": kept + [face], "val": kept[:2], "test": [face]})
    from models.datasets import YoloDataset, load_data_yaml

    spec = load_data_yaml(data_yaml)
    assert spec.names == ("face",) and "test" in spec.splits
    test_set = YoloDataset.from_spec(spec, "test", img_size=320)
    _, boxes = test_set.load(0)
    np.testing.assert_allclose(boxes[0, 1:5], face.boxes_xyxy[0], atol=0.01)


def test_free_spot_avoids_covering_a_placed_patch():
    rng = np.random.default_rng(0)
    placed = [(0, 0, 100, 100)]
    for _ in range(20):
        spot = recipe._free_spot(placed, 50, 50, 200, 200, rng)
        if spot is not None:
            x0, y0 = spot
            inter = max(0, min(100, x0 + 50) - x0) * max(0, min(100, y0 + 50) - y0)
            assert inter <= 0.1 * 2500
    assert recipe._free_spot([(0, 0, 200, 200)], 50, 50, 200, 200, rng) is None


# --- the shipped model ----------------------------------------------------------------------------------------


def test_shipped_model_is_small_and_in_the_manifest():
    assert SHIPPED.is_file(), "realtime/zoo/yolo_faces_rtv.onnx must ship (python -m recipes.default_detector)"
    assert SHIPPED.stat().st_size < 5 * 1024 * 1024
    from realtime.runtime import file_sha256

    entry = json.loads((ZOO / "MANIFEST.json").read_text())["yolo_faces_rtv.onnx"]
    assert entry["sha256"] == file_sha256(SHIPPED)
    assert entry["licence"] == "MIT" and "CenterFace" in entry["teacher"]
    assert entry["heldout_images"] > 0 and 0.0 <= entry["heldout_ap50"] <= 1.0


def test_shipped_model_finds_the_astronaut_face_like_the_teacher(teacher):
    from realtime.boxes import box_iou
    from realtime.runtime import OnnxModel, RuntimeOptions
    from realtime.detect.yolo import YoloDetector

    image = astronaut_bgr()
    model = OnnxModel(SHIPPED, RuntimeOptions(providers="cpu"), expected_kind="yolo")
    try:
        assert model.contract.kind == "yolo" and model.contract.classes == ("face",)
        assert model.contract.input.working_size_wh() == (320, 320)
        detector = YoloDetector(model, score_threshold=0.3)
        found = detector.detect(image)
    finally:
        model.close()
    reference = teacher.detect(image).boxes_xyxy
    assert len(reference) == 1 and len(found.boxes_xyxy) >= 1
    best = int(np.argmax(found.scores))
    assert box_iou(found.boxes_xyxy[best:best + 1], reference)[0, 0] > 0.5


def test_near_duplicates_catches_copies_of_a_photo_but_not_other_photos(tmp_path, teacher):
    skimage_data = pytest.importorskip("skimage.data")
    astronaut = astronaut_bgr()
    variants = {
        "astronaut.jpg": astronaut,
        "astronaut_blurred_small.jpg": cv2.resize(cv2.GaussianBlur(astronaut, (0, 0), 2), (256, 256)),
        "astronaut_face_crop.jpg": np.ascontiguousarray(astronaut[0:300, 80:380]),
        "coffee.jpg": np.ascontiguousarray(skimage_data.coffee()[..., ::-1]),
        "grace.jpg": cv2.imread(str(Path(pytest.importorskip("matplotlib").get_data_path()) / "sample_data" /
                                    "grace_hopper.jpg")),
    }
    items = []
    for name, image in variants.items():
        cv2.imwrite(str(tmp_path / name), image)
        items.append(SourceImage(tmp_path / name, name, "test"))
    labelled = {x.source.path.name: x for x in recipe.label_sources(items, teacher, progress=False)}
    reference = [labelled["astronaut.jpg"]]
    names = ["astronaut_blurred_small.jpg", "astronaut_face_crop.jpg", "coffee.jpg", "grace.jpg"]
    flags = recipe.near_duplicates([labelled[n] for n in names], reference)
    assert flags.tolist() == [True, True, False, False]


def test_lfw_heldout_split_is_teacher_labelled_on_heldout_backgrounds(tmp_path, teacher):
    pytest.importorskip("skimage.data")
    chips = recipe.lfw_face_chips()
    assert len(chips) == 100 and chips[0].shape == (25, 25) and chips[0].dtype == np.uint8
    (tmp_path / "images" / "test").mkdir(parents=True)
    (tmp_path / "labels" / "test").mkdir(parents=True)
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    cv2.imwrite(str(tmp_path / "images" / "test" / "bg.jpg"), background)
    (tmp_path / "labels" / "test" / "bg.txt").write_text("")
    stats = recipe.make_lfw_heldout(tmp_path, teacher, RecipeConfig(composite_size_wh=(320, 240)), count=4,
                                    progress=False)
    assert stats["made"] == 4 and stats["kept"] == 4 - stats["dropped_teacher_missed"]
    written = sorted((tmp_path / "images" / "test_lfw").glob("*.jpg"))
    assert len(written) == stats["kept"]
    lines = sum(len((tmp_path / "labels" / "test_lfw" / f"{p.stem}.txt").read_text().splitlines())
                for p in written)
    assert lines == stats["teacher_boxes"]
