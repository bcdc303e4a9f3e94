"""The model contract: what a network expects and produces, stored as JSON in the ONNX metadata.

``export/`` writes it (key :data:`CONTRACT_KEY`); ``realtime/`` reads and validates it when a session opens.
Network input is ``(pixel * scale - mean) / std`` in the contract's colour order, NCHW float32.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from realtime.errors import ModelError

CONTRACT_KEY = "rtv.contract"
SCHEMA_VERSION = 1
KINDS = ("yolo", "face_detector", "face_embedder", "style")
COLORS = ("rgb", "bgr")


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the network input.

    ``size_wh`` is the fixed network input (width, height), or ``None`` when the graph takes any size that is a
    multiple of ``size_multiple``; ``default_size_wh`` is then the size the runtime uses unless config says otherwise.
    ``pad_value``: the grey (0..255, before normalisation) that letterboxing pads with (darknet: 0.5 -> 128).
    """

    name: str
    size_wh: tuple[int, int] | None = None
    default_size_wh: tuple[int, int] | None = None
    size_multiple: int = 32
    color: str = "rgb"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    letterbox: bool = True
    pad_value: int = 114

    def working_size_wh(self) -> tuple[int, int]:
        """The (width, height) the runtime feeds: the fixed size, else the default size."""
        size = self.size_wh or self.default_size_wh
        if size is None:
            raise ModelError(f"contract input {self.name!r} has neither size_wh nor default_size_wh")
        return size


@dataclass(frozen=True)
class ModelContract:
    """Everything the runtime must know about a model and may not guess.

    ``anchors`` holds, per output scale, the anchor (w, h) pairs in network-input pixels; ``strides`` the matching
    strides. ``extra`` carries kind-specific values (e.g. a style list, the alignment template, provenance).
    """

    kind: str
    name: str
    input: InputSpec
    outputs: tuple[str, ...]
    classes: tuple[str, ...] = ()
    anchors: tuple[tuple[tuple[float, float], ...], ...] = ()
    strides: tuple[int, ...] = ()
    embedding_size: int | None = None
    output_layout: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["schema"] = SCHEMA_VERSION
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> "ModelContract":
        """Parse and validate; raise :class:`ModelError` that names the source and the bad or missing field."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: contract metadata is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise ModelError(f"{source}: contract metadata must be a JSON object")
        return contract_from_dict(data, source)


def _require(data: Mapping[str, Any], key: str, source: str, where: str = "") -> Any:
    if key not in data:
        raise ModelError(f"{source}: contract is missing {where}{key!r}")
    return data[key]


def _floats(value: Any, n: int, key: str, source: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ModelError(f"{source}: contract field {key!r} must be a list of {n} numbers, got {value!r}")
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{source}: contract field {key!r} must hold numbers, got {value!r}") from exc


def _size(value: Any, key: str, source: str) -> tuple[int, int] | None:
    if value is None:
        return None
    w, h = _floats(value, 2, key, source)
    if w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise ModelError(f"{source}: contract field {key!r} must be two positive integers, got {value!r}")
    return int(w), int(h)


def _pad_value(value: Any, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 255 or value != int(value):
        raise ModelError(f"{source}: contract field 'input.pad_value' must be an integer grey level 0..255, "
                         f"got {value!r}")
    return int(value)


def contract_from_dict(data: Mapping[str, Any], source: str = "model") -> ModelContract:
    """Build a :class:`ModelContract` from parsed JSON, checking every field the runtime relies on."""
    schema = data.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        raise ModelError(f"{source}: contract schema {schema!r} is not supported (expected {SCHEMA_VERSION})")
    kind = _require(data, "kind", source)
    if kind not in KINDS:
        raise ModelError(f"{source}: contract kind {kind!r} is not one of {', '.join(KINDS)}")
    raw_input = _require(data, "input", source)
    if not isinstance(raw_input, dict):
        raise ModelError(f"{source}: contract field 'input' must be an object")
    color = raw_input.get("color", "rgb")
    if color not in COLORS:
        raise ModelError(f"{source}: contract field 'input.color' must be 'rgb' or 'bgr', got {color!r}")
    std = _floats(raw_input.get("std", (1.0, 1.0, 1.0)), 3, "input.std", source)
    if any(s == 0 for s in std):
        raise ModelError(f"{source}: contract field 'input.std' must not contain 0")
    spec = InputSpec(
        name=str(_require(raw_input, "name", source, "input.")),
        size_wh=_size(raw_input.get("size_wh"), "input.size_wh", source),
        default_size_wh=_size(raw_input.get("default_size_wh"), "input.default_size_wh", source),
        size_multiple=int(raw_input.get("size_multiple", 32)),
        color=color,
        scale=float(raw_input.get("scale", 1.0 / 255.0)),
        mean=_floats(raw_input.get("mean", (0.0, 0.0, 0.0)), 3, "input.mean", source),
        std=std,
        letterbox=bool(raw_input.get("letterbox", True)),
        pad_value=_pad_value(raw_input.get("pad_value", 114), source),
    )
    if spec.size_wh is None and spec.default_size_wh is None:
        raise ModelError(f"{source}: contract needs 'input.size_wh' or 'input.default_size_wh'")
    outputs = tuple(str(o) for o in _require(data, "outputs", source))
    if not outputs:
        raise ModelError(f"{source}: contract field 'outputs' is empty")
    anchors = tuple(
        tuple(_floats(pair, 2, "anchors", source) for pair in scale) for scale in data.get("anchors", ())
    )
    strides = tuple(int(s) for s in data.get("strides", ()))
    classes = tuple(str(c) for c in data.get("classes", ()))
    embedding_size = data.get("embedding_size")
    if kind == "yolo":
        if not classes:
            raise ModelError(f"{source}: a yolo contract needs 'classes'")
        if not anchors or len(anchors) != len(strides):
            raise ModelError(f"{source}: a yolo contract needs 'anchors' and 'strides', one entry per output scale")
        if len(outputs) != len(strides):
            raise ModelError(f"{source}: a yolo contract needs one output per stride, got {len(outputs)} outputs")
    if kind == "face_embedder" and not isinstance(embedding_size, int):
        raise ModelError(f"{source}: a face_embedder contract needs an integer 'embedding_size'")
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise ModelError(f"{source}: contract field 'extra' must be an object")
    return ModelContract(
        kind=kind,
        name=str(data.get("name", kind)),
        input=spec,
        outputs=outputs,
        classes=classes,
        anchors=anchors,
        strides=strides,
        embedding_size=embedding_size,
        output_layout=str(data.get("output_layout", "")),
        extra=extra,
    )


def expected_output_dims(contract: ModelContract) -> list[dict[int, int]]:
    """Per contract output, the axis sizes the runtime relies on: ``{axis: size}`` (axis -1 is the last).

    ``face_embedder``: (N, embedding_size); ``yolo`` ``*_nchw``: (N, A*(5+C), H, W), ``*_nahwc``: (N, A, H, W, 5+C);
    ``face_detector`` (CenterFace): heatmap 1, scale 2, offset 2, landmarks 10 channels. Other kinds: no claim.
    The rank each kind needs is :func:`output_rank`.
    """
    if contract.kind == "face_embedder" and contract.embedding_size:
        return [{-1: int(contract.embedding_size)}] + [{} for _ in contract.outputs[1:]]
    if contract.kind == "yolo":
        fields = 5 + len(contract.classes)
        nahwc = (contract.output_layout or "yolov3_nchw").endswith("_nahwc")
        return [{1: len(anchors), 4: fields} if nahwc else {1: len(anchors) * fields}
                for anchors in contract.anchors]
    if contract.kind == "face_detector" and contract.extra.get("decode") == "centerface" and len(contract.outputs) == 4:
        return [{1: 1}, {1: 2}, {1: 2}, {1: 10}]
    return [{} for _ in contract.outputs]


def output_rank(contract: ModelContract) -> int | None:
    """The rank every output of ``contract`` must have, where the kind fixes it."""
    if contract.kind == "face_embedder":
        return 2
    if contract.kind == "yolo":
        return 5 if (contract.output_layout or "yolov3_nchw").endswith("_nahwc") else 4
    if contract.kind == "face_detector":
        return 4
    return None


def shape_disagreement(contract: ModelContract, index: int, shape: tuple) -> str | None:
    """Why output ``index`` of shape ``shape`` (ints, or None/str for dynamic axes) breaks ``contract``; None if
    it does not (dynamic axes are not judged)."""
    rank = output_rank(contract)
    if rank is not None and len(shape) != rank:
        return f"output {contract.outputs[index]!r} has rank {len(shape)} (shape {list(shape)}), expected {rank}"
    for axis, size in expected_output_dims(contract)[index].items():
        got = shape[axis] if -len(shape) <= axis < len(shape) else None
        if isinstance(got, int) and got != size:
            return (f"output {contract.outputs[index]!r} has {got} on axis {axis} (shape {list(shape)}), the "
                    f"contract means {size}")
    return None
