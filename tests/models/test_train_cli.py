"""rtv train embedder / export embedder / eval faces: data folders, reports, end-to-end CLI runs, error paths."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.face_folders import collect_faces, person_images, write_smoke_persons
from realtime.face.verification import verification_report
from realtime.cli.main import main
from realtime.config import ZOO_DIR
from realtime.errors import DataError
from realtime.face.align import TEMPLATE5_150
from realtime.types import FaceDetections

HAS_FACE_MODELS = (ZOO_DIR / "centerface.onnx").is_file() and (ZOO_DIR / "dlib_resnet128.onnx").is_file()
needs_models = pytest.mark.skipif(not HAS_FACE_MODELS, reason=f"face models not found in {ZOO_DIR}")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def smoke_persons(tmp_path_factory) -> Path:
    return write_smoke_persons(tmp_path_factory.mktemp("faces") / "persons", photos_per_person=3, lfw_persons=4,
                               lfw_photos=2, seed=1)


class FakeDetector:
    """Faces at fixed boxes, looked up by the image's top-left pixel value; the landmarks of each face are the
    template scaled into its box, so the aligned chip is exactly the box's content."""

    def __init__(self, boxes_by_mean: dict[int, list[list[float]]]):
        self.boxes_by_mean = boxes_by_mean

    def detect(self, image):
        boxes = np.array(self.boxes_by_mean.get(int(image[0, 0, 0]), []), np.float32).reshape(-1, 4)
        side = (boxes[:, 2] - boxes[:, 0])[:, None, None]
        landmarks = boxes[:, None, :2] + TEMPLATE5_150[None] / 150.0 * side
        return FaceDetections(boxes_xyxy=boxes, scores=np.ones(len(boxes), np.float32),
                              landmarks5=landmarks.astype(np.float32))


def test_person_images_and_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        person_images(tmp_path / "missing")
    (tmp_path / "empty" / "bob").mkdir(parents=True)
    (tmp_path / "empty" / "bob" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no person folders with images"):
        person_images(tmp_path / "empty")
    for name in ("zoe", "al"):
        (tmp_path / "d" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "d" / name / "1.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "d" / "loose.png").write_bytes(b"x")
    assert [(n, [p.name for p in ps]) for n, ps in person_images(tmp_path / "d")] == [("al", ["1.png"]),
                                                                                       ("zoe", ["1.png"])]


def test_collect_faces_keeps_the_largest_and_says_what_it_skipped(tmp_path):
    # Images are told apart by their grey level; the larger face of image 20 is painted 200, the smaller 100.
    layout = {"ann": [10, 20, 30], "ben": [40, 50]}
    boxes = {10: [[0, 0, 40, 40]], 20: [[0, 0, 20, 20], [50, 50, 110, 110]], 30: [], 40: [[10, 10, 70, 70]],
             50: [[5, 5, 65, 65]]}
    for person, levels in layout.items():
        (tmp_path / person).mkdir()
        for level in levels:
            image = np.full((120, 120, 3), level, np.uint8)
            if level == 20:
                image[0:20, 0:20] = 100
                image[0, 0] = level
                image[50:110, 50:110] = 200
            cv2.imwrite(str(tmp_path / person / f"{level}.png"), image)
    (tmp_path / "ben" / "broken.jpg").write_bytes(b"not an image")
    found = collect_faces(tmp_path, FakeDetector(boxes), TEMPLATE5_150, 150, progress=False)
    assert found.names.tolist() == ["ann", "ben"]
    assert found.labels.tolist() == [0, 0, 1, 1]
    assert [Path(s).name for s in found.sources] == ["10.png", "20.png", "40.png", "50.png"]
    assert found.chips_bgr.shape == (4, 150, 150, 3)
    assert sorted((Path(s).name, r) for s, r in found.skipped) == [("30.png", "no face found"),
                                                                   ("broken.jpg", "not a readable image")]
    assert [Path(s).name for s in found.several] == ["20.png"]
    assert abs(float(found.chips_bgr[1].mean()) - 200) < 2  # the larger face of image 20
    assert abs(float(found.chips_bgr[0].mean()) - 10) < 2


def test_verification_report_marks_unmeasurable_fars():
    genuine = np.array([0.2, 0.3, 0.5])
    impostor = np.linspace(0.4, 1.4, 50)
    report = verification_report(genuine, impostor, (1e-1, 1e-2))
    first, second = report["at_far"]
    assert first["supported"] and first["far"] == 0.1
    # 5 of 50 impostors may be accepted: the 5 smallest are 0.4..0.49 so the threshold is the 6th (~0.502)
    assert first["threshold"] == pytest.approx(impostor[5]) and first["far_measured"] == pytest.approx(0.1)
    assert first["tar"] == 1.0
    assert not second["supported"] and "50 impostor pairs" in second["reason"] and "100" in second["reason"]
    assert report["best_accuracy"] == pytest.approx(52 / 53)
    none = verification_report(np.zeros(0), impostor, (0.1,))
    assert none["at_far"][0] == {"far": 0.1, "supported": False, "reason": "no genuine pairs"}


@needs_models
def test_eval_faces_end_to_end_without_torch(smoke_persons, tmp_path):
    roc, report_json = tmp_path / "roc.png", tmp_path / "eval.json"
    code = ("import sys; from realtime.cli.main import main; "
            f"rc = main(['eval', 'faces', '--data', {str(smoke_persons)!r}, '--roc', {str(roc)!r}, "
            f"'--json', {str(report_json)!r}, '--far', '0.05', '--no-progress']); "
            "print('torch loaded:', 'torch' in sys.modules); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "torch loaded: False" in out
    assert "TAR @ FAR 0.1:" in out and "TAR @ FAR 0.05:" in out
    assert "TAR @ FAR 0.001: not measurable" in out and "best-accuracy threshold" in out
    report = json.loads(report_json.read_text())
    assert report["persons"] >= 4 and report["genuine_pairs"] > 0
    assert report["genuine_pairs"] + report["impostor_pairs"] == report["faces"] * (report["faces"] - 1) // 2
    # different photos of different people vs jittered copies of one photo: dlib separates them easily
    assert report["genuine_mean"] < 0.4 < report["impostor_mean"]
    assert roc.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, code, needle", [
    (["eval", "faces", "--data", "MISSING"], 8, "data folder not found"),
    (["eval", "faces", "--data", "D", "--far", "2"], 2, "--far"),
    (["eval", "faces", "--data", "D", "--model", "nope.onnx"], 4, "not found"),
])
def test_eval_faces_bad_input(tmp_path, capsys, monkeypatch, argv, code, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "D").mkdir()
    got, _, err = run_cli(capsys, *argv)
    assert got == code, err
    lines = [line for line in err.splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_export_help_lists_both_and_groups_exist(capsys):
    from realtime.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"train", "eval", "export"} <= set(sub.choices)
    help_text = sub.choices["export"].format_help()
    assert "faces" in help_text and "embedder" in help_text


# ---------------------------------------------------------------- commands that need torch


@pytest.fixture
def torch_mod():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(before)


def test_train_then_export_through_the_cli(torch_mod, tmp_path, capsys, monkeypatch):
    from models.dlib_resnet import DlibResNet
    from models.face_dataset import ChipData, save_chips
    from models.train.embedder import load_checkpoint, save_checkpoint
    from realtime.runtime import OnnxModel, RuntimeOptions

    monkeypatch.chdir(tmp_path)
    torch_mod.manual_seed(0)
    save_checkpoint(tmp_path / "base.pt", DlibResNet(), epoch=0, base="random init")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 2)
    chips = np.clip(rng.normal(128, 40, (5, 1, 150, 150, 3)) + rng.normal(0, 5, (5, 2, 150, 150, 3)), 0, 255)
    save_chips(tmp_path / "c.npz", ChipData(chips.reshape(10, 150, 150, 3).astype(np.uint8), labels,
                                            np.array([f"p{i}" for i in range(5)]),
                                            np.array([f"s{i}" for i in range(10)])))
    code, out, err = run_cli(capsys, "train", "embedder", "--data", "c.npz", "--out", "ft.pt", "--base", "base.pt",
                             "--epochs", "1", "--steps", "1", "--p", "2", "--k", "2", "--val-fraction", "0.4",
                             "--mining", "hard", "--no-progress", "--threads", "1")
    assert code == 0, err
    assert "wrote ft.pt" in out and (tmp_path / "ft.png").is_file() and (tmp_path / "ft.last.pt").is_file()
    assert "held-out persons" in err
    _, ckpt = load_checkpoint(tmp_path / "ft.last.pt")
    assert ckpt["config"]["mining"] == "hard" and ckpt["config"]["alpha"] == 0.2

    code, out, err = run_cli(capsys, "export", "embedder", "ft.last.pt", "--out", "ft.onnx", "--manifest",
                             "--match-threshold", "0.5")
    assert code == 0, err
    assert "PyTorch vs ONNX Runtime max distance" in out and "re-enrol" in err
    model, _ = load_checkpoint(tmp_path / "ft.last.pt")
    with OnnxModel(tmp_path / "ft.onnx", RuntimeOptions(providers="cpu"), expected_kind="face_embedder") as onnx_model:
        contract = onnx_model.contract
        assert contract.name == "dlib_resnet_v1_finetuned" and contract.extra["match_threshold"] == 0.5
        assert "fine-tuned" in contract.extra["source"] and "epoch 1" in contract.extra["source"]
        np.testing.assert_allclose(contract.extra["template5_150"], TEMPLATE5_150, atol=1e-3)
        x = rng.normal(0, 0.3, (2, 3, 150, 150)).astype(np.float32)
        with torch_mod.no_grad():
            expected = model(torch_mod.from_numpy(x)).numpy()
        np.testing.assert_allclose(onnx_model.run(x)[0], expected, atol=1e-4)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["ft.onnx"]["match_threshold"] == 0.5 and len(manifest["ft.onnx"]["sha256"]) == 64


@pytest.mark.parametrize("argv, code, needle", [
    (["train", "embedder", "--data", "c.npz", "--out", "ft.txt"], 2, ".pt checkpoint"),
    (["train", "embedder", "--data", "MISSING", "--out", "ft.pt"], 8, "--data must be"),
    (["train", "embedder", "--data", "bad.npz", "--out", "ft.pt"], 8, "not a readable chip file"),
    (["export", "embedder", "bad.pt", "--out", "x.onnx"], 4, "not a readable PyTorch checkpoint"),
    (["export", "embedder", "missing.pt", "--out", "x.onnx"], 4, "not found"),
])
def test_train_and_export_bad_input(torch_mod, tmp_path, capsys, monkeypatch, argv, code, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    got, _, err = run_cli(capsys, *argv)
    assert got == code, err
    lines = [line for line in err.splitlines() if line.startswith("rtv: error")]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
@needs_models
def test_fine_tune_the_released_weights_on_the_smoke_persons(torch_mod, tmp_path, capsys, monkeypatch):
    """The whole loop on real weights and real (if few) faces: prepare chips, train, export, evaluate."""
    from models.sources import DLIB_RESNET, locate
    from realtime.errors import ExportError

    try:
        locate(DLIB_RESNET, download=False)
    except ExportError as exc:
        pytest.skip(f"dlib .dat not available locally: {exc}")
    monkeypatch.chdir(tmp_path)
    persons = write_smoke_persons(tmp_path / "persons", photos_per_person=6, lfw_persons=12, lfw_photos=4)
    code, out, err = run_cli(capsys, "train", "embedder", "--data", str(persons), "--out", "ft.pt", "--epochs", "2",
                             "--p", "4", "--k", "3", "--steps", "3", "--no-progress", "--threads", "1")
    assert code == 0, err
    assert "epoch 0 (before fine-tuning): TAR@FAR=0.1" in err and (tmp_path / "ft.chips.npz").is_file()
    history = json.loads((tmp_path / "ft.history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2] and history[0]["val"]["tar"]["0.1"] is not None
    code, out, err = run_cli(capsys, "export", "embedder", "ft.last.pt", "--out", "ft.onnx")
    assert code == 0, err
    code, out, err = run_cli(capsys, "eval", "faces", "--data", str(persons), "--model", "ft.onnx", "--no-progress",
                             "--roc", "roc.png")
    assert code == 0, err
    assert "dlib_resnet_v1_finetuned" in out and "TAR @ FAR 0.01:" in out and (tmp_path / "roc.png").is_file()
