"""Typed, validated, frozen configuration.

``config.yaml`` -> ``yaml.safe_load`` -> ``--set a.b=v`` overrides -> frozen dataclasses, one section per stage.
Unknown keys and bad values raise :class:`ConfigError` naming the dotted key and the value. Relative paths resolve
against the config file's folder. Defaults live here, in code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from realtime.errors import ConfigError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _path() -> dict[str, Any]:
    return {"path": True}


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from. ``uri``: camera index ("0"), video file, rtsp/http URL, image folder or glob."""

    uri: str = "0"
    policy: str = field(default="auto", metadata=_choices("auto", "latest", "every"))
    queue_size: int = 8
    pace: bool = False
    width: int = 0
    height: int = 0
    fps: float = 30.0
    reconnect_attempts: int = 5
    reconnect_backoff_s: float = 0.5
    reconnect_backoff_max_s: float = 8.0
    read_timeout_s: float = 10.0


@dataclass(frozen=True)
class RuntimeConfig:
    """ONNX Runtime and thread settings. Defaults keep ORT, OpenCV and numpy from fighting over 2 cores."""

    providers: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda", "require-gpu"))
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    opencv_threads: int = 1
    graph_optimization: str = field(default="all", metadata=_choices("all", "extended", "basic", "none"))


@dataclass(frozen=True)
class DetectorConfig:
    """Object detection (YOLO grid/anchor). ``model`` empty means the shipped default, if one ships."""

    enabled: bool = True
    model: str = field(default="", metadata=_path())
    input_size: tuple[int, int] | None = None
    score_threshold: float = 0.5
    iou_threshold: float = 0.45
    class_aware: bool = True
    max_candidates: int = 1000
    max_detections: int = 100


@dataclass(frozen=True)
class FacesConfig:
    """Face detection, alignment, embedding and gallery search."""

    enabled: bool = True
    detector_model: str = field(default="", metadata=_path())
    embedder_model: str = field(default="", metadata=_path())
    # Chips for the embedder: "auto" = what the embedder's contract asks for; "dlib5" = dlib's 5-point shape
    # predictor (landmarks_model) and dlib's chip geometry; "template5" = CenterFace's landmarks on a template.
    alignment: str = field(default="auto", metadata=_choices("auto", "dlib5", "template5"))
    landmarks_model: str = field(default="", metadata=_path())
    # dlib5: re-run the shape predictor once on the box its first points imply (closer to dlib's own detector box:
    # on the reference faces, mean distance to dlib's descriptor 0.059 against 0.095; costs a second pass).
    landmarks_refine: bool = True
    gallery: str = field(default="gallery.sqlite", metadata=_path())
    detect_width: int = 320
    score_threshold: float = 0.5
    iou_threshold: float = 0.4
    max_faces: int = 16
    recognize: bool = True
    match_threshold: float | None = None
    match_margin: float = 0.04
    reembed_every: int = 10
    reembed_iou: float = 0.6
    min_face_px: int = 40
    min_sharpness: float = 25.0


@dataclass(frozen=True)
class DoorConfig:
    """Door-access mode (``rtv door``): decisions over a face track, audit log, unlock hook.

    There is no liveness check: a photo or a screen of an enrolled person is accepted like the person.
    ``match_threshold`` is used when no calibration exists for the gallery (``rtv calibrate``) or when
    ``use_calibration`` is false. ``hook_command``: argv list; the person and ``door_id`` are appended as two more
    argv items (no shell). ``hook_url``: http(s) URL that gets a JSON POST. Paths resolve against the config file.
    """

    door_id: str = "door-1"
    min_frames: int = 5
    window_frames: int = 10
    majority: float = 0.6
    min_face_px: int = 60
    min_sharpness: float = 20.0
    max_yaw: float = 0.35
    max_roll_deg: float = 20.0
    use_calibration: bool = True
    match_threshold: float = 0.6
    match_margin: float = 0.04
    deny_threshold: float = 0.7
    reembed_every: int = 1
    cooldown_s: float = 10.0
    track_cooldown_s: float = 5.0
    target_far: float = 0.001
    audit: str = field(default="door_audit.sqlite", metadata=_path())
    store_faces: bool = False
    hook_command: tuple[str, ...] = ()
    hook_url: str = ""
    hook_timeout_s: float = 3.0
    alarm_display_s: float = 3.0


@dataclass(frozen=True)
class OverlayConfig:
    """What is drawn on displayed and annotated frames."""

    enabled: bool = True
    landmarks: bool = True
    stage_ms: bool = True
    thickness: int = 2
    font_scale: float = 0.5


@dataclass(frozen=True)
class OutputConfig:
    """Video and sidecar outputs."""

    crf: int = 23
    preset: str = field(default="veryfast", metadata=_choices(
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"))
    jsonl_decimals: int = 2


@dataclass(frozen=True)
class StyleConfig:
    """Style transfer, drawn last on the displayed frame (analysis never sees it). Off by default.

    ``styles``: style names to cycle through with the 's' key (empty: every shipped student style); ``model_dir``:
    where ``style_*.onnx`` live (empty: realtime/zoo). ``strength`` 0..1 blends with the original frame. The style
    width adapts between ``min_width`` and ``max_width`` to hold ``target_fps`` (``adaptive``). ``stabilise``
    blends with the previous stylised frame (up to ``stabilise_strength``) where the input changed by less than
    ``change_limit`` grey levels. ``quality``: the slow teacher network at ``max_width`` (offline annotation).
    """

    enabled: bool = False
    styles: tuple[str, ...] = ()
    model_dir: str = field(default="", metadata=_path())
    strength: float = 1.0
    target_fps: float = 15.0
    width: int = 320
    min_width: int = 128
    max_width: int = 640
    adaptive: bool = True
    stabilise: bool = True
    stabilise_strength: float = 0.6
    change_limit: float = 12.0
    quality: bool = False


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it came from (None for built-in defaults)."""

    source: SourceConfig = SourceConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    detector: DetectorConfig = DetectorConfig()
    faces: FacesConfig = FacesConfig()
    overlay: OverlayConfig = OverlayConfig()
    output: OutputConfig = OutputConfig()
    door: DoorConfig = DoorConfig()
    style: StyleConfig = StyleConfig()
    path: str | None = field(default=None, metadata={"internal": True})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("path", None)
        return data


def load_config(path: Path | str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path`` (or the built-in defaults when None), apply ``--set`` overrides, validate, return frozen config."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}: not valid YAML{where}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        data = loaded
        base = path.resolve().parent
    for item in overrides:
        apply_override(data, item)
    config = build_section(Config, {k: v for k, v in data.items()}, "", base)
    return dataclasses.replace(config, path=str(path) if path is not None else None)


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``section.key=value`` override in place; the value is parsed as YAML (``true``, ``0.5``,
    ``[1, 2]``)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML") from exc
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def build_section(cls: type, data: Any, prefix: str, base: Path) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types with the dotted key named."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"unknown config key {key!r}; known keys here: {', '.join(sorted(fields))}")
    values = {}
    for name, fld in fields.items():
        if name not in data:
            continue
        key = f"{prefix}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = build_section(hint, data[name], key + ".", base)
            continue
        value = _coerce(data[name], hint, key)
        if "choices" in fld.metadata and value not in fld.metadata["choices"]:
            raise ConfigError(f"{key}={value!r}: must be one of {', '.join(fld.metadata['choices'])}")
        if fld.metadata.get("path") and value:
            value = str(resolve_path(value, base))
        values[name] = value
    try:
        section = cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    _check_ranges(section, prefix)
    return section


def resolve_path(value: str, base: Path) -> Path:
    """A path from config: ``~`` expanded, relative paths taken from the config file's folder."""
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}={value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r}: expected a number")
        return float(value)
    if hint is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return str(value)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r}: expected a list")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key}={value!r}: expected a list of {len(args)} values")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    raise ConfigError(f"{key}: unsupported type {hint}")


def _check_ranges(section: Any, prefix: str) -> None:
    """Field-level sanity checks that types cannot express."""
    for fld in dataclasses.fields(section):
        value = getattr(section, fld.name)
        key = f"{prefix}{fld.name}"
        if value is None:
            continue
        if fld.name.endswith("_threshold") or fld.name in ("match_margin", "reembed_iou"):
            if not 0.0 <= value <= (4.0 if fld.name == "match_threshold" else 1.0):
                raise ConfigError(f"{key}={value!r}: out of range")
        if fld.name.endswith(("_threads", "_attempts")) and value < 0:
            raise ConfigError(f"{key}={value!r}: must be >= 0")
        if fld.name in ("queue_size", "detect_width", "max_faces", "max_candidates", "max_detections",
                        "reembed_every", "thickness") and value < 1:
            raise ConfigError(f"{key}={value!r}: must be >= 1")
        if fld.name == "fps" and value <= 0:
            raise ConfigError(f"{key}={value!r}: must be > 0")
        if fld.name == "input_size" and value is not None and (value[0] < 32 or value[1] < 32):
            raise ConfigError(f"{key}={value!r}: must be at least 32x32")


def dump_config(config: Config) -> str:
    """The resolved config as YAML (logged once at start)."""
    return yaml.safe_dump(_plain(config.to_dict()), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
