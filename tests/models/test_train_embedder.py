"""Embedder fine-tuning: freezing, checkpoints, validation figures, a few optimisation steps, a tiny full run."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.dlib_resnet import DlibResNet  # noqa: E402
from models.face_dataset import ChipData, chips_to_input  # noqa: E402
from models.train.embedder import (embed_chips, freeze_trunk, load_checkpoint, save_checkpoint,  # noqa: E402
                                   selection_score, train_embedder, verification_figures)
from models.triplet import batch_triplet_loss  # noqa: E402
from realtime.errors import ConfigError, ModelError  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo_chips(persons: int, per_person: int, seed: int = 0) -> ChipData:
    """150x150 RGB crops of scikit-image photos, one photo per "person", jittered: mechanics, not faces."""
    import cv2
    import skimage.data

    photos = [skimage.data.astronaut(), cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2RGB),
              skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket(), skimage.data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    chips, labels = [], []
    for person in range(persons):
        photo = photos[person % len(photos)]
        for _ in range(per_person):
            y, x = rng.integers(0, 40, 2)
            crop = photo[y:y + 260, x:x + 260]
            chips.append(cv2.resize(np.ascontiguousarray(crop), (150, 150), interpolation=cv2.INTER_AREA))
            labels.append(person)
    return ChipData(np.stack(chips), np.array(labels, np.int64), np.array([f"p{i}" for i in range(persons)]),
                    np.array([f"s{i}" for i in range(len(labels))]))


def test_freeze_trunk_trains_only_the_last_blocks_and_fc():
    model = DlibResNet()
    trainable = freeze_trunk(model, 2)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {n for n in names if n.startswith(("blocks.12.", "blocks.13.", "fc."))}
    assert "fc.weight" in names and "blocks.12.conv1.weight" in names and "blocks.11.conv1.weight" not in names
    assert sum(p.numel() for p in trainable) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    freeze_trunk(model, 0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"fc.weight"}
    freeze_trunk(model, -1)
    assert all(p.requires_grad for p in model.parameters())


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    model = DlibResNet()
    save_checkpoint(tmp_path / "a.pt", model, epoch=3, config={"alpha": 0.2})
    back, data = load_checkpoint(tmp_path / "a.pt")
    assert data["epoch"] == 3 and data["config"] == {"alpha": 0.2}
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    torch.save({"format": "something else"}, tmp_path / "b.pt")
    with pytest.raises(ModelError, match="not a face embedder checkpoint"):
        load_checkpoint(tmp_path / "b.pt")
    (tmp_path / "c.pt").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_verification_figures_golden_and_unmeasurable_fars():
    # Two persons, orthonormal-ish: same-person pairs at distance 0.1, different at sqrt(2) - ok to separate.
    vectors = np.array([[1, 0, 0], [1, 0.1, 0], [0, 0, 1], [0, 0.1, 1]], np.float32)
    labels = np.array([0, 0, 1, 1])
    figures = verification_figures(vectors, labels)
    assert figures["genuine_pairs"] == 2 and figures["impostor_pairs"] == 4
    assert figures["tar"] == {"0.1": None, "0.01": None, "0.001": None}  # 4 impostor pairs measure no FAR <= 0.25
    assert figures["best_accuracy"] == 1.0 and 0.1 < figures["best_threshold"] <= np.sqrt(2) + 1e-6
    assert figures["mean_genuine"] == pytest.approx(0.1, abs=1e-6)
    assert selection_score(figures) == ("best accuracy", 1.0)
    many = verification_figures(np.eye(12, dtype=np.float32).repeat(2, axis=0), np.arange(24) // 2)
    assert many["impostor_pairs"] == 264 and many["tar"]["0.01"] == 1.0 and many["tar"]["0.001"] is None
    assert selection_score(many) == ("TAR@FAR=0.01", 1.0)


def test_a_few_steps_on_a_tiny_batch_lower_the_loss():
    torch.manual_seed(0)
    model = DlibResNet()
    params = freeze_trunk(model, 1)
    data = photo_chips(persons=3, per_person=2)
    x, labels = chips_to_input(data.chips), torch.from_numpy(data.labels)
    optimiser = torch.optim.Adam(params, lr=1e-2)
    losses = []
    model.train()
    for _ in range(5):
        result = batch_triplet_loss(model(x), labels, alpha=0.2, mining="hard")
        assert torch.isfinite(result.loss) and len(result.losses) == 6
        optimiser.zero_grad()
        result.loss.backward()
        assert model.fc.weight.grad is not None and model.blocks[0].conv1.weight.grad is None
        optimiser.step()
        losses.append(result.loss.item())
    assert losses[0] > 0 and losses[-1] < 0.5 * losses[0], losses


def test_train_embedder_tiny_run_writes_checkpoints_history_and_plot(tmp_path):
    torch.manual_seed(0)
    base = tmp_path / "base.pt"
    save_checkpoint(base, DlibResNet(), epoch=0, base="random init")
    data = photo_chips(persons=6, per_person=2)
    messages = []
    result = train_embedder(data, tmp_path / "out" / "ft.pt", base, epochs=2, p=2, k=2, steps_per_epoch=1,
                            lr=1e-3, train_blocks=1, val_fraction=0.3, progress=False, log=messages.append)
    history = result["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert all(np.isfinite(h["loss"]) for h in history[1:])
    assert history[0]["val"]["genuine_pairs"] == 2 and history[0]["val"]["impostor_pairs"] == 4
    assert len(result["persons"]["val"]) == 2 and not set(result["persons"]["val"]) & set(result["persons"]["train"])
    for path in (result["checkpoint"], result["last"], result["plot"], tmp_path / "out" / "ft.history.json"):
        assert path.is_file() and path.stat().st_size > 0, path
    assert result["plot"].read_bytes()[:4] == b"\x89PNG"
    model, ckpt = load_checkpoint(result["checkpoint"])
    assert ckpt["epoch"] == result["best_epoch"] and ckpt["config"]["mining"] == "semihard"
    assert json.loads(ckpt["persons"])["val"] == result["persons"]["val"]
    last, last_ckpt = load_checkpoint(result["last"])
    assert last_ckpt["epoch"] == 2
    # the frozen stem is untouched; the trained block moved
    base_model, _ = load_checkpoint(base)
    assert torch.equal(last.conv1.weight, base_model.conv1.weight)
    assert not torch.equal(last.blocks[13].conv1.weight, base_model.blocks[13].conv1.weight)
    assert embed_chips(last, data.chips[:3]).shape == (3, 128)
    assert any("held-out persons" in m for m in messages)


def test_train_embedder_rejects_bad_settings(tmp_path):
    data = photo_chips(persons=4, per_person=2)
    with pytest.raises(ConfigError, match="mining"):
        train_embedder(data, tmp_path / "x.pt", tmp_path / "base.pt", mining="easy")
    with pytest.raises(ConfigError, match="epochs"):
        train_embedder(data, tmp_path / "x.pt", tmp_path / "base.pt", epochs=0)
    with pytest.raises(ModelError, match="not found"):
        train_embedder(data, tmp_path / "x.pt", tmp_path / "base.pt", val_fraction=0.0, progress=False)
