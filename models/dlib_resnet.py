"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch, and its weight loader.

The network of dlib's ``dnn_face_recognition_ex.cpp`` (29 conv layers, 128-d output), with dlib's conventions:

* a strided convolution has no padding (dlib's default padding is ``kernel // 2`` only for stride 1), so the
  7x7/2 stem maps 150 -> 72 and a 3x3/2 convolution maps 35 -> 17, 17 -> 8, 8 -> 3, 4 -> 1;
* ``affine`` is a per-channel scale and shift (batch norm folded at training time);
* a down-sampling residual adds a 2x2/2 average pool of its input to the block output; when the two disagree
  in channels or size (32 vs 64 channels; 3x3 vs 4x4 maps) dlib's ``add_prev`` adds them over the overlapping
  top-left region and keeps the larger one elsewhere, i.e. both are zero-padded at the end of each axis;
* the output is the 128-d ``fc_no_bias`` of the global average pool (not normalised).

Input: float32 (N, 3, 150, 150), RGB, already normalised as ``(pixel - mean_rgb) / 256``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from models.importers.dlib_dat import DlibFormatError, LayerSpec, read_dlib_net

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SCALE = 256.0
CHIP_SIZE = 150
EMBEDDING_SIZE = 128
# (channels, number of blocks, first block down-samples) from the input side: alevel4 .. alevel0.
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class Affine(nn.Module):
    """Per-channel ``x * weight + bias`` on (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: (N, C, H, W) tensors of possibly different C/H/W, each zero-padded at the end to the
    larger size, then added."""
    shape = [max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        dc, dh, dw = (s - ts for s, ts in zip(shape, t.shape[1:]))
        return F.pad(t, (0, dw, 0, dh, 0, dc)) if (dc or dh or dw) else t

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    """``relu(add_prev(block(x), shortcut(x)))``; block = conv3x3/s, affine, relu, conv3x3, affine.

    With ``down`` the first convolution has stride 2 and no padding, and the shortcut is a 2x2/2 average pool.
    """

    def __init__(self, in_channels: int, channels: int, down: bool):
        super().__init__()
        self.down = down
        stride, padding = (2, 0) if down else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=padding)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_padded(y, shortcut))


class DlibResNet(nn.Module):
    """float32 (N, 3, 150, 150) normalised RGB -> float32 (N, 128) face descriptor (Euclidean space)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.affine1 = Affine(32)
        blocks = []
        in_channels = 32
        for channels, count, down in STAGES:
            for i in range(count):
                blocks.append(ResidualBlock(in_channels, channels, down and i == 0))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, EMBEDDING_SIZE, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.affine1(self.conv1(x))), 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def dlib_resnet_layout() -> list[LayerSpec]:
    """The layers of dlib's ``anet_type`` from input to output, as :func:`read_dlib_net` expects them."""

    def con(n: int, k: int, s: int) -> LayerSpec:
        pad = 0 if s != 1 else k // 2
        return LayerSpec("con", {"num_filters": n, "nr": k, "nc": k, "stride_y": s, "stride_x": s,
                                 "padding_y": pad, "padding_x": pad})

    def pool(kind: str, k: int, s: int) -> LayerSpec:
        return LayerSpec(kind, {"nr": k, "nc": k, "stride_y": s, "stride_x": s, "padding_y": 0, "padding_x": 0})

    layout = [LayerSpec("input_rgb_image_sized", {"nr": CHIP_SIZE, "nc": CHIP_SIZE}),
              con(32, 7, 2), LayerSpec("affine"), LayerSpec("relu"), pool("max_pool", 3, 2)]
    for channels, count, down in STAGES:
        for i in range(count):
            is_down = down and i == 0
            layout += [LayerSpec("tag", {"id": 1}), con(channels, 3, 2 if is_down else 1), LayerSpec("affine"),
                       LayerSpec("relu"), con(channels, 3, 1), LayerSpec("affine")]
            if is_down:
                layout += [LayerSpec("tag", {"id": 2}), LayerSpec("skip", {"id": 1}), pool("avg_pool", 2, 2),
                           LayerSpec("add_prev")]
            else:
                layout += [LayerSpec("add_prev")]
            layout += [LayerSpec("relu")]
    layout += [pool("avg_pool", 0, 1), LayerSpec("fc", {"num_outputs": EMBEDDING_SIZE, "bias_mode": 1}),
               LayerSpec("loss_metric")]
    return layout


def _assign(param: torch.Tensor, value, what: str) -> None:
    tensor = torch.from_numpy(value)
    if tuple(tensor.shape) != tuple(param.shape):
        raise DlibFormatError(f"{what}: the file holds shape {tuple(tensor.shape)}, the model needs "
                              f"{tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(tensor)


def load_dlib_weights(model: DlibResNet, dat_path: Path | str) -> dict[str, object]:
    """Read ``dat_path`` (dlib_face_recognition_resnet_model_v1.dat) into ``model``; return what the file says
    about its input (``mean_rgb``, size) and loss (``margin``, ``dist_thresh``).

    Raises :class:`DlibFormatError` when the file is truncated or holds another architecture.
    """
    layers = read_dlib_net(dat_path, dlib_resnet_layout())
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    affines = [m for m in model.modules() if isinstance(m, Affine)]
    file_convs = [layer for layer in layers if layer.kind == "con"]
    file_affines = [layer for layer in layers if layer.kind == "affine"]
    if len(convs) != len(file_convs) or len(affines) != len(file_affines):
        raise DlibFormatError(f"{dat_path}: {len(file_convs)} conv / {len(file_affines)} affine layers in the file, "
                              f"the model has {len(convs)} / {len(affines)}")
    for i, (conv, layer) in enumerate(zip(convs, file_convs)):
        _assign(conv.weight, layer.arrays["filters"], f"conv {i} filters")
        if "biases" not in layer.arrays:
            raise DlibFormatError(f"{dat_path}: conv {i} has no biases in the file")
        _assign(conv.bias, layer.arrays["biases"], f"conv {i} biases")
    for i, (affine, layer) in enumerate(zip(affines, file_affines)):
        if layer.attrs.get("mode") != 0:
            raise DlibFormatError(f"{dat_path}: affine {i} has mode {layer.attrs.get('mode')}, expected 0 (per channel)")
        _assign(affine.weight, layer.arrays["gamma"], f"affine {i} gamma")
        _assign(affine.bias, layer.arrays["beta"], f"affine {i} beta")
    fc = next(layer for layer in layers if layer.kind == "fc")
    _assign(model.fc.weight, fc.arrays["weights"].T.copy(), "fc weights")
    return {"mean_rgb": layers[0].attrs["mean_rgb"], "size": (layers[0].attrs["nc"], layers[0].attrs["nr"]),
            **layers[-1].attrs}
