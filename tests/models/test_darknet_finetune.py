"""Transfer learning from a darknet import: heads re-made for new classes, backbone frozen then trained."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from models.darknet import (backbone_layers, load_darknet_checkpoint, save_darknet_checkpoint,  # noqa: E402
                            with_classes)
from models.datasets import make_synthetic_dataset  # noqa: E402
from models.importers.darknet_weights import load_darknet  # noqa: E402
from models.train.detector import train_detector  # noqa: E402
from realtime.errors import ModelError  # noqa: E402


def test_with_classes_keeps_all_but_the_head_convs(darknet_files):
    net, _ = load_darknet(*darknet_files("yolov3-tiny"))
    new = with_classes(net, 1)
    assert not new.training  # the same mode as the network it came from
    assert [h.num_classes for h in new.heads] == [1, 1]
    assert [tuple(o.shape[1:2]) for o in new(torch.rand(1, 3, 64, 64))] == [(18,), (18,)]
    old, fresh = net.state_dict(), new.state_dict()
    heads = {h.layer - 1 for h in net.heads}
    for key, value in fresh.items():
        if int(key.split(".")[1]) not in heads:
            assert torch.equal(value, old[key]), key
    assert backbone_layers(net) == list(range(13))  # through the last maxpool and the conv after it
    with pytest.raises(ModelError, match="num_classes"):
        with_classes(net, 0)


def test_checkpoint_round_trip(darknet_files, tmp_path):
    net, _ = load_darknet(*darknet_files("yolov2-tiny"))
    save_darknet_checkpoint(tmp_path / "d.pt", net, ("a", "b", "c"), img_size=64)
    again, classes, data = load_darknet_checkpoint(tmp_path / "d.pt")
    x = torch.rand(1, 3, 64, 64)
    assert classes == ("a", "b", "c") and data["img_size"] == 64
    assert torch.equal(again(x)[0], net.eval()(x)[0])
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ModelError, match="not an rtv darknet checkpoint"):
        load_darknet_checkpoint(tmp_path / "x.pt")


def test_finetune_freezes_the_backbone_first(darknet_files, tmp_path):
    net, _ = load_darknet(*darknet_files("yolov3-tiny"))
    save_darknet_checkpoint(tmp_path / "init.pt", net, ("a", "b", "c"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    data = make_synthetic_dataset(tmp_path / "data", num_train=4, num_val=2, size=(128, 96), seed=0)
    result = train_detector(data, tmp_path / "run", epochs=2, img_size=64, batch_size=2, max_steps_per_epoch=2,
                            threads=1, progress=False, init_checkpoint=tmp_path / "init.pt", freeze_epochs=1)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["frozen_backbone"] for h in history] == [True, False]
    tuned, classes, _ = load_darknet_checkpoint(result["last"])
    assert classes == ("red", "green", "blue")
    after = tuned.state_dict()
    assert not torch.equal(after["layers.0.conv.weight"], before["layers.0.conv.weight"])  # unfrozen in epoch 2
    assert tuned.heads[0].anchors_wh == net.heads[0].anchors_wh  # darknet's anchors are kept
