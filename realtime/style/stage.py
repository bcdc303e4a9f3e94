"""Style transfer stage: paints the displayed frame; analysis never sees it (it only sets ``packet.styled_bgr``).

Per frame: scale the frame to the current *style width* (a multiple of the model's ``size_multiple``), run one
style network, reduce flicker by blending with the previous stylised frame where the input changed little, scale
up to the frame size, blend with the original by ``strength``.

* Live: the style width adapts so that the style stage plus the work before it (capture -> style, or the gap
  since the previous styled frame when that is smaller) fits one frame at ``target_fps`` (:func:`next_style_width`).
* Offline (annotate, batch: :func:`offline_style`): the configured ``style.width`` on every frame.
* Quality mode (offline): the teacher network (``style_teacher26.onnx``) at ``max_width``, no adaptation.
* ``cycle()`` (the 's' key) moves to the next configured style between frames.
* A failing style stage is turned off by the pipeline (``fail_soft``); the rest keeps running.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from realtime.config import Config
from realtime.errors import ConfigError, ModelError
from realtime.runtime import OnnxModel, RuntimeOptions
from realtime.types import FramePacket

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- pure steps


def style_size_wh(frame_wh: tuple[int, int], width: int, multiple: int) -> tuple[int, int]:
    """The network input (w, h) for a frame of ``frame_wh`` at style ``width``: both multiples of ``multiple``,
    aspect ratio kept to within one ``multiple``; never larger than needed and at least one ``multiple``."""
    fw, fh = frame_wh
    w = max(multiple, int(round(width / multiple)) * multiple)
    h = max(multiple, int(round(w * fh / fw / multiple)) * multiple)
    return w, h


def next_style_width(width: int, style_ms: float, rest_ms: float, target_fps: float, min_width: int,
                     max_width: int, multiple: int = 8, headroom: float = 0.9) -> int:
    """The style width for the next frames, so that ``rest_ms + style_ms`` fits one frame at ``target_fps``.

    ``style_ms``: recent time of the style stage at ``width`` (its cost grows with the pixel count, ~width^2);
    ``rest_ms``: recent time from capture to the style stage (the analysis stages and the hand-over). Moves by at
    most x1.25 up / x0.7 down per call and only by at least one ``multiple`` (hysteresis). Result clamped to
    [min_width, max_width] and a multiple of ``multiple``.
    """
    budget = 1000.0 / target_fps - rest_ms
    if budget <= 0 or style_ms <= 0:
        desired = float(min_width) if budget <= 0 else float(max_width)
    else:
        desired = width * math.sqrt(headroom * budget / style_ms)
    desired = min(max(desired, width * 0.7), width * 1.25)
    desired = min(max(desired, float(min_width)), float(max_width))
    if abs(desired - width) < multiple:
        return int(width)
    snapped = int(desired // multiple) * multiple
    return int(min(max(snapped, _ceil_to(min_width, multiple)), max(multiple, (max_width // multiple) * multiple)))


def _ceil_to(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def change_weights(gray: np.ndarray, prev_gray: np.ndarray, threshold: float, strength: float) -> np.ndarray:
    """Per-pixel weight of the previous stylised frame: ``strength`` where the input did not change, falling
    linearly to 0 where the (5x5 box-blurred) absolute change reaches ``threshold`` grey levels.

    ``gray``, ``prev_gray``: float32 (H, W) in 0..255. Returns float32 (H, W, 1) in [0, strength].
    """
    diff = cv2.blur(np.abs(gray - prev_gray), (5, 5))
    return (strength * np.clip(1.0 - diff / max(threshold, 1e-6), 0.0, 1.0))[:, :, None].astype(np.float32)


def stabilise(styled: np.ndarray, prev_styled: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights * prev_styled + (1 - weights) * styled``. Images float32 (H, W, 3); weights (H, W, 1)."""
    return styled + weights * (prev_styled - styled)


def blend_strength(styled_bgr: np.ndarray, frame_bgr: np.ndarray, strength: float) -> np.ndarray:
    """``strength * styled + (1 - strength) * frame`` as uint8 (H, W, 3); 1 returns ``styled`` unchanged."""
    if strength >= 1.0:
        return styled_bgr
    return cv2.addWeighted(styled_bgr, float(strength), frame_bgr, 1.0 - float(strength), 0.0)


# ---------------------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class StyleChoice:
    """One selectable style: its name, the model that paints it, and the style index for a multi-style model."""

    name: str
    model: OnnxModel
    index: int | None = None


def style_names(model: OnnxModel) -> tuple[str, ...]:
    """The style names a style model's contract declares (``extra.styles``)."""
    styles = model.contract.extra.get("styles")
    if not isinstance(styles, list) or not styles or not all(isinstance(s, str) for s in styles):
        raise ModelError(f"{model.path}: a style contract needs 'extra.styles', a non-empty list of names")
    return tuple(styles)


def open_style_model(path: Path | str, options: RuntimeOptions) -> OnnxModel:
    """An ONNX style model (contract kind "style"); a multi-style model must declare its style input."""
    model = OnnxModel(path, options, expected_kind="style")
    style_names(model)
    if model.contract.extra.get("role") == "teacher":
        style_input = model.contract.extra.get("style_input")
        names = [i.name for i in model.session.get_inputs()]
        if style_input not in names:
            model.close()
            raise ModelError(f"{path}: contract names style input {style_input!r}, graph inputs are {names}")
    return model


def zoo_style_files(zoo_dir: Path) -> list[Path]:
    """Shipped style models, ``style_*.onnx``, sorted by name."""
    return sorted(Path(zoo_dir).glob("style_*.onnx"))


def resolve_styles(requested: Sequence[str], models: Sequence[OnnxModel], quality: bool) -> list[StyleChoice]:
    """The styles to cycle through, in order.

    ``requested``: style names (empty: every style of every student model; in quality mode every style the
    teacher offers for which a student exists, else all teacher styles). Live mode uses students; quality mode
    the teacher. :class:`ConfigError` names an unknown style and lists the known ones.
    """
    students = [m for m in models if m.contract.extra.get("role") != "teacher"]
    teachers = [m for m in models if m.contract.extra.get("role") == "teacher"]
    pool = teachers if quality else students
    if not pool:
        what = "the teacher model (style_teacher26.onnx: 'rtv export style --teacher')" if quality else \
            "a student style model (realtime/zoo/style_*.onnx: 'rtv train style' then 'rtv export style')"
        raise ConfigError(f"style: no model for {'quality' if quality else 'live'} mode; need {what}")
    available: dict[str, StyleChoice] = {}
    for model in pool:
        multi = model.contract.extra.get("role") == "teacher"
        for i, name in enumerate(style_names(model)):
            available.setdefault(name, StyleChoice(name, model, i if multi else None))
    if not requested:
        if quality:
            wanted = [n for m in students for n in style_names(m) if n in available] or list(available)
        else:
            wanted = list(available)
    else:
        wanted = list(requested)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ConfigError(f"style.styles: unknown style {unknown[0]!r} for {'quality' if quality else 'live'} "
                          f"mode; known: {', '.join(available)}")
    return [available[n] for n in dict.fromkeys(wanted)]


# ---------------------------------------------------------------------------------------------------- stage


class StyleTransfer:
    """The style stage. ``__call__(packet)`` sets ``packet.styled_bgr`` (uint8, the frame's size).

    ``styles``: the choices to cycle through (see :func:`resolve_styles`); ``strength`` 0..1 blends with the
    original; ``adaptive`` adjusts the style width between ``min_width`` and ``max_width`` to hold ``target_fps``;
    ``stabilise`` blends with the previous stylised frame where the input changed by less than
    ``change_threshold`` grey levels (weight up to ``stabilise_strength``).
    """

    name = "style"
    pure = False
    fail_soft = True

    def __init__(self, styles: Sequence[StyleChoice], strength: float = 1.0, target_fps: float = 15.0,
                 width: int = 320, min_width: int = 128, max_width: int = 640, adaptive: bool = True,
                 stabilise: bool = True, stabilise_strength: float = 0.6, change_threshold: float = 12.0,
                 adapt_every: int = 5):
        if not styles:
            raise ConfigError("style: no styles to show")
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"style.strength={strength!r}: must be between 0 and 1")
        if target_fps <= 0:
            raise ConfigError(f"style.target_fps={target_fps!r}: must be > 0")
        if not 32 <= min_width <= max_width:
            raise ConfigError(f"style.min_width={min_width}, style.max_width={max_width}: need 32 <= min <= max")
        self.styles = list(styles)
        self.current = 0
        self.strength = float(strength)
        self.target_fps = float(target_fps)
        self.min_width, self.max_width = int(min_width), int(max_width)
        self.width = int(min(max(width, min_width), max_width))
        self._initial_width = self.width
        self.adaptive = adaptive
        self.stabilise = stabilise
        self.stabilise_strength = float(stabilise_strength)
        self.change_threshold = float(change_threshold)
        self.adapt_every = max(1, int(adapt_every))
        self._style_ms: float | None = None
        self._rest_ms: float | None = None
        self._frames = 0
        self._last_end: float | None = None
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (gray, styled float RGB) at style size
        self._closed = False

    @property
    def style(self) -> StyleChoice:
        return self.styles[self.current]

    def cycle(self) -> str:
        """Next style (wraps around); returns its name. Called between frames (the 's' key)."""
        self.current = (self.current + 1) % len(self.styles)
        self._prev = None
        log.info("style: %s", self.style.name)
        return self.style.name

    def paint_rgb(self, frame_rgb: np.ndarray) -> np.ndarray:
        """One network run: uint8 RGB (h, w, 3) at a valid size -> float32 RGB (h, w, 3) in 0..255."""
        choice = self.style
        spec = choice.model.contract.input
        x = np.ascontiguousarray(frame_rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        x *= np.float32(spec.scale)
        if any(m != 0.0 for m in spec.mean) or any(s != 1.0 for s in spec.std):
            x -= np.asarray(spec.mean, np.float32).reshape(1, 3, 1, 1)
            x /= np.asarray(spec.std, np.float32).reshape(1, 3, 1, 1)
        extra = None
        if choice.index is not None:
            n = int(choice.model.contract.extra.get("style_count", len(style_names(choice.model))))
            weights = np.zeros(n, np.float32)
            weights[choice.index] = 1.0
            extra = {str(choice.model.contract.extra["style_input"]): weights}
        out = choice.model.run(x, extra)[0]
        if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] != 3 or out.shape[2:] != x.shape[2:]:
            raise ModelError(f"{choice.model.path}: style output has shape {out.shape}, expected (1, 3, "
                             f"{x.shape[2]}, {x.shape[3]})")
        return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0) * np.float32(255.0)

    def __call__(self, packet: FramePacket) -> FramePacket:
        t_start = time.perf_counter()
        frame = packet.frame_bgr
        fh, fw = frame.shape[:2]
        contract = self.style.model.contract
        size = style_size_wh((fw, fh), self.width, contract.input.size_multiple)
        small_bgr = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if size != (fw, fh) else frame
        rgb = small_bgr[:, :, ::-1] if contract.input.color == "rgb" else small_bgr
        styled = self.paint_rgb(rgb)
        if self.stabilise:
            gray = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
            if self._prev is not None and self._prev[0].shape == gray.shape:
                styled = stabilise(styled, self._prev[1], change_weights(gray, self._prev[0], self.change_threshold,
                                                                         self.stabilise_strength))
            self._prev = (gray, styled)
        out = np.clip(styled + 0.5, 0, 255).astype(np.uint8)
        out = np.ascontiguousarray(out[:, :, ::-1]) if contract.input.color == "rgb" else out
        if size != (fw, fh):
            out = cv2.resize(out, (fw, fh), interpolation=cv2.INTER_LINEAR)
        out = blend_strength(out, frame, self.strength)
        t_end = time.perf_counter()
        # the rest of a frame's budget: capture -> here (analysis + hand-over), but never more than the gap since
        # the previous styled frame (with a bounded file queue, frames wait long before they start; with a slow
        # camera, the gap holds the wait for the next frame): the smaller one is the work that competes with style
        latency = max(0.0, (t_start - packet.t_capture) * 1000.0)
        rest = latency if self._last_end is None else min(latency, max(0.0, (t_start - self._last_end) * 1000.0))
        self._last_end = t_end
        self._adapt((t_end - t_start) * 1000.0, rest)
        return replace(packet, styled_bgr=out,
                       style={"name": self.style.name, "width": size[0], "height": size[1]})

    def _adapt(self, style_ms: float, rest_ms: float) -> None:
        a = 0.3
        self._style_ms = style_ms if self._style_ms is None else (1 - a) * self._style_ms + a * style_ms
        self._rest_ms = rest_ms if self._rest_ms is None else (1 - a) * self._rest_ms + a * rest_ms
        self._frames += 1
        if not self.adaptive or self._frames % self.adapt_every:
            return
        multiple = self.style.model.contract.input.size_multiple
        width = next_style_width(self.width, self._style_ms, self._rest_ms, self.target_fps, self.min_width,
                                 self.max_width, multiple)
        if width != self.width:
            log.debug("style width %d -> %d (style %.1f ms, rest %.1f ms)", self.width, width, self._style_ms,
                      self._rest_ms)
            # the cost scales with the pixel count: predict it for the new width, so the next step starts right
            self._style_ms *= (width / self.width) ** 2
            self.width = width
            self._prev = None

    def reset(self) -> None:
        """Start over as for a new video: first style, initial width, no stabiliser history or timings."""
        self.current = 0
        self.width = self._initial_width
        self._style_ms = self._rest_ms = self._last_end = None
        self._frames = 0
        self._prev = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for model in {id(c.model): c.model for c in self.styles}.values():
            model.close()


def offline_style(config: Config) -> Config:
    """``config`` for an offline run (annotate, batch): the style keeps its configured width (``style.width``, or
    ``max_width`` with ``quality``) on every frame; only live sources adapt it to a frame rate."""
    if not config.style.adaptive:
        return config
    return dataclasses.replace(config, style=dataclasses.replace(config.style, adaptive=False))


def build_style_stage(config, options: RuntimeOptions, zoo_dir: Path) -> StyleTransfer:
    """The style stage from a :class:`realtime.config.StyleConfig`: opens ``style_*.onnx`` in ``config.model_dir``
    (else ``zoo_dir``), picks the configured styles, closes the models it does not use."""
    model_dir = Path(config.model_dir) if config.model_dir else Path(zoo_dir)
    files = zoo_style_files(model_dir)
    if not files:
        raise ModelError(f"style: no style_*.onnx in {model_dir}; train and export one ('rtv train style', "
                         "'rtv export style') or set style.model_dir")
    models: list[OnnxModel] = []
    try:
        for path in files:
            models.append(open_style_model(path, options))
        choices = resolve_styles(config.styles, models, config.quality)
    except BaseException:
        for model in models:
            model.close()
        raise
    used = {id(c.model) for c in choices}
    for model in models:
        if id(model) not in used:
            model.close()
    quality = bool(config.quality)
    stage = StyleTransfer(choices, strength=config.strength, target_fps=config.target_fps,
                          width=config.max_width if quality else config.width, min_width=config.min_width,
                          max_width=config.max_width, adaptive=config.adaptive and not quality,
                          stabilise=config.stabilise, stabilise_strength=config.stabilise_strength,
                          change_threshold=config.change_limit)
    log.info("style: %s (%s mode, %d styles)", ", ".join(c.name for c in choices),
             "quality" if quality else "live", len(choices))
    return stage
