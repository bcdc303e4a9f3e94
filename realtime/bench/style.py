"""``rtv bench style``: speed per model and resolution, student-vs-teacher quality, flicker, side-by-side previews.

* speed: ms per network run (ONNX Runtime, the configured intra-op threads) at several style widths (4:3), and the
  whole stage (resize, run, stabilise, upscale, blend) on a 640x480 frame at width 320;
* quality: PSNR and SSIM of each student against its teacher (``style_teacher26.onnx``, same style index) on
  held-out photos (never used in training) as 320x240 frames;
* flicker: mean absolute difference between consecutive stylised frames of a static scene with simulated sensor
  noise (Gaussian, sigma 2 grey levels), with and without the stabiliser;
* previews: original | teacher | student PNGs per held-out photo, written to a folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from realtime.types import FramePacket

HELD_OUT_PHOTOS = ("coffee", "chelsea", "grace_hopper")  # held out by models/train/style.py
BENCH_WIDTHS = (160, 240, 320, 480, 640)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of one shape (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255) of two uint8
    images of one shape (grey (H, W) or colour (H, W, 3): the mean over channels)."""
    if a.shape != b.shape:
        raise ValueError(f"ssim needs equal shapes, got {a.shape} and {b.shape}")
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for k in range(x.shape[2]):
        xi, yi = x[:, :, k], y[:, :, k]

        def blur(z: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

        mx, my = blur(xi), blur(yi)
        sxx = blur(xi * xi) - mx * mx
        syy = blur(yi * yi) - my * my
        sxy = blur(xi * yi) - mx * my
        s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        values.append(float(s[5:-5, 5:-5].mean()) if min(s.shape) > 10 else float(s.mean()))
    return float(np.mean(values))


def flicker(frames: Sequence[np.ndarray]) -> float:
    """Mean absolute difference (grey levels) between consecutive uint8 frames of one shape."""
    if len(frames) < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.mean([np.mean(np.abs(b.astype(np.int16) - a.astype(np.int16)))
                          for a, b in zip(frames[:-1], frames[1:])]))


def held_out_frames(size_wh: tuple[int, int] = (320, 240)) -> dict[str, np.ndarray]:
    """The held-out photos as BGR frames of ``size_wh`` (centre crop to 4:3, resize)."""
    import skimage.data

    photos: dict[str, np.ndarray] = {}
    for name in HELD_OUT_PHOTOS:
        loader = getattr(skimage.data, name, None)
        if loader is not None:
            photos[name] = cv2.cvtColor(loader(), cv2.COLOR_RGB2BGR)
    try:
        import matplotlib

        image = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
        if image is not None:
            photos["grace_hopper"] = image
    except ImportError:
        pass
    frames = {}
    w, h = size_wh
    for name, photo in photos.items():
        ph, pw = photo.shape[:2]
        cw, ch = (int(round(ph * w / h)), ph) if pw / ph > w / h else (pw, int(round(pw * h / w)))
        x0, y0 = (pw - cw) // 2, (ph - ch) // 2
        frames[name] = cv2.resize(photo[y0:y0 + ch, x0:x0 + cw], size_wh, interpolation=cv2.INTER_AREA)
    return frames


def _time_ms(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up (allocations, first-run graph work)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"p50": round(float(np.percentile(times, 50)), 2), "p95": round(float(np.percentile(times, 95)), 2)}


def _packet(frame: np.ndarray, index: int) -> FramePacket:
    return FramePacket(index=index, t_capture=time.perf_counter(), t_source=index / 30.0, frame_bgr=frame)


def bench_style(students: Sequence, teacher, repeats: int = 20, widths: Sequence[int] = BENCH_WIDTHS,
                out_dir: Path | None = None, flicker_frames: int = 30) -> dict[str, Any]:
    """The whole report (see the module docstring). ``students``: :class:`StyleChoice` of student models;
    ``teacher``: an open ``style_teacher26.onnx`` model or None (then no quality figures)."""
    from realtime.style.stage import StyleChoice, StyleTransfer, style_size_wh

    frames = held_out_frames()
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    sample = cv2.resize(next(iter(frames.values())), (640, 480), interpolation=cv2.INTER_LINEAR)
    entries = [(c, "student") for c in students]
    if teacher is not None:
        entries.append((StyleChoice("teacher26", teacher, 19), "teacher"))
    teacher_index = {}
    for choice, role in entries:
        stage = StyleTransfer([choice], adaptive=False, stabilise=False)
        multiple = choice.model.contract.input.size_multiple
        for width in widths:
            size = style_size_wh((640, 480), width, multiple)
            rgb = np.ascontiguousarray(cv2.resize(sample, size, interpolation=cv2.INTER_AREA)[:, :, ::-1])
            timing = _time_ms(lambda: stage.paint_rgb(rgb), repeats if role == "student" else max(2, repeats // 5))
            rows.append({"model": choice.model.path.name, "style": choice.name, "role": role,
                         "size": f"{size[0]}x{size[1]}", "net_ms": timing})
        if role == "student":
            stage.width = 320
            whole = _time_ms(lambda: stage(_packet(sample, 0)), repeats)
            rows.append({"model": choice.model.path.name, "style": choice.name, "role": role,
                         "size": "stage 640x480 @320", "net_ms": whole})
            info = choice.model.contract.extra.get("teacher") or {}
            if isinstance(info.get("style_index"), int):
                teacher_index[choice.name] = int(info["style_index"])
    quality: list[dict[str, Any]] = []
    previews: list[str] = []
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    for choice in students:
        student = StyleTransfer([choice], adaptive=False, stabilise=False, width=320)
        idx = teacher_index.get(choice.name)
        teach = (StyleTransfer([StyleChoice("teacher", teacher, idx)], adaptive=False, stabilise=False, width=320)
                 if teacher is not None and idx is not None else None)
        for name, frame in frames.items():
            s_img = student(_packet(frame, 0)).styled_bgr
            entry: dict[str, Any] = {"style": choice.name, "photo": name}
            if teach is not None:
                t_img = teach(_packet(frame, 0)).styled_bgr
                entry.update({"psnr_db": round(psnr(s_img, t_img), 2), "ssim": round(ssim(s_img, t_img), 4)})
                tiles = [frame, t_img, s_img]
            else:
                entry.update({"psnr_db": None, "ssim": None, "note": "no teacher file for this style"})
                tiles = [frame, s_img]
            quality.append(entry)
            if out_dir is not None:
                path = Path(out_dir) / f"{choice.name}_{name}.png"
                cv2.imwrite(str(path), np.concatenate(tiles, axis=1))
                previews.append(str(path))
    flick: list[dict[str, Any]] = []
    base = cv2.resize(frames[HELD_OUT_PHOTOS[0]] if HELD_OUT_PHOTOS[0] in frames else sample, (640, 480))
    noisy = [np.clip(base + rng.normal(0, 2.0, base.shape), 0, 255).astype(np.uint8) for _ in range(flicker_frames)]
    for choice in students:
        result = {"style": choice.name, "input_mad": round(flicker(noisy), 3)}
        for label, on in (("without", False), ("with", True)):
            stage = StyleTransfer([choice], adaptive=False, stabilise=on, width=320)
            outs = [stage(_packet(f, i)).styled_bgr for i, f in enumerate(noisy)]
            result[f"{label}_stabiliser"] = round(flicker(outs[1:]), 3)
        flick.append(result)
    return {"speed": rows, "quality": quality, "flicker": flick, "previews": previews,
            "held_out": list(frames)}


def format_report(report: dict[str, Any]) -> str:
    lines = ["speed (ms per frame; network only unless 'stage')",
             f"{'model':<28} {'role':<8} {'size':<20} {'p50':>8} {'p95':>8} {'FPS@p50':>8}"]
    for r in report["speed"]:
        p50 = r["net_ms"]["p50"]
        lines.append(f"{r['model']:<28} {r['role']:<8} {r['size']:<20} {p50:>8.2f} {r['net_ms']['p95']:>8.2f} "
                     f"{1000.0 / p50 if p50 else float('inf'):>8.1f}")
    lines += ["", "student vs teacher on held-out photos (320x240)",
              f"{'style':<20} {'photo':<14} {'PSNR dB':>8} {'SSIM':>7}"]
    by_style: dict[str, list[dict[str, Any]]] = {}
    for q in report["quality"]:
        by_style.setdefault(q["style"], []).append(q)
        ps = "-" if q["psnr_db"] is None else f"{q['psnr_db']:.2f}"
        ss = "-" if q["ssim"] is None else f"{q['ssim']:.4f}"
        lines.append(f"{q['style']:<20} {q['photo']:<14} {ps:>8} {ss:>7}")
    for style, qs in by_style.items():
        if all(q["psnr_db"] is not None for q in qs):
            lines.append(f"{style:<20} {'mean':<14} {np.mean([q['psnr_db'] for q in qs]):>8.2f} "
                         f"{np.mean([q['ssim'] for q in qs]):>7.4f}")
    lines += ["", "flicker on a static scene with sensor noise (mean abs difference of consecutive frames)",
              f"{'style':<20} {'input':>8} {'without':>9} {'with':>9}"]
    for f in report["flicker"]:
        lines.append(f"{f['style']:<20} {f['input_mad']:>8.3f} {f['without_stabiliser']:>9.3f} "
                     f"{f['with_stabiliser']:>9.3f}")
    if report["previews"]:
        lines.append(f"\npreviews (original | teacher | student): {Path(report['previews'][0]).parent}")
    return "\n".join(lines)
