"""Training smoke tests on a generated synthetic data set (coloured rectangles on noise)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from models.datasets import make_synthetic_dataset  # noqa: E402
from models.evaluate import evaluate_detector  # noqa: E402
from models.train.detector import train_detector  # noqa: E402
from models.yolo import load_checkpoint  # noqa: E402
from realtime.errors import ConfigError  # noqa: E402


def test_one_step_training_writes_checkpoint_plot_and_history(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", num_train=4, num_val=2, size=(128, 96), seed=0)
    result = train_detector(data, tmp_path / "run", epochs=1, img_size=64, batch_size=2, variant="v2",
                            anchors_per_scale=2, width=8, max_steps_per_epoch=1, threads=1, progress=False)
    assert result["checkpoint"].is_file() and result["last"].is_file()
    assert result["plot"].stat().st_size > 1000 and result["plot"].suffix == ".png"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and history[0]["loss"] > 0 and set(history[0]["ap"]) == {"red", "green", "blue"}
    raw = torch.load(result["checkpoint"], weights_only=True)  # state dict + plain types only
    assert set(raw) >= {"model", "config", "anchors", "classes"} and raw["classes"] == ["red", "green", "blue"]
    model, _ = load_checkpoint(result["checkpoint"])
    assert model.config.strides == (32,) and len(model.config.anchors[0]) == 2
    report = evaluate_detector(result["checkpoint"], data)
    assert set(report["ap"]) == {"red", "green", "blue"} and report["images"] == 2
    with pytest.raises(ConfigError, match="variant"):
        train_detector(data, tmp_path / "run", variant="v9")


@pytest.mark.slow
def test_training_learns_synthetic_rectangles(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", num_train=128, num_val=24, size=(192, 144), seed=1)
    result = train_detector(data, tmp_path / "run", epochs=30, img_size=128, batch_size=8, variant="v3",
                            width=8, threads=2, progress=False, seed=0, lr=3e-3)
    best = result["best_map50"]
    assert best > 0.5, f"validation mAP@0.5 only {best:.3f} after training on easy synthetic data"
    report = evaluate_detector(result["checkpoint"], data)
    assert report["map50"] > 0.4  # source pixels, 192x144 frames
