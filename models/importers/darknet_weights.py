"""Read darknet ``.weights`` into a :class:`models.darknet.DarknetNet` (our reader; no darknet code).

The format (darknet's ``load_weights``/``save_weights``): little-endian int32 ``major``, ``minor``, ``revision``,
then ``seen`` (images seen in training) as uint64 when ``major * 10 + minor >= 2`` (and both < 1000) else uint32,
then float32 values, layer by layer in cfg order. A ``[convolutional]`` layer holds ``biases`` (filters), then with
batch norm ``scales``, ``rolling_mean``, ``rolling_variance`` (filters each), then the kernel
(filters x channels / groups x size x size, the same order as a PyTorch ``Conv2d`` weight). No other layer type
we read holds weights. Every float must be consumed: a file with fewer or more values than the cfg needs is
refused with both counts (it belongs to another cfg, or is truncated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.darknet import BN_DENOM_EPS, ConvLayer, DarknetNet, read_cfg, regular_file_stat
from realtime.errors import ModelError


@dataclass(frozen=True)
class WeightsHeader:
    """``major.minor.revision`` and ``seen``; ``header_bytes``: 20 (64-bit seen) or 16 (32-bit)."""

    major: int
    minor: int
    revision: int
    seen: int
    header_bytes: int

    def to_dict(self) -> dict[str, int]:
        return {"major": self.major, "minor": self.minor, "revision": self.revision, "seen": self.seen}


def seen_is_64bit(major: int, minor: int) -> bool:
    """Darknet writes ``seen`` as 64 bits from version 0.2 on (``major * 10 + minor >= 2``)."""
    return major * 10 + minor >= 2 and major < 1000 and minor < 1000


def check_weights_size(path: Path | str, expected_floats: int) -> WeightsHeader:
    """The header of a ``.weights`` file and its size against ``expected_floats``, without reading the body."""
    return read_weights_file(path, expected_floats, header_only=True)[0]


def read_weights_file(path: Path | str, expected_floats: int | None = None, header_only: bool = False) -> tuple[WeightsHeader, np.ndarray]:
    """Header and all float32 values of a ``.weights`` file (a regular file: a device or a FIFO is refused).
    Raises :class:`ModelError` when the file is too short for a header, its body is not a whole number of float32
    values, or (``expected_floats``) its size is not what the cfg needs - checked from the file's size before the
    body is read, so a huge or sparse file is never read whole."""
    path = Path(path)
    st = regular_file_stat(path, "darknet weights")
    try:
        with open(path, "rb") as fh:
            head = fh.read(20)
            if len(head) < 16:
                raise ModelError(f"{path}: {len(head)} bytes is too short for a darknet weights header (16 or 20 "
                                 "bytes)")
            major, minor, revision = (int(v) for v in np.frombuffer(head, "<i4", 3))
            wide = seen_is_64bit(major, minor)
            header_bytes = 20 if wide else 16
            if len(head) < header_bytes:
                raise ModelError(f"{path}: {len(head)} bytes is too short for a version {major}.{minor} header "
                                 f"({header_bytes} bytes)")
            seen = int(np.frombuffer(head, "<u8" if wide else "<u4", 1, offset=12)[0])
            body = st.st_size - header_bytes
            if body % 4:
                raise ModelError(f"{path}: {body} bytes after the {header_bytes}-byte header is not a whole number "
                                 "of float32 values (truncated or not a darknet weights file)")
            if expected_floats is not None and body // 4 != expected_floats:
                what = ("truncated or for a smaller cfg" if body // 4 < expected_floats
                        else "extra values: for a larger cfg")
                raise ModelError(f"{path}: the cfg needs {expected_floats} float32 weights after the header but the "
                                 f"file holds {body // 4} ({what}); use the .cfg the weights were trained with")
            header = WeightsHeader(major, minor, revision, seen, header_bytes)
            if header_only:
                return header, np.zeros(0, np.float32)
            fh.seek(header_bytes)
            data = fh.read(body + 1)
    except OSError as exc:
        raise ModelError(f"cannot read darknet weights {path}: {exc.strerror or exc}") from None
    if len(data) != body:
        raise ModelError(f"{path} changed size while it was read")
    return header, np.frombuffer(data, "<f4", body // 4)


def expected_floats(net: DarknetNet) -> int:
    """How many float32 values ``net``'s weights file must hold."""
    total = 0
    for layer in net.conv_layers():
        total += layer.conv.weight.numel() + layer.conv.out_channels * (4 if layer.bn is not None else 1)
    return total


def load_darknet_weights(net: DarknetNet, path: Path | str) -> WeightsHeader:
    """Fill ``net`` (in place) from the weights file at ``path``; returns its header.

    Raises :class:`ModelError` saying how many floats were expected and found when the counts differ, or when a
    batch-norm variance is negative or a value is not finite.
    """
    want = expected_floats(net)
    header, values = read_weights_file(path, want)
    if len(values) != want:
        what = "truncated or for a smaller cfg" if len(values) < want else "extra values: for a larger cfg"
        raise ModelError(f"{path}: the cfg needs {want} float32 weights after the header but the file holds "
                         f"{len(values)} ({what}); use the .cfg the weights were trained with")
    if not np.isfinite(values).all():
        raise ModelError(f"{path}: holds {int((~np.isfinite(values)).sum())} non-finite weights")
    offset = 0

    def take(n: int) -> np.ndarray:
        nonlocal offset
        chunk = values[offset:offset + n]
        offset += n
        return chunk

    with torch.no_grad():
        for index, layer in enumerate(net.conv_layers()):
            _fill_conv(layer, take, path, index)
    return header


def _fill_conv(layer: ConvLayer, take, path: Path | str, index: int) -> None:
    filters = layer.conv.out_channels
    biases = take(filters)
    if layer.bn is not None:
        scales, mean, var = take(filters), take(filters), take(filters)
        if (var < 0).any():
            raise ModelError(f"{path}: convolutional layer {index} has a negative batch-norm variance")
        layer.bn.weight.copy_(torch.from_numpy(scales.copy()))
        layer.bn.bias.copy_(torch.from_numpy(biases.copy()))
        layer.bn.running_mean.copy_(torch.from_numpy(mean.copy()))
        denom = np.sqrt(var.astype(np.float64)) + BN_DENOM_EPS
        layer.bn.running_var.copy_(torch.from_numpy((denom * denom).astype(np.float32)))
    else:
        layer.conv.bias.copy_(torch.from_numpy(biases.copy()))
    weight = take(layer.conv.weight.numel())
    layer.conv.weight.copy_(torch.from_numpy(weight.reshape(layer.conv.weight.shape).copy()))


def load_darknet(cfg_path: Path | str, weights_path: Path | str,
                 img_size: int | None = None) -> tuple[DarknetNet, WeightsHeader]:
    """A :class:`DarknetNet` built from ``cfg_path`` with the weights of ``weights_path``, in eval mode (the cfg is
    checked against the memory budget at ``img_size`` before anything is allocated)."""
    net = read_cfg(cfg_path, img_size)
    header = load_darknet_weights(net, weights_path)
    return net.eval(), header
