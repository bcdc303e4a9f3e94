"""The darknet reader: cfg parsing, every layer type, weights files in darknet's format, and bad files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.darknet import DarknetNet, MaxPoolLayer, parse_cfg, read_cfg, read_names  # noqa: E402
from models.importers.darknet_weights import (expected_floats, load_darknet, read_weights_file,  # noqa: E402
                                              seen_is_64bit)
from realtime.errors import ModelError  # noqa: E402

HEAD = 3 * (5 + 3)  # the small cfgs: 3 anchors per head, 3 classes


@pytest.mark.parametrize("name, strides", [("yolov3-tiny", (32, 16)), ("yolov3", (32, 16, 8)),
                                           ("yolov4-tiny", (32, 16)), ("yolov2-tiny", (32,))])
def test_cfgs_parse_load_and_run_at_two_sizes(darknet_files, name, strides):
    cfg, weights = darknet_files(name)
    net, header = load_darknet(cfg, weights)
    assert header.major == 0 and header.minor == 2 and header.seen == 12345
    assert tuple(h.stride for h in net.heads) == strides
    for size in (64, 96):
        with torch.no_grad():
            outs = net(torch.rand(2, 3, size, size))
        assert [tuple(o.shape) for o in outs] == [(2, o.shape[1], size // s, size // s) for o, s in zip(outs, strides)]
        assert all(torch.isfinite(o).all() for o in outs)
    assert outs[0].shape[1] == (HEAD if name != "yolov2-tiny" else 5 * 8)


def test_heads_carry_masked_anchors_and_region_anchors_in_pixels(darknet_files):
    net = load_darknet(*darknet_files("yolov3-tiny"))[0]
    assert net.heads[0].anchors_wh == ((81, 82), (135, 169), (344, 319))
    assert net.heads[1].anchors_wh == ((10, 14), (23, 27), (37, 58))
    assert {h.layout for h in net.heads} == {"yolov3_nchw"}
    region = load_darknet(*darknet_files("yolov2-tiny"))[0].heads[0]
    assert region.layout == "yolov2_nchw" and region.softmax and region.stride == 32
    assert region.anchors_wh[0] == pytest.approx((0.57 * 32, 0.67 * 32))
    v4 = load_darknet(*darknet_files("yolov4-tiny"))[0]
    assert [h.scale_x_y for h in v4.heads] == [1.05, 1.05]


def test_weights_land_in_order_bias_scales_mean_var_kernel(tmp_path):
    cfg = tmp_path / "one.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\n"
                   "stride=1\npad=1\nactivation=linear\n[convolutional]\nfilters=16\nsize=1\nactivation=linear\n"
                   "[yolo]\nmask=0\nanchors=10,10\nclasses=11\nnum=1\n")
    values = np.arange(2 + 2 + 2 + 2 + 2 * 3 + 16 + 16 * 2, dtype="<f4")
    values[4:6] = [0.0, 1.0]  # mean
    values[6:8] = [4.0, 9.0]  # variance -> darknet denominator sqrt(var) + 1e-6
    w = tmp_path / "one.weights"
    w.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + np.array([7], "<u8").tobytes() + values.tobytes())
    net, _ = load_darknet(cfg, w)
    first, second = net.conv_layers()
    assert first.conv.bias is None and second.conv.bias is not None
    np.testing.assert_array_equal(first.bn.bias.detach().numpy(), [0, 1])
    np.testing.assert_array_equal(first.bn.weight.detach().numpy(), [2, 3])
    np.testing.assert_array_equal(first.bn.running_mean.numpy(), [0, 1])
    np.testing.assert_allclose(np.sqrt(first.bn.running_var.numpy() + first.bn.eps), [2 + 1e-6, 3 + 1e-6], rtol=1e-7)
    np.testing.assert_array_equal(first.conv.weight.detach().numpy().ravel(), values[8:14])
    np.testing.assert_array_equal(second.conv.bias.detach().numpy(), values[14:30])
    np.testing.assert_array_equal(second.conv.weight.detach().numpy().ravel(), values[30:])
    # the conv + BN output is darknet's formula: (x - mean) / (sqrt(var) + 1e-6) * scale + bias
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        got = first(x).numpy()
    k = values[8:14].reshape(2, 3)
    raw = np.einsum("oc,nchw->nohw", k, x.numpy().astype(np.float64))
    want = (raw - np.array([0, 1])[None, :, None, None]) / (np.array([2, 3]) + 1e-6)[None, :, None, None]
    want = want * np.array([2, 3])[None, :, None, None] + np.array([0, 1])[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("major, minor, wide", [(0, 1, False), (0, 2, True), (1, 0, True), (0, 0, False),
                                                (1000, 2, False)])
def test_seen_is_64bit_from_version_0_2(darknet_files, major, minor, wide):
    assert seen_is_64bit(major, minor) is wide
    cfg, weights = darknet_files("yolov3-tiny", major=major, minor=minor, seen=2 ** 31 + 5)
    header, values = read_weights_file(weights)
    assert header.header_bytes == (20 if wide else 16) and header.seen == 2 ** 31 + 5
    assert len(values) == expected_floats(read_cfg(cfg))


def test_maxpool_stride1_pads_right_and_bottom_only():
    x = torch.tensor([[[[1.0, 5.0, 2.0], [0.0, 3.0, 9.0], [4.0, 0.0, -1.0]]]])
    got = MaxPoolLayer(2, 1, 1)(x)[0, 0].numpy()
    # windows start at (0, 0); the last column/row sees the -inf padding on the right/bottom only
    np.testing.assert_array_equal(got, [[5, 9, 9], [4, 9, 9], [4, 0, -1]])
    # symmetric padding (what naive converters do) would give a different first row
    naive = torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (1, 0, 1, 0), value=-1e9), 2, 1)[0, 0]
    assert not np.array_equal(naive.numpy(), got)


@pytest.mark.parametrize("size, stride, padding, hw", [(2, 2, 1, 7), (3, 2, 2, 8), (3, 1, 2, 5), (2, 2, 1, 8),
                                                       (3, 3, 2, 7), (5, 1, 4, 6)])
def test_maxpool_matches_darknet_window_rule(size, stride, padding, hw):
    rng = np.random.default_rng(size * 100 + hw)
    x = rng.normal(size=(1, 2, hw, hw)).astype(np.float32)
    got = MaxPoolLayer(size, stride, padding)(torch.from_numpy(x)).numpy()
    out = (hw + padding - size) // stride + 1
    off = -(padding // 2)
    want = np.full((1, 2, out, out), -np.inf, np.float32)
    for i in range(out):
        for j in range(out):
            for di in range(size):
                for dj in range(size):
                    r, c = off + i * stride + di, off + j * stride + dj
                    if 0 <= r < hw and 0 <= c < hw:
                        want[..., i, j] = np.maximum(want[..., i, j], x[..., r, c])
    np.testing.assert_array_equal(got, want)


def test_route_groups_take_the_channel_slice():
    cfg = ("[net]\nwidth=32\nheight=32\nchannels=4\n[route]\nlayers=-1\n[convolutional]\nfilters=6\nsize=1\n"
           "activation=linear\n[route]\nlayers=-1\ngroups=3\ngroup_id=2\n[route]\nlayers=-2,-1\n"
           "[convolutional]\nfilters=8\nsize=1\nactivation=linear\n[yolo]\nmask=0\nanchors=4,4\nclasses=3\nnum=1\n")
    with pytest.raises(ModelError, match=r"route\]: layers -1 \(layer 0\) points at layer -1"):
        DarknetNet(parse_cfg(cfg))
    cfg = cfg.replace("[route]\nlayers=-1\n[conv", "[conv", 1)
    net = DarknetNet(parse_cfg(cfg))
    assert [s[0] for s in net.shapes] == [6, 2, 8, 8, 8]
    conv = net.layers[0]
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        y = conv(x)
        routed = net.layers[1]([y])
        both = net.layers[2]([y, routed])
    assert torch.equal(routed, y[:, 4:6]) and torch.equal(both, torch.cat([y, y[:, 4:6]], 1))


def test_shortcut_adds_and_upsample_is_nearest():
    head = "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n[yolo]\nmask=0\nanchors=1,1\nclasses=1\nnum=1\n"
    cfg = ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
           "[shortcut]\nfrom=-2\nactivation=relu\n")
    with pytest.raises(ModelError, match=r"from -2 \(layer 1\) points at layer -1"):
        DarknetNet(parse_cfg(cfg + head))
    with pytest.raises(ModelError, match=r"from layer 0 has shape \(3, 32, 32\), the previous layer \(4, 32, 32\)"):
        DarknetNet(parse_cfg(cfg.replace("from=-2", "from=0").replace("filters=3", "filters=4").replace(
            "[shortcut]", "[convolutional]\nfilters=4\nsize=1\n[shortcut]").replace("filters=4", "filters=3", 1)
            + head))
    cfg = ("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=3\nsize=1\nactivation=linear\n"
           "[convolutional]\nfilters=3\nsize=1\nactivation=linear\n[shortcut]\nfrom=0\nactivation=relu\n"
           "[upsample]\nstride=2\n[maxpool]\nsize=2\nstride=2\n" + head)
    net = DarknetNet(parse_cfg(cfg))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = net.layers[0](x)
        b = net.layers[1](a)
        s = net.layers[2](b, [a, b])
        up = net.layers[3](s)
    assert torch.equal(s, torch.relu(a + b))
    assert torch.equal(up, s.repeat_interleave(2, 2).repeat_interleave(2, 3)) and net.shapes[3] == (3, 64, 64)


@pytest.mark.parametrize("act", ["leaky", "linear", "mish", "relu", "logistic"])
def test_activations(act):
    net = DarknetNet(parse_cfg(f"[net]\nwidth=32\nheight=32\nchannels=1\n[convolutional]\nfilters=6\nsize=1\n"
                               f"activation={act}\n[yolo]\nmask=0\nanchors=4,4\nclasses=1\nnum=1\n"))
    conv = net.layers[0]
    x = torch.linspace(-3, 3, 32 * 32).reshape(1, 1, 32, 32)
    with torch.no_grad():
        pre = conv.conv(x)
        got = conv(x)
    ref = {"leaky": torch.where(pre > 0, pre, 0.1 * pre), "linear": pre, "mish": pre * torch.tanh(torch.log1p(
        torch.exp(pre))), "relu": pre.clamp(min=0), "logistic": 1 / (1 + torch.exp(-pre))}[act]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text, message", [
    ("width=3\n", "before the first"),
    ("[net]\nwidth=32\n[wat]\n", r"layer type \[wat\] \(layer 0\) is not supported"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\nsize=3\nactivation=swish\n[yolo]\n", "activation 'swish'"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=x\n", "filters='x' is not an integer"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\nbinary=1\n", "binary=1 is not supported"),
    ("[net]\nwidth=32\n\nwidth=16\n", "given twice"),
    ("[net]\nwidth=32\nheight=32\nbroken line\n", r":4: expected 'key=value'"),
    ("[convolutional]\nfilters=3\n", r"starts with a \[net\]"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=8\nsize=1\n", r"no \[yolo\] or \[region\]"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=9\nsize=1\n[yolo]\nmask=0\nanchors=2,2\nclasses=3\n",
     r"9 channels; 1 anchors x \(5 \+ 3 classes\) need 8"),
    ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=9\nsize=1\n[yolo]\nmask=0,4\nanchors=2,2\nclasses=3\n",
     "mask"),
    ("[net]\nwidth=32\nheight=32\n[route]\nlayers=5\n", "layers 5 .*not an earlier layer"),
])
def test_bad_cfgs_raise_model_error_with_the_place(tmp_path, text, message):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    with pytest.raises(ModelError, match=message):
        read_cfg(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"drop_floats": 7}, "truncated"),
    ({"extra_floats": 3}, "extra values"),
])
def test_weights_with_missing_or_extra_floats_are_refused_with_counts(darknet_files, kwargs, message):
    cfg, weights = darknet_files("yolov3-tiny", **kwargs)
    want = expected_floats(read_cfg(cfg))
    have = want - kwargs.get("drop_floats", 0) + kwargs.get("extra_floats", 0)
    with pytest.raises(ModelError, match=f"needs {want} float32 weights after the header but the file holds {have}"):
        load_darknet(cfg, weights)
    with pytest.raises(ModelError, match=message):
        load_darknet(cfg, weights)


def test_truncated_mid_float_and_tiny_files_are_refused(darknet_files, tmp_path):
    cfg, weights = darknet_files("yolov3-tiny")
    data = weights.read_bytes()
    weights.write_bytes(data[:-2])
    with pytest.raises(ModelError, match="not a whole number of float32"):
        load_darknet(cfg, weights)
    weights.write_bytes(data[:10])
    with pytest.raises(ModelError, match="too short for a darknet weights header"):
        load_darknet(cfg, weights)
    with pytest.raises(ModelError, match="cannot read darknet weights"):
        load_darknet(cfg, tmp_path / "missing.weights")


def test_weights_of_another_cfg_are_refused(darknet_files):
    cfg, _ = darknet_files("yolov3-tiny")
    _, other = darknet_files("yolov2-tiny")
    with pytest.raises(ModelError, match="use the .cfg the weights were trained with"):
        load_darknet(cfg, other)


def test_names_file(tmp_path):
    (tmp_path / "a.names").write_text("person\n\nbicycle\ncar")
    assert read_names(tmp_path / "a.names") == ("person", "bicycle", "car")
    (tmp_path / "b.names").write_text("\n\n")
    with pytest.raises(ModelError, match="no class names"):
        read_names(tmp_path / "b.names")


def test_registry_yolov3_tiny_consumes_every_float(registry_yolov3_tiny):
    cfg, weights, names = registry_yolov3_tiny
    net, header = load_darknet(cfg, weights)
    assert (header.major, header.minor, header.revision) == (0, 2, 0)
    assert expected_floats(net) == (weights.stat().st_size - 20) // 4 == 8858734
    assert len(read_names(names)) == 80 and [h.stride for h in net.heads] == [32, 16]


def test_cfgs_are_all_tested(darknet_cfg_texts):
    assert set(darknet_cfg_texts) == {"yolov3-tiny", "yolov3", "yolov4-tiny", "yolov2-tiny"}
