"""A small anchor-based YOLO (v2: one scale at stride 32; v3: strides 16 and 32) for CPU real time.

Outputs are raw logits in layout ``yolov3_nchw``: one (N, A*(5+C), H, W) tensor per stride, fields per anchor
``tx, ty, tw, th, objectness, classes`` (see ``realtime.detect.yolo`` for the decode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch
from torch import nn

from realtime.errors import ConfigError, ModelError

LAYOUT = "yolov3_nchw"


@dataclass(frozen=True)
class YoloConfig:
    """Architecture and head parameters. ``anchors``: per stride, (w, h) pairs in network pixels."""

    classes: tuple[str, ...]
    anchors: tuple[tuple[tuple[float, float], ...], ...]
    strides: tuple[int, ...] = (16, 32)
    width: int = 16
    img_size: int = 320
    layout: str = LAYOUT

    def __post_init__(self) -> None:
        if tuple(self.strides) not in ((32,), (16, 32)):
            raise ConfigError(f"strides must be (32,) (v2) or (16, 32) (v3), got {self.strides}")
        if len(self.anchors) != len(self.strides) or len({len(a) for a in self.anchors}) != 1:
            raise ConfigError(f"need the same number of anchors for each of the strides {self.strides}")
        if not self.classes:
            raise ConfigError("a detector needs at least one class")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def num_anchors(self) -> int:
        return len(self.anchors[0])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["anchors"] = [[list(a) for a in scale] for scale in self.anchors]
        data["classes"] = list(self.classes)
        data["strides"] = list(self.strides)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "YoloConfig":
        return cls(
            classes=tuple(str(c) for c in data["classes"]),
            anchors=tuple(tuple((float(w), float(h)) for w, h in scale) for scale in data["anchors"]),
            strides=tuple(int(s) for s in data["strides"]),
            width=int(data.get("width", 16)),
            img_size=int(data.get("img_size", 320)),
            layout=str(data.get("layout", LAYOUT)),
        )


class ConvBnAct(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.1, inplace=True),
        )


class DwBlock(nn.Module):
    """Residual depthwise-separable block: x + pw(dw(x))."""

    def __init__(self, c: int):
        super().__init__()
        self.dw = ConvBnAct(c, c, 3, 1, groups=c)
        self.pw = ConvBnAct(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pw(self.dw(x))


class YoloNet(nn.Module):
    """Backbone /32 with depthwise blocks; head at stride 32 (v2) or 16 and 32 with an upsampling path (v3)."""

    def __init__(self, config: YoloConfig):
        super().__init__()
        self.config = config
        w = config.width
        out_ch = config.num_anchors * (5 + config.num_classes)
        self.stage8 = nn.Sequential(ConvBnAct(3, w, 3, 2), ConvBnAct(w, 2 * w, 3, 2), ConvBnAct(2 * w, 4 * w, 3, 2),
                                    DwBlock(4 * w))
        self.stage16 = nn.Sequential(ConvBnAct(4 * w, 8 * w, 3, 2), DwBlock(8 * w), DwBlock(8 * w))
        self.stage32 = nn.Sequential(ConvBnAct(8 * w, 16 * w, 3, 2), DwBlock(16 * w), DwBlock(16 * w))
        self.neck32 = nn.Sequential(ConvBnAct(16 * w, 8 * w, 1), DwBlock(8 * w))
        self.pred32 = nn.Conv2d(8 * w, out_ch, 1)
        self.two_scales = len(config.strides) == 2
        if self.two_scales:
            self.lateral = ConvBnAct(8 * w, 4 * w, 1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.neck16 = nn.Sequential(ConvBnAct(12 * w, 4 * w, 1), DwBlock(4 * w))
            self.pred16 = nn.Conv2d(4 * w, out_ch, 1)
        self._init_bias()

    def _init_bias(self, prior: float = 0.01) -> None:
        """Objectness and class biases start at a low prior so early training is not swamped by background."""
        fields = 5 + self.config.num_classes
        for pred in self.heads():
            with torch.no_grad():
                bias = pred.bias.view(self.config.num_anchors, fields)
                bias.zero_()
                bias[:, 4] = -math.log((1 - prior) / prior)
                bias[:, 5:] = -math.log((1 - prior) / prior) / 2

    def heads(self) -> list[nn.Conv2d]:
        return [self.pred16, self.pred32] if self.two_scales else [self.pred32]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: float32 (N, 3, H, W) RGB in [0, 1], H and W multiples of 32 -> raw outputs, one per stride."""
        c8 = self.stage8(x)
        c16 = self.stage16(c8)
        p32 = self.neck32(self.stage32(c16))
        out32 = self.pred32(p32)
        if not self.two_scales:
            return [out32]
        p16 = self.neck16(torch.cat([self.up(self.lateral(p32)), c16], dim=1))
        return [self.pred16(p16), out32]


def save_checkpoint(path, model: YoloNet, **extra: Any) -> None:
    """A state-dict checkpoint: model weights, config (plain types), plus ``extra`` (epoch, metrics, history)."""
    cfg = model.config.to_dict()
    torch.save({"format": "rtv.yolo.v1", "model": model.state_dict(), "config": cfg,
                "anchors": cfg["anchors"], "classes": cfg["classes"], **extra}, path)


def load_checkpoint(path) -> tuple[YoloNet, dict[str, Any]]:
    """Rebuild the model from a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != "rtv.yolo.v1":
        raise ModelError(f"{path}: not an rtv YOLO checkpoint (no format 'rtv.yolo.v1'); train one with "
                         "'rtv train detector'")
    model = YoloNet(YoloConfig.from_dict(data["config"]))
    model.load_state_dict(data["model"])
    model.eval()
    return model, data
