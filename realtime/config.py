"""Typed, validated, frozen configuration.

``config.yaml`` -> ``yaml.safe_load`` -> ``--set a.b=v`` overrides -> frozen dataclasses, one section per stage.
Unknown keys and bad values raise :class:`ConfigError` naming the dotted key and the value. Relative paths resolve
against the config file's folder. Defaults live here, in code.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from realtime.data_dir import default_audit, default_gallery
from realtime.errors import ConfigError

ZOO_DIR = Path(__file__).resolve().parent / "zoo"
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KiB; a bigger file is a mistake or an attack
MAX_CONFIG_DEPTH = 16  # sections are two levels deep; lists of lists add a few more
MAX_OVERRIDE_CHARS = 4096


class _ConfigLoader(yaml.SafeLoader):
    """``yaml.safe_load`` for config: no aliases (an alias bomb expands to gigabytes), a nesting limit (deep
    nesting exhausts the stack), and no repeated keys (the first value would be dropped without a word)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"uses the YAML alias *{event.anchor} at line {event.start_mark.line + 1}; aliases "
                              "and anchors are not allowed in config (write the value out)")
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"nests deeper than {MAX_CONFIG_DEPTH} levels at line {mark.line + 1}")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: set[str] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise ConfigError(f"repeats the key {key_node.value!r} at line {key_node.start_mark.line + 1}")
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> plain data under the config loader's limits; :class:`ConfigError` naming ``where``."""
    try:
        loader = _ConfigLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None)
        raise ConfigError(f"{where}: not valid YAML{at}" + (f" ({problem})" if problem else "")) from None
    except RecursionError:
        raise ConfigError(f"{where}: nests too deeply") from None


def read_config_text(path: Path) -> str:
    """The config file's text: at most :data:`MAX_CONFIG_BYTES`, UTF-8 (a BOM is allowed)."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a config file may hold at most {MAX_CONFIG_BYTES} bytes")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: a config file may hold at most {MAX_CONFIG_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}, line {line}); save it as UTF-8") from None


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


def _path() -> dict[str, Any]:
    return {"path": True}


def _range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> dict[str, Any]:
    """The field's allowed interval, checked once when the section is built (``lo_open``: ``lo`` excluded)."""
    return {"range": (lo, hi, lo_open, hi_open)}


@dataclass(frozen=True)
class SourceConfig:
    """Where frames come from. ``uri``: camera index ("0"), video file, rtsp/http URL, image folder or glob."""

    uri: str = "0"
    policy: str = field(default="auto", metadata=_choices("auto", "latest", "every"))
    queue_size: int = field(default=8, metadata=_range(1, 1024))
    pace: bool = False
    width: int = field(default=0, metadata=_range(0, 16384))
    height: int = field(default=0, metadata=_range(0, 16384))
    fps: float = field(default=30.0, metadata=_range(0, 1000, lo_open=True))
    reconnect_attempts: int = field(default=5, metadata=_range(0, 1000000))
    reconnect_backoff_s: float = field(default=0.5, metadata=_range(0, 3600))
    reconnect_backoff_max_s: float = field(default=8.0, metadata=_range(0, 86400))
    read_timeout_s: float = field(default=10.0, metadata=_range(0, 3600, lo_open=True))
    decode_threads: int = field(default=0, metadata=_range(0, 64))  # FFmpeg's video decoder; 0: its own choice


@dataclass(frozen=True)
class RuntimeConfig:
    """ONNX Runtime and thread settings. ``auto`` (see realtime/threads.py) sizes the stage workers, ORT's
    intra-op threads per session, OpenCV's and BLAS's pools together from the cores available, so they never
    oversubscribe; numbers are used as given (``intra_op_threads: 0`` is ONNX Runtime's own default).
    ``workers: 1`` runs every stage in sequence on the main thread. ``frames_in_flight``: frames whose detectors
    may run at once (auto: one per worker), completed in capture order. ``providers``: auto picks CUDA when
    onnxruntime-gpu offers it, else OpenVINO when its plugin offers this CPU and the CPU has AVX-512/VNNI/AMX
    units, else the CPU provider (``rtv doctor`` says which and why). ``precision``: auto runs each shipped model
    in the fastest precision measured to agree with float on this provider and CPU class (float otherwise)."""

    providers: str = field(default="auto", metadata=_choices("auto", "cpu", "openvino", "cuda", "require-gpu"))
    precision: str = field(default="auto", metadata=_choices("auto", "float", "bf16", "int8"))
    workers: int | str = field(default="auto", metadata=_range(1, 64))
    intra_op_threads: int | str = field(default="auto", metadata=_range(0, 64))
    inter_op_threads: int = field(default=1, metadata=_range(0, 64))
    opencv_threads: int | str = field(default="auto", metadata=_range(0, 64))
    blas_threads: int | str = field(default="auto", metadata=_range(1, 64))
    frames_in_flight: int | str = field(default="auto", metadata=_range(1, 16))
    graph_optimization: str = field(default="all", metadata=_choices("all", "extended", "basic", "none"))


@dataclass(frozen=True)
class DetectorConfig:
    """Object detection (YOLO grid/anchor). ``model`` empty means the shipped default (COCO yolov3-tiny).

    ``input_size``: network input [w, h] or one number (e.g. 320, 416, 608; multiples of 32); unset: the model's
    default (416 for the shipped one). ``classes``: class names to keep (empty: all), checked against the model's
    names when the detector opens. ``class_score_thresholds``: per-class score thresholds, e.g. ``{person: 0.4}``,
    that replace ``score_threshold`` for those classes. A box is shown when its score is at least its class's
    threshold; a lower class threshold only ever adds boxes of that class. ``every``: run the detector on one
    frame in N and carry the last boxes between (``rtv bench every`` measures what that costs).
    """

    enabled: bool = True
    model: str = field(default="", metadata=_path())
    input_size: tuple[int, int] | None = None
    classes: tuple[str, ...] = ()
    class_score_thresholds: tuple[tuple[str, float], ...] = ()
    score_threshold: float = field(default=0.5, metadata=_range(0, 1))
    iou_threshold: float = field(default=0.45, metadata=_range(0, 1))
    class_aware: bool = True
    max_candidates: int = field(default=1000, metadata=_range(1, 100000))
    max_detections: int = field(default=100, metadata=_range(1, 10000))
    every: int = field(default=1, metadata=_range(1, 1000))


@dataclass(frozen=True)
class TrackingConfig:
    """Object tracking after detection: a track id per object (JSONL ``track``, overlay ``#id``).

    ``min_hits`` detected frames confirm a track (then it gets its id); a confirmed track lives through
    ``max_age`` frames without a detection. ``low_score_threshold`` (null: off) turns on ByteTrack's second pass:
    the detector also decodes boxes down to it, and a box below its class's shown threshold may continue (never
    start) a confirmed track; it is then marked ``continued`` in the JSONL and drawn as a held track, not as a
    detection. It is independent of the shown thresholds. ``buffer``: boxes are matched grown by this fraction
    of their size on each side (buffered IoU), so small or fast objects keep their tracks. Defaults measured with
    ``python -m recipes.tracking_measure``.
    """

    enabled: bool = True
    iou_threshold: float = field(default=0.3, metadata=_range(0, 1, lo_open=True))
    max_age: int = field(default=30, metadata=_range(0, 100000))
    min_hits: int = field(default=3, metadata=_range(1, 1000))
    low_score_threshold: float | None = field(default=0.1, metadata=_range(0, 1))
    buffer: float = field(default=0.3, metadata=_range(0, 1))


@dataclass(frozen=True)
class FacesConfig:
    """Face detection, alignment, embedding and gallery search.

    A face track's identity is voted over its last ``vote_window`` embeddings: ``name_votes`` must agree to name
    it, ``change_votes`` to change it. ``cohort``: compare each face with the shipped background cohort of strangers
    (``realtime/zoo/face_cohort.npz``) as well as the gallery, so one enrolled person does not name everyone.
    """

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
    gallery: str = field(default_factory=default_gallery,  # the face gallery; 'rtv doctor' prints where it is
                         metadata={**_path(), "default_doc": "`gallery.sqlite` in the data folder"})
    detect_width: int = field(default=320, metadata=_range(32, 4096))
    score_threshold: float = field(default=0.5, metadata=_range(0, 1))
    iou_threshold: float = field(default=0.4, metadata=_range(0, 1))
    max_faces: int = field(default=16, metadata=_range(1, 256))
    recognize: bool = True
    match_threshold: float | None = field(default=None, metadata=_range(0, 4, lo_open=True))
    match_margin: float = field(default=0.04, metadata=_range(0, 4))
    reembed_every: int = field(default=10, metadata=_range(1, 10000))
    reembed_iou: float = field(default=0.6, metadata=_range(0, 1))
    min_face_px: int = field(default=40, metadata=_range(0, 4096))
    min_sharpness: float = field(default=25.0, metadata=_range(0, 1000000.0))
    vote_window: int = field(default=5, metadata=_range(1, 1000))
    name_votes: int = field(default=3, metadata=_range(1, 1000))
    change_votes: int = field(default=4, metadata=_range(1, 1000))
    cohort: bool = True


@dataclass(frozen=True)
class DoorConfig:
    """Door-access mode (``rtv door``): decisions over a face track, audit log, unlock hook.

    There is no liveness check: a photo or a screen of an enrolled person is accepted like the person.
    ``match_threshold`` is used when no calibration exists for the gallery (``rtv calibrate``) or when
    ``use_calibration`` is false. ``hook_command``: argv list; ``--``, the person and ``door_id`` are appended as three
    more argv items (no shell), and they are also in ``RTV_PERSON``, ``RTV_DOOR_ID``, ``RTV_AUDIT_SEQ``. ``hook_url``: http(s) URL that gets a JSON POST. Paths resolve against the config file.
    ``audit_key_file``: a key file kept outside the audit log (``rtv audit keygen``); when set, a new log's records
    carry HMAC-SHA256 MACs instead of plain hashes. ``max_camera_down_s``: how long a lost camera is reopened before
    the door stops (0: forever; the door stays locked meanwhile).
    """

    door_id: str = "door-1"
    min_frames: int = field(default=5, metadata=_range(1, 1000))
    window_frames: int = field(default=10, metadata=_range(1, 10000))
    majority: float = field(default=0.6, metadata=_range(0.5, 1, lo_open=True))
    min_face_px: int = field(default=60, metadata=_range(0, 4096))
    min_sharpness: float = field(default=20.0, metadata=_range(0, 1000000.0))
    max_yaw: float = field(default=0.35, metadata=_range(0, 10))
    max_roll_deg: float = field(default=20.0, metadata=_range(0, 180))
    use_calibration: bool = True
    match_threshold: float = field(default=0.6, metadata=_range(0, 4, lo_open=True))
    match_margin: float = field(default=0.04, metadata=_range(0, 4))
    deny_threshold: float = field(default=0.7, metadata=_range(0, 4, lo_open=True))
    reembed_every: int = field(default=1, metadata=_range(1, 1000))
    cooldown_s: float = field(default=10.0, metadata=_range(0, 86400))
    track_cooldown_s: float = field(default=5.0, metadata=_range(0, 86400))
    target_far: float = field(default=0.001, metadata=_range(0, 1, lo_open=True, hi_open=True))
    audit: str = field(default_factory=default_audit,  # the door's audit log; 'rtv doctor' prints where it is
                       metadata={**_path(), "default_doc": "`door_audit.sqlite` in the data folder"})
    audit_key_file: str = field(default="", metadata=_path())
    store_faces: bool = False
    hook_command: tuple[str, ...] = ()
    hook_url: str = ""
    hook_timeout_s: float = field(default=3.0, metadata=_range(0, 300, lo_open=True))
    max_camera_down_s: float = field(default=0.0, metadata=_range(0, 31536000))
    alarm_display_s: float = field(default=3.0, metadata=_range(0, 60))


@dataclass(frozen=True)
class OverlayConfig:
    """What is drawn on displayed and annotated frames. Labels and panels scale with the frame (``font_scale`` is
    for a frame whose short side is 480 px). ``hud``: also draw the status bar (frames per second, frame, drops,
    ``stage_ms`` timings) inside recorded and returned frames; the live window always shows it, above the picture.
    """

    enabled: bool = True
    landmarks: bool = True
    stage_ms: bool = True
    hud: bool = False
    thickness: int = field(default=2, metadata=_range(1, 20))
    font_scale: float = field(default=0.5, metadata=_range(0.1, 10))


@dataclass(frozen=True)
class OutputConfig:
    """Video and sidecar outputs. ``runs_dir``: where ``rtv annotate`` writes when given no ``--out``/``--jsonl``
    (a new numbered folder ``runs_dir/annotate/N`` each run)."""

    crf: int = field(default=23, metadata=_range(0, 51))
    preset: str = field(default="veryfast", metadata=_choices(
        "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"))
    jsonl_decimals: int = field(default=2, metadata=_range(0, 10))
    encode_threads: int = field(default=0, metadata=_range(0, 64))  # libx264's threads; 0: its own choice
    # where annotate writes when no --out/--jsonl is given: a new numbered folder runs_dir/annotate/N per run
    runs_dir: str = field(default="runs", metadata=_path())


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
    strength: float = field(default=1.0, metadata=_range(0, 1))
    target_fps: float = field(default=15.0, metadata=_range(0, 1000, lo_open=True))
    width: int = field(default=320, metadata=_range(16, 4096))
    min_width: int = field(default=128, metadata=_range(16, 4096))
    max_width: int = field(default=640, metadata=_range(16, 4096))
    adaptive: bool = True
    stabilise: bool = True
    stabilise_strength: float = field(default=0.6, metadata=_range(0, 1))
    change_limit: float = field(default=12.0, metadata=_range(0, 255))
    quality: bool = False


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it came from (None for built-in defaults)."""

    source: SourceConfig = field(default_factory=SourceConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    faces: FacesConfig = field(default_factory=FacesConfig)  # its gallery path: the data folder at creation
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    door: DoorConfig = field(default_factory=DoorConfig)  # its audit path: the data folder at creation
    style: StyleConfig = field(default_factory=StyleConfig)
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
        loaded = parse_yaml(read_config_text(path), str(path))
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
    if len(item) > MAX_OVERRIDE_CHARS:
        raise ConfigError(f"--set {item[:40]!r}...: longer than {MAX_OVERRIDE_CHARS} characters")
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {item!r}: expected section.key=value")
    value = parse_yaml(raw, f"--set {item!r}") if raw.strip() else ""
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
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        raise ConfigError(f"{where}: key {odd[0]!r} is not a name; known keys here: {', '.join(sorted(fields))}")
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
    if origin in (typing.Union, types.UnionType) and set(args) == {int, str}:  # a count or "auto"
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError(f"{key}={value!r}: expected an integer or auto")
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
        try:
            number = float(value)
        except OverflowError:
            raise ConfigError(f"{key}={value!r}: too large") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}={value!r}: expected a finite number")
        return number
    if hint is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise ConfigError(f"{key}={value!r}: expected a string")
        text = str(value)
        if "\x00" in text:
            raise ConfigError(f"{key}={value!r}: contains a NUL character")
        return text
    if origin is tuple and args == (int, int) and isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]  # one number for a square size, e.g. input_size: 416
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and typing.get_origin(args[0]) is tuple \
            and isinstance(value, dict):
        value = list(value.items())  # a mapping {name: value} for a tuple of (name, value) pairs
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
    """Every number is finite and inside the interval its field declares (``_range``); a few rules span fields."""
    for fld in dataclasses.fields(section):
        value = getattr(section, fld.name)
        key = f"{prefix}{fld.name}"
        numbers = value if isinstance(value, tuple) else (value,)
        for number in numbers:
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"{key}={value!r}: must be a finite number")
        bounds = fld.metadata.get("range")
        if bounds is None or value is None or value == "auto":
            continue
        lo, hi, lo_open, hi_open = bounds
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            raise ConfigError(f"{key}={value!r}: must be in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                              f"{')' if hi_open else ']'}")
    if isinstance(section, DetectorConfig) and section.input_size is not None:
        w, h = section.input_size
        if not (32 <= w <= 4096 and 32 <= h <= 4096):
            raise ConfigError(f"{prefix}input_size={section.input_size!r}: each side must be in [32, 4096]")
    if isinstance(section, DetectorConfig):
        for name, threshold in section.class_score_thresholds:
            if not 0.0 <= threshold <= 1.0:
                raise ConfigError(f"{prefix}class_score_thresholds.{name}={threshold!r}: must be in [0, 1]")
    if isinstance(section, StyleConfig) and not section.min_width <= section.max_width:
        raise ConfigError(f"{prefix}min_width={section.min_width} must be <= {prefix}max_width={section.max_width}")


def dump_config(config: Config) -> str:
    """The resolved config as YAML (logged once at start)."""
    return yaml.safe_dump(_plain(config.to_dict()), sort_keys=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
