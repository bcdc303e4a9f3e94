"""A darknet ``.cfg`` file as a PyTorch network (our reader; no darknet code).

Layers, with darknet's semantics (``parser.c`` and the ``*_layer.c`` files of pjreddie/darknet, as documented there):

* ``[net]``: ``width``, ``height``, ``channels`` (the size the weights were trained for; the graph takes others).
* ``[convolutional]``: ``filters``, ``size``, ``stride``, ``pad`` (1: padding = size // 2) or ``padding``,
  ``groups``, ``batch_normalize``, ``activation`` in leaky (slope 0.1), linear, mish, relu, logistic. Batch norm in
  darknet divides by ``sqrt(var) + 1e-6`` (not ``sqrt(var + eps)``): the importer stores
  ``running_var = (sqrt(var) + 1e-6) ** 2`` in a ``BatchNorm2d`` with ``eps = 0``, which gives that denominator.
* ``[maxpool]``: ``size``, ``stride``, ``padding`` (TOTAL padding, default ``size - 1``): the window starts
  ``padding // 2`` before the input, so the extra pixel goes right/bottom; out = (in + padding - size) // stride + 1;
  padded cells never win. So size 2, stride 1 keeps the size ("same") by padding one column on the right only.
* ``[upsample]``: nearest neighbour by ``stride``, times ``scale`` (default 1).
* ``[route]``: ``layers`` (negative: relative to this layer; else absolute index), concatenated on channels;
  ``groups`` / ``group_id`` take channel slice ``group_id`` of ``groups`` from each input.
* ``[shortcut]``: ``from`` (relative or absolute) added to the previous output, then ``activation``.
* ``[yolo]``: ``mask``, ``anchors`` (pixels of the network input), ``classes``; output = the previous layer's raw
  map (N, len(mask) * (5 + classes), H, W), fields per anchor tx, ty, tw, th, obj, classes (``yolov3_nchw``).
* ``[region]`` (YOLOv2): ``anchors`` in grid cells, ``num``, ``classes``, ``softmax``; raw map likewise
  (``yolov2_nchw``; anchors are converted to pixels with the head's stride).

:class:`DarknetNet` returns the raw maps of its heads, in cfg order; decoding is ``realtime.detect.yolo.decode_yolo``'s.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from realtime.errors import ModelError

ACTIVATIONS = ("leaky", "linear", "mish", "relu", "logistic")
LAYER_KINDS = ("convolutional", "maxpool", "upsample", "route", "shortcut", "yolo", "region")
# Options that change a layer's maths in ways this reader does not implement: refused, never ignored.
UNSUPPORTED = {
    "convolutional": {"binary": "0", "xnor": "0", "dilation": "1", "deform": "0", "share_index": None,
                      "antialiasing": "0"},
    "maxpool": {"maxpool_depth": "0", "antialiasing": "0"},
    "shortcut": {"weights_type": "none"},
    "yolo": {"new_coords": "0"},
    "route": {},
    "upsample": {},
    "region": {},
}
BN_DENOM_EPS = 1e-6  # darknet: (x - mean) / (sqrt(var) + .000001)
MAX_CFG_BYTES = 1 << 20          # a cfg is text of a few kB; yolov4's is 12 kB
MAX_NAMES_BYTES = 1 << 20
MAX_CLASS_NAME_CHARS = 200
MAX_KERNEL = 64                  # conv kernels and maxpool windows (darknet's are 1-13)
MEMORY_BUDGET_BYTES = 4 << 30    # float32 parameters + every layer's output at the input size, checked per layer
                                 # before anything is allocated (yolov3 at 416: ~0.25 GB + ~0.3 GB)


def regular_file_stat(path: Path, what: str) -> os.stat_result:
    """``os.stat`` of ``path`` (the ``what`` of a model: "darknet cfg", "darknet weights"); :class:`ModelError`
    when it cannot be read or is not a regular file (a device such as /dev/zero, a FIFO, a folder)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ModelError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{what} {path} is not a regular file (a device, pipe or folder); give the file itself")
    return st


def read_bounded(path: Path | str, what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; :class:`ModelError` for anything else (a device such
    as /dev/zero, a FIFO, a folder, a bigger file), checked before reading."""
    path = Path(path)
    st = regular_file_stat(path, what)
    if st.st_size > max_bytes:
        raise ModelError(f"{what} {path} is {st.st_size} bytes, more than the {max_bytes} a {what} may be")
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ModelError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ModelError(f"{what} {path} grew past {max_bytes} bytes while it was read")
    return data


@dataclass(frozen=True)
class Section:
    """One ``[kind]`` block of a cfg: its options as written (strings) and the line it starts on."""

    kind: str
    options: Mapping[str, str]
    line: int


def parse_cfg(text: str, source: str = "cfg") -> list[Section]:
    """Darknet cfg text -> sections in order. ``#`` and ``;`` start comments; the first section must be ``[net]``.

    Raises :class:`ModelError` naming ``source`` and the line for anything that is not ``[kind]`` or
    ``key=value``, a key before the first section, or a repeated key.
    """
    sections: list[tuple[str, dict[str, str], int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ModelError(f"{source}:{number}: bad section header {raw.strip()!r}")
            sections.append((line[1:-1].strip().lower(), {}, number))
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ModelError(f"{source}:{number}: expected 'key=value' or '[section]', got {raw.strip()!r}")
        if not sections:
            raise ModelError(f"{source}:{number}: option {key.strip()!r} before the first [section]")
        options = sections[-1][1]
        key = key.strip()
        if key in options:
            raise ModelError(f"{source}:{number}: option {key!r} given twice in [{sections[-1][0]}]")
        options[key] = value.strip()
    if not sections or sections[0][0] not in ("net", "network"):
        raise ModelError(f"{source}: a darknet cfg starts with a [net] section")
    return [Section(kind, dict(options), line) for kind, options, line in sections]


class _Options:
    """Typed access to a section's options with errors that name the file, line and key."""

    def __init__(self, section: Section, source: str):
        self.section = section
        self.where = f"{source}:{section.line} [{section.kind}]"

    def _get(self, key: str) -> str | None:
        return self.section.options.get(key)

    def int(self, key: str, default: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ModelError(f"{self.where}: needs option {key!r}")
            return default
        try:
            return int(value)
        except ValueError:
            raise ModelError(f"{self.where}: {key}={value!r} is not an integer") from None

    def float(self, key: str, default: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise ModelError(f"{self.where}: {key}={value!r} is not a number") from None

    def str(self, key: str, default: str) -> str:
        value = self._get(key)
        return default if value is None else value

    def ints(self, key: str, default: Sequence[int] | None = None) -> list[int]:
        return [int(round(v)) for v in self.floats(key, default)]

    def floats(self, key: str, default: Sequence[float] | None = None) -> list[float]:
        value = self._get(key)
        if value is None:
            if default is None:
                raise ModelError(f"{self.where}: needs option {key!r}")
            return list(default)
        try:
            return [float(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise ModelError(f"{self.where}: {key}={value!r} is not a comma-separated list of numbers") from None

    def refuse_unsupported(self) -> None:
        for key, neutral in UNSUPPORTED.get(self.section.kind, {}).items():
            value = self._get(key)
            if value is not None and (neutral is None or value.strip().lower() != neutral):
                raise ModelError(f"{self.where}: option {key}={value} is not supported by rtv's darknet reader")


def _activation(name: str, where: str) -> nn.Module:
    if name == "leaky":
        return nn.LeakyReLU(0.1)
    if name == "linear":
        return nn.Identity()
    if name == "mish":
        return nn.Mish()
    if name == "relu":
        return nn.ReLU()
    if name == "logistic":
        return nn.Sigmoid()
    raise ModelError(f"{where}: activation {name!r} is not one of {', '.join(ACTIVATIONS)}")


class DarknetBatchNorm(nn.BatchNorm2d):
    """Batch norm whose stored ``running_var`` already holds darknet's ``(sqrt(var) + 1e-6) ** 2`` (eps 0 in eval);
    while training it uses PyTorch's eps 1e-5 for the batch statistics (eps 0 is refused there)."""

    TRAIN_EPS = 1e-5

    def __init__(self, num_features: int):
        super().__init__(num_features, eps=self.TRAIN_EPS)  # modules start in training mode

    def train(self, mode: bool = True):
        self.eps = self.TRAIN_EPS if mode else 0.0
        return super().train(mode)


class ConvLayer(nn.Module):
    """``[convolutional]``: conv (bias only without batch norm), optional batch norm, activation."""

    def __init__(self, c_in: int, filters: int, size: int, stride: int, padding: int, groups: int,
                 batch_normalize: bool, activation: str, where: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, filters, size, stride, padding, groups=groups, bias=not batch_normalize)
        self.bn = DarknetBatchNorm(filters) if batch_normalize else None
        self.activation_name = activation
        self.act = _activation(activation, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class MaxPoolLayer(nn.Module):
    """``[maxpool]`` with darknet's total ``padding``: ``padding // 2`` before, the rest after, padded cells -inf.

    With size 2, stride 2 and the default padding 1 nothing is padded before and this equals ceil-mode pooling, which
    exports as one ONNX MaxPool; otherwise the input is edge-padded first (same maxima as -inf padding whenever
    every window holds an input cell, which the cfg check ensures)."""

    def __init__(self, size: int, stride: int, padding: int):
        super().__init__()
        self.size, self.stride, self.padding = size, stride, padding
        self.before, self.after = padding // 2, padding - padding // 2
        self.ceil = stride == size and padding == size - 1 and self.before == 0  # size 2: nothing before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.ceil:
            return F.max_pool2d(x, self.size, self.stride, ceil_mode=True)
        if self.padding:  # edge replication: a window that reaches into the padding also holds the edge cell it
            # copies, so the max is darknet's (padded cells never win); unlike -inf it keeps INT8 calibration finite
            x = F.pad(x, (self.before, self.after, self.before, self.after), mode="replicate")
        return F.max_pool2d(x, self.size, self.stride)


class UpsampleLayer(nn.Module):
    """``[upsample]``: nearest neighbour by an integer ``stride``, times ``scale``."""

    def __init__(self, stride: int, scale: float):
        super().__init__()
        self.stride, self.scale = stride, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return x * self.scale if self.scale != 1.0 else x


class RouteLayer(nn.Module):
    """``[route]``: channel slice ``group_id`` of ``groups`` of each source output, concatenated."""

    def __init__(self, sources: Sequence[int], groups: int, group_id: int, channels: Sequence[int]):
        super().__init__()
        self.sources = tuple(sources)
        self.groups, self.group_id = groups, group_id
        self.slices = tuple((group_id * (c // groups), (group_id + 1) * (c // groups)) for c in channels)

    def forward(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        parts = [outputs[i] if self.groups == 1 else outputs[i][:, a:b]
                 for i, (a, b) in zip(self.sources, self.slices)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class ShortcutLayer(nn.Module):
    """``[shortcut]``: previous output + output of layer ``source``, then the activation."""

    def __init__(self, source: int, activation: str, where: str):
        super().__init__()
        self.source = source
        self.act = _activation(activation, where)

    def forward(self, previous: torch.Tensor, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.act(previous + outputs[self.source])


class HeadLayer(nn.Module):
    """``[yolo]`` or ``[region]``: passes the raw map through; the decode lives in ``realtime.detect.yolo``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(frozen=True)
class HeadSpec:
    """One detection head. ``anchors_wh``: its anchors in network-input pixels; ``stride``: input px per cell;
    ``layout``: ``yolov3_nchw`` ([yolo]) or ``yolov2_nchw`` ([region], softmax classes)."""

    kind: str
    layer: int
    anchors_wh: tuple[tuple[float, float], ...]
    stride: int
    num_classes: int
    layout: str
    scale_x_y: float = 1.0
    softmax: bool = False


class DarknetNet(nn.Module):
    """The network a darknet cfg describes. ``forward``: float32 (N, C, H, W), RGB in [0, 1] -> tuple of raw head
    maps (N, A * (5 + classes), H / stride, W / stride), one per [yolo]/[region] section, in cfg order.

    ``width``, ``height``, ``channels``: from [net]; ``heads``: :class:`HeadSpec` per head; ``shapes``: (C, H, W)
    of every layer's output at the [net] size.
    """

    def __init__(self, sections: Sequence[Section], source: str = "cfg", img_size: int | None = None,
                 budget_bytes: int = MEMORY_BUDGET_BYTES):
        super().__init__()
        self._budget = int(budget_bytes)
        self._params = 0
        self._activations = 0
        if not sections or sections[0].kind not in ("net", "network"):
            raise ModelError(f"{source}: a darknet cfg starts with a [net] section")
        net = _Options(sections[0], source)
        self.source = source
        self.sections = tuple(sections)
        self.width, self.height = net.int("width", 416), net.int("height", 416)
        self.channels = net.int("channels", 3)
        if self.width <= 0 or self.height <= 0 or self.channels <= 0:
            raise ModelError(f"{net.where}: width, height and channels must be positive")
        # activations are counted at the larger of the [net] size and img_size (the export and parity sizes)
        self._scale = max(1.0, float(img_size or 0) ** 2 / (self.width * self.height))
        self.kinds: list[str] = []
        self.layers = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []
        heads: list[HeadSpec] = []
        shape = (self.channels, self.height, self.width)
        self._account(0, shape, net.where)
        for index, section in enumerate(sections[1:]):
            opts = _Options(section, source)
            if section.kind not in LAYER_KINDS:
                raise ModelError(f"{opts.where}: layer type [{section.kind}] (layer {index}) is not supported; "
                                 f"supported: {', '.join(LAYER_KINDS)}")
            opts.refuse_unsupported()
            layer, shape, head = self._build(section.kind, opts, index, shape)
            self.kinds.append(section.kind)
            self.layers.append(layer)
            self.shapes.append(shape)
            if head is not None:
                heads.append(head)
        if not heads:
            raise ModelError(f"{source}: no [yolo] or [region] section: not a detector")
        self.heads = tuple(heads)
        self._keep = {i for layer in self.layers for i in getattr(layer, "sources", ())}
        self._keep |= {layer.source for layer in self.layers if isinstance(layer, ShortcutLayer)}

    def _account(self, params: int, shape: tuple[int, int, int], where: str) -> None:
        """Add a layer's parameters and output to the running total; :class:`ModelError` past the memory budget,
        before the layer is allocated."""
        self._params += int(params)
        self._activations += int(shape[0]) * int(shape[1]) * int(shape[2])
        need = 4 * (self._params + self._activations * self._scale)
        if need > self._budget:
            raise ModelError(f"{where}: the cfg needs {need / 2**30:.3g} GiB ({self._params} parameters and "
                             f"{self._activations} activation values so far), more than the {self._budget / 2**30:g} "
                             "GiB memory budget for a darknet import; not a model rtv can run")

    @property
    def parameter_count(self) -> int:
        """float32 values the cfg's layers hold (= what a weights file must carry)."""
        return self._params

    def _source_index(self, value: int, index: int, opts: _Options, key: str) -> int:
        absolute = index + value if value < 0 else value
        if not 0 <= absolute < index:
            earlier = f"0..{index - 1}" if index else "none: it is the first layer"
            raise ModelError(f"{opts.where}: {key} {value} (layer {index}) points at layer {absolute}, which is not "
                             f"an earlier layer ({earlier})")
        return absolute

    def _build(self, kind: str, opts: _Options, index: int, shape: tuple[int, int, int]):
        c, h, w = shape
        where = f"{opts.where} (layer {index})"
        if kind == "convolutional":
            filters, size = opts.int("filters", 1), opts.int("size", 1)
            stride, groups = opts.int("stride", 1), opts.int("groups", 1)
            padding = size // 2 if opts.int("pad", 0) else opts.int("padding", 0)
            if size > MAX_KERNEL:
                raise ModelError(f"{where}: size={size}: a kernel larger than {MAX_KERNEL} is not a darknet model "
                                 "rtv can run")
            if filters < 1 or size < 1 or stride < 1 or groups < 1 or c % groups or filters % groups:
                raise ModelError(f"{where}: filters={filters}, size={size}, stride={stride}, groups={groups} do not "
                                 f"fit {c} input channels")
            bn = bool(opts.int("batch_normalize", 0))
            out = (filters, (h + 2 * padding - size) // stride + 1, (w + 2 * padding - size) // stride + 1)
            self._positive(out, where)
            self._account(filters * (c // groups) * size * size + filters * (4 if bn else 1), out, where)
            layer = ConvLayer(c, filters, size, stride, padding, groups, bn, opts.str("activation", "logistic"), where)
            return layer, out, None
        if kind == "maxpool":
            size = opts.int("size", 1)
            stride = opts.int("stride", 1)
            padding = opts.int("padding", size - 1)
            if size < 1 or stride < 1 or padding < 0:
                raise ModelError(f"{where}: size={size}, stride={stride}, padding={padding} must be positive")
            if padding // 2 >= size or padding - padding // 2 >= size:
                raise ModelError(f"{where}: padding={padding} with size={size} makes windows of padding only")
            if size > MAX_KERNEL:
                raise ModelError(f"{where}: size={size}: a window larger than {MAX_KERNEL} is not a darknet model "
                                 "rtv can run")
            out = (c, (h + padding - size) // stride + 1, (w + padding - size) // stride + 1)
            self._positive(out, where)
            self._account(0, (c, h + padding, w + padding), where)  # the padded copy the layer makes
            self._account(0, out, where)
            return MaxPoolLayer(size, stride, padding), out, None
        if kind == "upsample":
            stride = opts.int("stride", 2)
            if stride < 1:
                raise ModelError(f"{where}: stride={stride}: only upsampling by a positive integer is supported")
            self._account(0, (c, h * stride, w * stride), where)
            return UpsampleLayer(stride, opts.float("scale", 1.0)), (c, h * stride, w * stride), None
        if kind == "route":
            values = opts.ints("layers")
            if not values:
                raise ModelError(f"{where}: layers= is empty")
            sources = [self._source_index(v, index, opts, "layers") for v in values]
            groups, group_id = opts.int("groups", 1), opts.int("group_id", 0)
            if groups < 1 or not 0 <= group_id < groups:
                raise ModelError(f"{where}: groups={groups}, group_id={group_id}: need 0 <= group_id < groups")
            chans = [self.shapes[s][0] for s in sources]
            sizes = {self.shapes[s][1:] for s in sources}
            if len(sizes) != 1:
                raise ModelError(f"{where}: routed layers {sources} have different sizes "
                                 f"{[self.shapes[s][1:] for s in sources]}")
            if any(ch % groups for ch in chans):
                raise ModelError(f"{where}: channels {chans} are not divisible by groups={groups}")
            oh, ow = sizes.pop()
            self._account(0, (sum(ch // groups for ch in chans), oh, ow), where)
            return RouteLayer(sources, groups, group_id, chans), (sum(ch // groups for ch in chans), oh, ow), None
        if kind == "shortcut":
            values = opts.ints("from")
            if len(values) != 1:
                raise ModelError(f"{where}: from= must name one layer, got {values}")
            src = self._source_index(values[0], index, opts, "from")
            if index == 0:
                raise ModelError(f"{where}: a shortcut cannot be the first layer")
            if self.shapes[src] != shape:
                raise ModelError(f"{where}: from layer {src} has shape {self.shapes[src]}, the previous layer "
                                 f"{shape}; rtv's reader adds only equal shapes")
            self._account(0, shape, where)
            return ShortcutLayer(src, opts.str("activation", "linear"), where), shape, None
        # yolo / region heads
        classes = opts.int("classes", 20)
        anchors = opts.floats("anchors", [])
        if len(anchors) % 2:
            raise ModelError(f"{where}: anchors= holds an odd count of numbers ({len(anchors)})")
        pairs = [(anchors[i], anchors[i + 1]) for i in range(0, len(anchors), 2)]
        if h <= 0 or w <= 0 or self.height % h or self.width % w or self.height // h != self.width // w:
            raise ModelError(f"{where}: the {w}x{h} map does not divide the {self.width}x{self.height} input "
                             "into one integer stride")
        stride = self.width // w
        if kind == "yolo":
            num = opts.int("num", len(pairs))
            mask = opts.ints("mask", list(range(num)))
            if len(pairs) < num or any(not 0 <= m < len(pairs) for m in mask):
                raise ModelError(f"{where}: mask {mask} / num={num} do not fit the {len(pairs)} anchors given")
            chosen = tuple(pairs[m] for m in mask)
            layout, softmax = "yolov3_nchw", False
            scale_x_y = opts.float("scale_x_y", 1.0)
        else:
            num = opts.int("num", len(pairs))
            if opts.int("coords", 4) != 4:
                raise ModelError(f"{where}: coords={opts.int('coords', 4)}: only 4 box coordinates are supported")
            if len(pairs) != num:
                raise ModelError(f"{where}: num={num} but {len(pairs)} anchors given")
            chosen = tuple((aw * stride, ah * stride) for aw, ah in pairs)
            layout, softmax, scale_x_y = "yolov2_nchw", bool(opts.int("softmax", 0)), 1.0
        if not chosen:
            raise ModelError(f"{where}: no anchors")
        if c != len(chosen) * (5 + classes):
            raise ModelError(f"{where}: the previous layer has {c} channels; {len(chosen)} anchors x (5 + {classes} "
                             f"classes) need {len(chosen) * (5 + classes)}")
        head = HeadSpec(kind, index, chosen, stride, classes, layout, scale_x_y, softmax)
        return HeadLayer(), shape, head

    @staticmethod
    def _positive(shape: tuple[int, int, int], where: str) -> tuple[int, int, int]:
        if min(shape) < 1:
            raise ModelError(f"{where}: the output would be empty ({shape}) at the [net] input size")
        return shape

    def conv_layers(self) -> list[ConvLayer]:
        """The layers that hold weights, in file order."""
        return [layer for layer in self.layers if isinstance(layer, ConvLayer)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: list[torch.Tensor | None] = []
        results = []
        previous = x
        for index, layer in enumerate(self.layers):
            if isinstance(layer, RouteLayer):
                y = layer(outputs)
            elif isinstance(layer, ShortcutLayer):
                y = layer(previous, outputs)
            else:
                y = layer(previous)
            if isinstance(layer, HeadLayer):
                results.append(y)
            outputs.append(y if index in self._keep else None)
            previous = y
        return tuple(results)


def read_cfg(path: Path | str, img_size: int | None = None, budget_bytes: int = MEMORY_BUDGET_BYTES) -> DarknetNet:
    """Parse the cfg file at ``path`` (a regular file of at most :data:`MAX_CFG_BYTES`) into an untrained
    :class:`DarknetNet`, refusing one whose parameters and activations (at ``img_size`` when larger than the
    [net] size) exceed ``budget_bytes`` before allocating it; :class:`ModelError` if it is bad."""
    path = Path(path)
    text = read_bounded(path, "darknet cfg", MAX_CFG_BYTES).decode("utf-8", errors="replace")
    return DarknetNet(parse_cfg(text, str(path)), str(path), img_size=img_size, budget_bytes=budget_bytes)


def read_names(path: Path | str) -> tuple[str, ...]:
    """Class names, one per line (darknet's ``.names``); blank lines are dropped. A name must be printable text
    (no control, bidi or zero-width characters) of at most :data:`MAX_CLASS_NAME_CHARS` characters."""
    path = Path(path)
    try:
        lines = read_bounded(path, "class names file", MAX_NAMES_BYTES).decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ModelError(f"cannot read class names {path}: not UTF-8 text (byte {exc.start})") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise ModelError(f"{path}: holds no class names")
    for number, name in enumerate(names, start=1):
        if len(name) > MAX_CLASS_NAME_CHARS or not name.isprintable():
            shown = name[:40].encode("unicode_escape").decode("ascii")
            raise ModelError(f"{path}: class name {number} ({shown!r}) is not printable text of at most "
                             f"{MAX_CLASS_NAME_CHARS} characters (control, bidi or zero-width characters)")
    return names


def cfg_text(sections: Sequence[Section]) -> str:
    """Sections back to darknet cfg text (options in their original order)."""
    blocks = []
    for section in sections:
        blocks.append(f"[{section.kind}]\n" + "".join(f"{k}={v}\n" for k, v in section.options.items()))
    return "\n".join(blocks)


def with_classes(net: DarknetNet, num_classes: int) -> DarknetNet:
    """A copy of ``net`` whose heads predict ``num_classes`` classes (transfer learning): the conv feeding each head
    is resized to A * (5 + num_classes) filters and freshly initialised; every other layer keeps ``net``'s weights.
    Raises :class:`ModelError` when a head is not fed directly by a [convolutional] layer."""
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    sections = [Section(s.kind, dict(s.options), s.line) for s in net.sections]
    head_convs = set()
    for head in net.heads:
        conv_index = head.layer - 1
        if conv_index < 0 or net.kinds[conv_index] != "convolutional":
            raise ModelError(f"{net.source}: head at layer {head.layer} is not fed by a [convolutional] layer")
        head_convs.add(conv_index)
        sections[head.layer + 1].options["classes"] = str(num_classes)
        sections[conv_index + 1].options["filters"] = str(len(head.anchors_wh) * (5 + num_classes))
    new = DarknetNet(sections, net.source)
    state = {k: v for k, v in net.state_dict().items() if int(k.split(".")[1]) not in head_convs}
    missing, unexpected = new.load_state_dict(state, strict=False)
    if unexpected or any(int(k.split(".")[1]) not in head_convs for k in missing):
        raise ModelError(f"{net.source}: weights do not carry over to the {num_classes}-class network")
    for index in head_convs:
        conv = new.layers[index].conv
        nn.init.normal_(conv.weight, 0.0, 0.01)
        if conv.bias is not None:
            with torch.no_grad():
                conv.bias.zero_()
                fields = 5 + num_classes
                conv.bias.view(-1, fields)[:, 4] = -4.6  # objectness prior 0.01
    return new.train(net.training)


def backbone_layers(net: DarknetNet) -> list[int]:
    """Indices of the feature extractor: every layer up to the last downsampling one ([maxpool] or a strided
    [convolutional]) and the [convolutional] right after it; what follows (necks, heads) is trained first when
    fine-tuning with a frozen backbone."""
    last = max((i for i, (k, layer) in enumerate(zip(net.kinds, net.layers))
                if k == "maxpool" or (k == "convolutional" and layer.conv.stride[0] > 1)), default=-1)
    end = last + 1 if last + 1 < len(net.kinds) and net.kinds[last + 1] == "convolutional" else last
    return list(range(end + 1))


CHECKPOINT_FORMAT = "rtv.darknet.v1"


def save_darknet_checkpoint(path: Path | str, net: DarknetNet, classes: Sequence[str], **extra) -> None:
    """A state-dict checkpoint of a darknet network: its cfg text, class names, weights and ``extra``."""
    torch.save({"format": CHECKPOINT_FORMAT, "cfg": cfg_text(net.sections), "classes": list(classes),
                "model": net.state_dict(), **extra}, path)


def is_darknet_checkpoint(path: Path | str) -> bool:
    """Whether ``path`` is a readable checkpoint of format :data:`CHECKPOINT_FORMAT` (False for anything else,
    which the caller then reads as another checkpoint kind and reports on)."""
    import pickle

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return False
    return isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT


def load_darknet_checkpoint(path: Path | str) -> tuple[DarknetNet, tuple[str, ...], dict]:
    """Rebuild a :class:`DarknetNet` saved by :func:`save_darknet_checkpoint` (``weights_only=True``)."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path}: not an rtv darknet checkpoint (format {CHECKPOINT_FORMAT!r}); write one with "
                         "'rtv import darknet CFG WEIGHTS --checkpoint X.pt'")
    net = DarknetNet(parse_cfg(data["cfg"], str(path)), str(path))
    net.load_state_dict(data["model"])
    return net.eval(), tuple(data["classes"]), data
