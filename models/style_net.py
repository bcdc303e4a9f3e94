"""Feed-forward style transfer networks: Johnson et al.'s transformer network and a light real-time student.

Both map an RGB image in 0..1, float32 (N, 3, H, W), to a stylised RGB image in 0..1 of the same size (a sigmoid
at the end). H and W must be multiples of :attr:`size_multiple` (the downsampling factor); the runtime pads or
resizes to that.

* :class:`JohnsonStyleNet` -- "Perceptual Losses for Real-Time Style Transfer" (Johnson, Alahi, Fei-Fei 2016) with
  instance normalisation (Ulyanov et al.): 9x9 conv, two stride-2 convs, five residual blocks at 128 channels, two
  nearest-upsample convs, 9x9 conv. About 1.7 M parameters, ~11.7 GMAC at 320x240 (~220 ms here on 2 cores).
* :class:`StudentStyleNet` -- the same shape, much thinner: 3x3 convs, a third stride-2 stage, depthwise-separable
  residual and upsampling blocks. With the defaults (``width=16``, ``blocks=4``) ~0.05 M parameters and
  ~0.5 GMAC at 320x240.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class ConvNormAct(nn.Sequential):
    """Reflection-padded conv, instance norm, optional ReLU; ``upsample`` > 1 puts a nearest upsample first."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, upsample: int = 1, act: bool = True,
                 norm: bool = True):
        layers: list[nn.Module] = []
        if upsample > 1:
            layers.append(nn.Upsample(scale_factor=upsample, mode="nearest"))
        layers += [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride)]
        if norm:
            layers.append(_norm(c_out))
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 conv + instance norm layers with an identity shortcut (Johnson's block, no ReLU after the sum)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(ConvNormAct(channels, channels, 3), ConvNormAct(channels, channels, 3, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (reflection padded) then pointwise 1x1, instance norm, optional ReLU; optional upsample first."""

    def __init__(self, c_in: int, c_out: int, upsample: int = 1, act: bool = True):
        layers: list[nn.Module] = []
        if upsample > 1:
            layers.append(nn.Upsample(scale_factor=upsample, mode="nearest"))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_in, 3, groups=c_in, bias=False),
                   nn.Conv2d(c_in, c_out, 1), _norm(c_out)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableResidualBlock(nn.Module):
    """The residual block with depthwise-separable convolutions (about 9x fewer MACs at 64 channels)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(SeparableConv(channels, channels), SeparableConv(channels, channels, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class JohnsonStyleNet(nn.Module):
    """Johnson et al.'s image transformation network with instance norm. Input/output RGB 0..1, (N, 3, H, W).

    ``H`` and ``W`` must be multiples of 4.
    """

    size_multiple = 4

    def __init__(self, blocks: int = 5):
        super().__init__()
        self.down = nn.Sequential(ConvNormAct(3, 32, 9), ConvNormAct(32, 64, 3, stride=2),
                                  ConvNormAct(64, 128, 3, stride=2))
        self.res = nn.Sequential(*[ResidualBlock(128) for _ in range(blocks)])
        self.up = nn.Sequential(ConvNormAct(128, 64, 3, upsample=2), ConvNormAct(64, 32, 3, upsample=2),
                                ConvNormAct(32, 3, 9, act=False, norm=False))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.up(self.res(self.down(image))))


class StudentStyleNet(nn.Module):
    """A light real-time transformer network. Input/output RGB 0..1, float32 (N, 3, H, W); H, W multiples of 8.

    ``width`` channels at full resolution, doubling at each of three stride-2 stages (16 -> 32 -> 64 by default);
    ``blocks`` depthwise-separable residual blocks at 1/8 resolution; upsampling by nearest x2 + separable conv.
    """

    size_multiple = 8

    def __init__(self, width: int = 16, blocks: int = 4):
        super().__init__()
        self.width = int(width)
        self.blocks = int(blocks)
        w = self.width
        self.down = nn.Sequential(ConvNormAct(3, w, 3), ConvNormAct(w, 2 * w, 3, stride=2),
                                  ConvNormAct(2 * w, 4 * w, 3, stride=2), ConvNormAct(4 * w, 4 * w, 3, stride=2))
        self.res = nn.Sequential(*[SeparableResidualBlock(4 * w) for _ in range(self.blocks)])
        self.up = nn.Sequential(SeparableConv(4 * w, 4 * w, upsample=2), SeparableConv(4 * w, 2 * w, upsample=2),
                                SeparableConv(2 * w, w, upsample=2))
        self.head = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(w, 3, 3))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.up(self.res(self.down(image)))))


def build_style_net(arch: str, **kwargs: int) -> nn.Module:
    """``arch`` "johnson" or "student" (``width``, ``blocks``); :class:`ValueError` names the unknown value."""
    if arch == "johnson":
        return JohnsonStyleNet(**{k: v for k, v in kwargs.items() if k == "blocks"})
    if arch == "student":
        return StudentStyleNet(**kwargs)
    raise ValueError(f"unknown style network {arch!r}: use 'johnson' or 'student'")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
