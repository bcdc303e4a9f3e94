"""Read a network that dlib's DNN module serialised (``dlib::serialize(net, file)``), without dlib.

Written from the format as dlib documents and implements it (``dlib/serialize.h``, ``dlib/dnn/core.h``,
``dlib/dnn/layers.h``, ``dlib/cuda/tensor.h``):

* integers: one control byte (bit 7: negative, low 4 bits: byte count n >= 1) then n little-endian magnitude bytes;
* floats/doubles: integer mantissa then integer exponent, value ``mantissa * 2**exponent`` (exponents 32000,
  32001, 32002 mean +inf, -inf, NaN);
* strings: integer length then bytes; bools: the ASCII byte ``'1'`` or ``'0'``;
* tensors: integer version 2, then num_samples, k, nr, nc, then raw little-endian float32 values;
* a network nests its layers as C++ types do, outermost first: every wrapper writes its version integer and then
  its sub-network *before* its own details, so the file holds all version integers (outermost first), then the
  input layer, then the layer details from the input towards the output.

A network is read against a *layout* (the expected layers from input to output), so a file that holds another
architecture fails with a message naming the layer index, what was expected and what was found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Layer kinds a layout may use. "tag" and "skip" are dlib's add_tag_layer / add_skip_layer wrappers;
# every other kind is an add_layer holding that layer's details.
KINDS = ("input_rgb_image_sized", "con", "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc", "tag", "skip",
         "loss_metric")
_INF, _NINF, _NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The file is not a dlib network of the expected layout (truncated, other version, other architecture).

    ``models/`` does not import ``realtime/``; ``export/`` turns this into ``realtime.errors.ExportError``.
    """


@dataclass(frozen=True)
class LayerSpec:
    """One expected layer. ``attrs`` are values the file must hold (e.g. ``num_filters``, ``nr``, ``stride_y``)."""

    kind: str
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DlibLayer:
    """One layer as read: its kind, the version string dlib wrote, scalar attributes and float32 arrays."""

    kind: str
    version: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class DlibReader:
    """Sequential reader of dlib's primitive encodings over an in-memory byte string."""

    def __init__(self, data: bytes, source: str = "dlib file"):
        self.data = memoryview(data)
        self.pos = 0
        self.source = source

    def _fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: {what} at byte {self.pos} of {len(self.data)}")

    def _take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise self._fail(f"file ends while reading {what} (needs {n} more bytes; truncated or not a dlib file)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def read_int(self, what: str = "an integer") -> int:
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self._fail(f"bad integer control byte 0x{control:02x} while reading {what}")
        value = int.from_bytes(bytes(self._take(size, what)), "little")
        return -value if control & 0x80 else value

    def read_float(self, what: str = "a float") -> float:
        mantissa = self.read_int(f"{what} (mantissa)")
        exponent = self.read_int(f"{what} (exponent)")
        if exponent == _INF:
            return math.inf
        if exponent == _NINF:
            return -math.inf
        if exponent == _NAN:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self, what: str = "a bool") -> bool:
        byte = self._take(1, what)[0]
        if byte not in (ord("0"), ord("1")):
            raise self._fail(f"expected '0' or '1' for {what}, found byte 0x{byte:02x}")
        return byte == ord("1")

    def read_string(self, what: str = "a string") -> str:
        size = self.read_int(f"length of {what}")
        if size < 0 or size > 4096:
            raise self._fail(f"implausible length {size} for {what}")
        raw = bytes(self._take(size, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise self._fail(f"{what} is not ASCII ({raw[:32]!r})") from exc

    def read_tensor(self, what: str = "a tensor") -> np.ndarray:
        """A dlib resizable_tensor -> float32 (num_samples, k, nr, nc)."""
        version = self.read_int(f"version of {what}")
        if version != 2:
            raise self._fail(f"{what} has tensor version {version}, expected 2")
        shape = tuple(self.read_int(f"shape of {what}") for _ in range(4))
        if any(s < 0 for s in shape):
            raise self._fail(f"{what} has negative shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        raw = self._take(4 * count, f"{count} float32 values of {what}")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_shape(self, what: str = "an alias tensor") -> tuple[int, int, int, int]:
        version = self.read_int(f"version of {what}")
        if version != 1:
            raise self._fail(f"{what} has alias_tensor version {version}, expected 1")
        return tuple(self.read_int(f"shape of {what}") for _ in range(4))  # type: ignore[return-value]

    def expect_string(self, allowed: Sequence[str], what: str) -> str:
        found = self.read_string(what)
        if found not in allowed:
            raise self._fail(f"expected {what} to be one of {list(allowed)}, found {found!r}")
        return found


def _split(params: np.ndarray, shapes: Sequence[tuple[int, ...]], reader: DlibReader, what: str) -> list[np.ndarray]:
    """Cut the flat parameter tensor into consecutive pieces of ``shapes`` (dlib's alias tensors)."""
    flat = params.reshape(-1)
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != flat.size:
        raise reader._fail(f"{what}: parameter tensor holds {flat.size} values, its parts need {sum(sizes)}")
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[start:start + size].reshape(shape).copy())
        start += size
    return out


def _read_details(reader: DlibReader, kind: str, what: str) -> DlibLayer:
    """The details block of one layer kind (what ``serialize(layer_details)`` wrote)."""
    if kind == "input_rgb_image_sized":
        version = reader.expect_string(["input_rgb_image_sized"], f"{what} name")
        means = tuple(reader.read_float(f"{what} channel mean") for _ in range(3))
        nr, nc = reader.read_int(f"{what} rows"), reader.read_int(f"{what} columns")
        return DlibLayer(kind, version, {"mean_rgb": means, "nr": nr, "nc": nc})
    if kind in ("max_pool", "avg_pool"):
        version = reader.expect_string([f"{kind}_2"], f"{what} name")
        keys = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return DlibLayer(kind, version, {k: reader.read_int(f"{what} {k}") for k in keys})
    if kind == "relu":
        version = reader.expect_string(["relu_", "relu_2"], f"{what} name")
        attrs = {"disabled": reader.read_bool(f"{what} disabled")} if version == "relu_2" else {}
        return DlibLayer(kind, version, attrs)
    if kind == "add_prev":
        return DlibLayer(kind, reader.expect_string(["add_prev_"], f"{what} name"))
    if kind == "con":
        version = reader.expect_string(["con_4", "con_5", "con_6"], f"{what} name")
        params = reader.read_tensor(f"{what} parameters")
        keys = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        attrs: dict[str, Any] = {k: reader.read_int(f"{what} {k}") for k in keys}
        filters_shape = reader.read_alias_shape(f"{what} filters")
        biases_shape = reader.read_alias_shape(f"{what} biases")
        for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            reader.read_float(f"{what} {name}")
        attrs["use_bias"] = reader.read_bool(f"{what} use_bias") if version in ("con_5", "con_6") else True
        if version == "con_6":
            attrs["use_relu"] = reader.read_bool(f"{what} use_relu")
        shapes = [filters_shape] + ([biases_shape] if attrs["use_bias"] else [])
        parts = _split(params, shapes, reader, what)
        arrays = {"filters": parts[0]}
        if attrs["use_bias"]:
            arrays["biases"] = parts[1].reshape(-1)
        return DlibLayer(kind, version, attrs, arrays)
    if kind == "affine":
        version = reader.expect_string(["affine_", "affine_2"], f"{what} name")
        params = reader.read_tensor(f"{what} parameters")
        gamma_shape = reader.read_alias_shape(f"{what} gamma")
        beta_shape = reader.read_alias_shape(f"{what} beta")
        attrs = {"mode": reader.read_int(f"{what} mode")}
        if version == "affine_2":
            attrs["disabled"] = reader.read_bool(f"{what} disabled")
        gamma, beta = _split(params, [gamma_shape, beta_shape], reader, what)
        return DlibLayer(kind, version, attrs, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})
    if kind == "fc":
        version = reader.expect_string(["fc_2", "fc_3"], f"{what} name")
        attrs = {"num_outputs": reader.read_int(f"{what} num_outputs"), "num_inputs": reader.read_int(f"{what} num_inputs")}
        params = reader.read_tensor(f"{what} parameters")
        weights_shape = reader.read_alias_shape(f"{what} weights")
        biases_shape = reader.read_alias_shape(f"{what} biases")
        attrs["bias_mode"] = reader.read_int(f"{what} bias mode")  # 0: with bias, 1: no bias
        for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
            reader.read_float(f"{what} {name}")
        flag = reader.read_bool(f"{what} use_bias") if version == "fc_3" else True
        use_bias = attrs["bias_mode"] == 0 and flag
        attrs["use_bias"] = use_bias
        shapes = [weights_shape] + ([biases_shape] if use_bias else [])
        parts = _split(params, shapes, reader, what)
        # dlib computes output = input (N, num_inputs) @ weights (num_inputs, num_outputs).
        arrays = {"weights": parts[0].reshape(attrs["num_inputs"], attrs["num_outputs"])}
        if use_bias:
            arrays["biases"] = parts[1].reshape(-1)
        return DlibLayer(kind, version, attrs, arrays)
    if kind == "loss_metric":
        version = reader.expect_string(["loss_metric_2"], f"{what} name")
        return DlibLayer(kind, version, {"margin": reader.read_float(f"{what} margin"),
                                         "dist_thresh": reader.read_float(f"{what} distance threshold")})
    raise DlibFormatError(f"layout asks for unknown layer kind {kind!r}; known kinds: {', '.join(KINDS)}")


def _check_attrs(layer: DlibLayer, spec: LayerSpec, index: int, source: str) -> None:
    for key, expected in spec.attrs.items():
        found = layer.attrs.get(key)
        if found != expected:
            raise DlibFormatError(f"{source}: layer {index} ({spec.kind}) should have {key}={expected!r}, "
                                  f"the file has {key}={found!r}; the file holds another architecture")


def read_dlib_net(path: Path | str, layout: Sequence[LayerSpec]) -> list[DlibLayer]:
    """Parse a serialised ``add_loss_layer<LOSS, ...<input>>`` network laid out as ``layout``.

    ``layout``: the layers from input to output: ``layout[0]`` must be an input layer, ``layout[1]`` the layer
    directly on it (dlib's add_layer specialisation for an input), ``layout[-1]`` the loss. Returns one
    :class:`DlibLayer` per layout entry, in the same order (tags and skips come back as empty records).
    Raises :class:`DlibFormatError` naming the byte offset, the layer and what was expected versus found.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DlibFormatError(f"cannot read dlib network file {path}: {exc}") from exc
    source = str(path)
    if len(layout) < 3 or layout[0].kind != "input_rgb_image_sized" or layout[-1].kind != "loss_metric":
        raise DlibFormatError("layout must start with input_rgb_image_sized and end with loss_metric")
    if layout[1].kind in ("tag", "skip"):
        raise DlibFormatError("layout: the layer on the input must be an add_layer, not a tag or skip")
    reader = DlibReader(data, source)
    body = list(layout[1:-1])  # add_layer / tag / skip wrappers, input -> output

    loss_version = reader.read_int("loss layer version")
    if loss_version != 1:
        raise reader._fail(f"loss layer version is {loss_version}, expected 1 (is this a dlib DNN file?)")
    loss = _read_details(reader, "loss_metric", "loss layer")
    # Version integers of every wrapper, outermost first.
    versions: list[int] = [0] * len(body)
    for i in range(len(body) - 1, -1, -1):
        spec = body[i]
        what = f"layer {i + 1} ({spec.kind}) version"
        version = reader.read_int(what)
        if spec.kind in ("tag", "skip"):
            allowed: tuple[int, ...] = (1,)
        else:
            allowed = (2, 3) if i == 0 else (1, 2)
        if version not in allowed:
            raise reader._fail(f"{what} is {version}, expected one of {allowed}; the file holds another "
                               "architecture or dlib version")
        versions[i] = version
    layers: list[DlibLayer] = [_read_details(reader, "input_rgb_image_sized", "input layer")]
    _check_attrs(layers[0], layout[0], 0, source)
    for i, spec in enumerate(body):
        index = i + 1
        if spec.kind in ("tag", "skip"):
            layers.append(DlibLayer(spec.kind, str(versions[i]), dict(spec.attrs)))
            continue
        layer = _read_details(reader, spec.kind, f"layer {index} ({spec.kind})")
        _check_attrs(layer, spec, index, source)
        for name in ("setup_called", "gradient_input_is_stale", "output_and_gradient_disabled"):
            reader.read_bool(f"layer {index} flag {name}")
        reader.read_tensor(f"layer {index} x_grad")
        reader.read_tensor(f"layer {index} cached_output")
        if i == 0 or versions[i] == 2:
            reader.read_tensor(f"layer {index} params_grad")
        if i == 0 and versions[i] == 3:
            reader.read_int(f"layer {index} sample_expansion_factor")
        layers.append(layer)
    _check_attrs(loss, layout[-1], len(layout) - 1, source)
    layers.append(loss)
    if reader.pos != len(data):
        raise DlibFormatError(f"{source}: {len(data) - reader.pos} bytes left after the last layer; "
                              "the file holds a larger network than the layout")
    return layers
