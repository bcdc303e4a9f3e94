"""An independent reference for the darknet import: a plain numpy (float64) forward of darknet's layers, written
here from darknet's layer definitions. It reads the cfg and the weights itself and shares no code with
``models.darknet`` / ``models.importers.darknet_weights``; the PyTorch network must agree with it.

Run as a script to print the figures recorded in the zoo manifest:
``python tests/models/test_darknet_reference.py CFG WEIGHTS`` (JSON on stdout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view


# ------------------------------------------------------------------ the reference (numpy only)

def ref_parse(text: str) -> list[tuple[str, dict[str, str]]]:
    sections = []
    for raw in text.splitlines():
        line = raw.split("#")[0].split(";")[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append((line.strip("[]").strip(), {}))
        else:
            key, _, value = line.partition("=")
            sections[-1][1][key.strip()] = value.strip()
    return sections


def ref_read_weights(path: Path) -> np.ndarray:
    data = Path(path).read_bytes()
    major, minor, _ = np.frombuffer(data[:12], "<i4")
    start = 20 if (major * 10 + minor >= 2 and major < 1000 and minor < 1000) else 16
    return np.frombuffer(data[start:], "<f4").astype(np.float64)


def _act(x: np.ndarray, name: str) -> np.ndarray:
    if name == "leaky":
        return np.where(x > 0, x, 0.1 * x)
    if name == "relu":
        return np.maximum(x, 0)
    if name == "logistic":
        return 1 / (1 + np.exp(-x))
    if name == "mish":
        return x * np.tanh(np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0))
    assert name == "linear", name
    return x


def _conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int) -> np.ndarray:
    """x (C, H, W), w (F, C/groups, k, k) -> (F, OH, OW), zero padding ``pad`` on every side (im2col)."""
    c, h, wd = x.shape
    f, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    win = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::stride, ::stride][:, :oh, :ow]  # (C, OH, OW, k, k)
    out = []
    fg = f // groups
    for g in range(groups):
        cols = win[g * cg:(g + 1) * cg].transpose(1, 2, 0, 3, 4).reshape(oh * ow, cg * k * k)
        out.append((cols @ w[g * fg:(g + 1) * fg].reshape(fg, -1).T).T.reshape(fg, oh, ow))
    return np.concatenate(out, 0)


def _maxpool(x: np.ndarray, size: int, stride: int, padding: int) -> np.ndarray:
    """darknet: out = (in + padding - size) / stride + 1; window (i, j) starts at i * stride - padding / 2; cells
    outside the input are skipped."""
    c, h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = padding // 2
    big = np.full((c, h + size + padding + stride * 2, w + size + padding + stride * 2), -np.inf)
    big[:, off:off + h, off:off + w] = x
    out = np.full((c, oh, ow), -np.inf)
    for di in range(size):
        for dj in range(size):
            out = np.maximum(out, big[:, di:di + stride * oh:stride, dj:dj + stride * ow:stride][:, :oh, :ow])
    return out


def reference_forward(cfg_text: str, weights: np.ndarray, image_chw: np.ndarray) -> list[np.ndarray]:
    """One image float (C, H, W) -> the raw maps feeding each [yolo]/[region] layer, float64 (A*(5+C), h, w)."""
    sections = ref_parse(cfg_text)
    x = image_chw.astype(np.float64)
    outputs, heads, pos = [], [], 0
    for kind, o in sections[1:]:
        if kind == "convolutional":
            f, k = int(o.get("filters", 1)), int(o.get("size", 1))
            s, g = int(o.get("stride", 1)), int(o.get("groups", 1))
            pad = k // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
            bn = int(o.get("batch_normalize", 0))
            c = x.shape[0]
            biases = weights[pos:pos + f]
            pos += f
            if bn:
                scales, mean, var = (weights[pos + i * f:pos + (i + 1) * f] for i in range(3))
                pos += 3 * f
            n = f * (c // g) * k * k
            kernel = weights[pos:pos + n].reshape(f, c // g, k, k)
            pos += n
            y = _conv(x, kernel, s, pad, g)
            if bn:
                y = (y - mean[:, None, None]) / (np.sqrt(var)[:, None, None] + 0.000001)
                y = y * scales[:, None, None]
            y = y + biases[:, None, None]
            x = _act(y, o.get("activation", "logistic"))
        elif kind == "maxpool":
            size = int(o.get("size", 1))
            x = _maxpool(x, size, int(o.get("stride", 1)), int(o.get("padding", size - 1)))
        elif kind == "upsample":
            s = int(o.get("stride", 2))
            x = x.repeat(s, 1).repeat(s, 2) * float(o.get("scale", 1))
        elif kind == "route":
            idx = [int(v) for v in o["layers"].split(",")]
            groups, gid = int(o.get("groups", 1)), int(o.get("group_id", 0))
            parts = []
            for i in idx:
                src = outputs[i if i >= 0 else len(outputs) + i]
                step = src.shape[0] // groups
                parts.append(src[gid * step:(gid + 1) * step])
            x = np.concatenate(parts, 0)
        elif kind == "shortcut":
            i = int(o["from"])
            x = _act(x + outputs[i if i >= 0 else len(outputs) + i], o.get("activation", "linear"))
        elif kind in ("yolo", "region"):
            heads.append(x)
        else:
            raise ValueError(f"reference does not know [{kind}]")
        outputs.append(x)
    if pos != len(weights):
        raise ValueError(f"reference consumed {pos} of {len(weights)} floats")
    return heads


def reference_detections(cfg_text: str, heads: list[np.ndarray], net_wh: tuple[int, int], thresh: float = 0.5,
                         nms: float = 0.45) -> list[tuple[int, float, np.ndarray]]:
    """darknet's [yolo] decode: x = (i + logistic(tx)) / lw * net_w, w = exp(tw) * anchor_w; per-class
    probability obj * logistic(class); keep > thresh; per-class greedy NMS. Returns (class, score, xyxy net px)."""
    yolos = [o for k, o in ref_parse(cfg_text) if k == "yolo"]
    found = []
    for raw, o in zip(heads, yolos):
        anchors = [float(v) for v in o["anchors"].split(",")]
        mask = [int(v) for v in o["mask"].split(",")]
        classes = int(o["classes"])
        _, lh, lw = raw.shape
        t = raw.reshape(len(mask), 5 + classes, lh, lw)
        sig = 1 / (1 + np.exp(-t))
        for a, m in enumerate(mask):
            for r in range(lh):
                for c in range(lw):
                    obj = sig[a, 4, r, c]
                    if obj <= thresh:
                        continue
                    cx = (c + sig[a, 0, r, c]) / lw * net_wh[0]
                    cy = (r + sig[a, 1, r, c]) / lh * net_wh[1]
                    bw, bh = np.exp(t[a, 2, r, c]) * anchors[2 * m], np.exp(t[a, 3, r, c]) * anchors[2 * m + 1]
                    for k in range(classes):
                        p = obj * sig[a, 5 + k, r, c]
                        if p > thresh:
                            found.append((k, float(p), np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])))
    found.sort(key=lambda d: -d[1])
    kept = []
    for d in found:
        if all(k != d[0] or _iou(b, d[2]) <= nms for k, _, b in kept):
            kept.append(d)
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def letterboxed_photo(name: str, size: int) -> np.ndarray:
    """A scikit-image photo letterboxed darknet's way (centred, grey 128/255), float (3, size, size) RGB / 255;
    resized with OpenCV bilinear like the runtime."""
    import cv2
    from skimage import data

    rgb = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    h, w = rgb.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    canvas = np.full((size, size, 3), 128, np.uint8)
    top, left = int(round((size - nh) / 2 - 0.1)), int(round((size - nw) / 2 - 0.1))
    canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas.transpose(2, 0, 1).astype(np.float32) / 255.0


def torch_vs_reference(cfg_path: Path, weights_path: Path, images_chw: list[np.ndarray]) -> dict[str, float]:
    """Max abs / rel error of the PyTorch import against the reference, over the images and heads."""
    import torch

    from models.importers.darknet_weights import load_darknet

    net, _ = load_darknet(cfg_path, weights_path)
    text, weights = Path(cfg_path).read_text(), ref_read_weights(weights_path)
    max_abs, max_ref = 0.0, 0.0
    for img in images_chw:
        ref = reference_forward(text, weights, img)
        with torch.no_grad():
            got = [o[0].numpy().astype(np.float64) for o in net(torch.from_numpy(img[None].astype(np.float32)))]
        assert [g.shape for g in got] == [r.shape for r in ref]
        for g, r in zip(got, ref):
            max_abs = max(max_abs, float(np.abs(g - r).max()))
            max_ref = max(max_ref, float(np.abs(r).max()))
    return {"max_abs": max_abs, "max_rel": max_abs / max_ref, "max_ref_magnitude": max_ref}


# ------------------------------------------------------------------ tests

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", ["yolov3-tiny", "yolov3", "yolov4-tiny", "yolov2-tiny"])
def test_pytorch_matches_numpy_reference_on_small_cfgs(darknet_files, name):
    cfg, weights = darknet_files(name, seed=3)
    rng = np.random.default_rng(1)
    images = [rng.random((3, 64, 64)).astype(np.float32), rng.random((3, 96, 128)).astype(np.float32)]
    err = torch_vs_reference(cfg, weights, images)
    assert err["max_abs"] < 1e-4 and err["max_ref_magnitude"] > 0.1, err


@pytest.fixture(scope="module")
def real_reference(registry_yolov3_tiny):
    cfg, weights, _ = registry_yolov3_tiny
    image = letterboxed_photo("coffee", 416)
    err = torch_vs_reference(cfg, weights, [image])
    return err


def test_real_yolov3_tiny_matches_numpy_reference(real_reference):
    assert real_reference["max_abs"] < 1e-3 and real_reference["max_rel"] < 1e-5, real_reference


@pytest.mark.parametrize("variant, min_iou, max_dscore", [("float", 0.9, 0.02), ("default", 0.9, 0.02),
                                                         ("int8", 0.85, 0.1)])
@pytest.mark.parametrize("photo, expected", [("coffee", "cup"), ("motorcycle", "motorbike")])
def test_shipped_detector_finds_what_the_reference_finds(registry_yolov3_tiny, photo, expected, variant, min_iou,
                                                         max_dscore):
    """Every object the reference forward + darknet decode finds with confidence (> 0.5) on a real photo, the
    shipped ONNX detector served by realtime finds with the same class: the float file on the CPU provider, the
    default (the file, provider and precision ``runtime.providers/precision: auto`` choose on this machine), and
    the INT8 file where a precision record says it passes on this CPU class (INT8 kernels differ by CPU)."""
    from realtime.build import model_path, runtime_options
    from realtime.config import ZOO_DIR, RuntimeConfig
    from realtime.cpu import cpu_info
    from realtime.precision import manifest_for, precision_records
    from realtime.runtime import OnnxModel, RuntimeOptions
    from realtime.detect.yolo import YoloDetector
    from skimage import data

    if variant == "default":
        runtime = RuntimeConfig()
        shipped = model_path("", "detector", runtime=runtime)
        options = runtime_options(runtime, role="detector")
    else:
        shipped = ZOO_DIR / ("yolov3_tiny_coco.onnx" if variant == "float" else "yolov3_tiny_coco_int8.onnx")
        options = RuntimeOptions(providers="cpu")
        if variant == "int8" and not any(
                r["precision"] == "int8" and r["provider"] == "cpu" and r["isa"] == cpu_info().isa and r["pass"]
                for r in precision_records(manifest_for(ZOO_DIR), "yolov3_tiny_coco.onnx")):
            pytest.skip(f"the INT8 detector is not measured to pass on a {cpu_info().isa} CPU, so it is never "
                        "chosen here")
    if not shipped.is_file():
        pytest.skip(f"{shipped.name} does not ship")
    cfg, weights, names = registry_yolov3_tiny
    classes = [n.strip() for n in Path(names).read_text().splitlines() if n.strip()]
    text = Path(cfg).read_text()
    rgb = data.stereo_motorcycle()[0] if photo == "motorcycle" else getattr(data, photo)()
    h, w = rgb.shape[:2]
    ref = reference_detections(text, reference_forward(text, ref_read_weights(weights), letterboxed_photo(photo, 416)),
                               (416, 416))
    assert expected in {classes[k] for k, _, _ in ref}
    scale = min(416 / w, 416 / h)
    nw, nh = int(round(w * scale)), int(round(h * scale))
    left, top = int(round((416 - nw) / 2 - 0.1)), int(round((416 - nh) / 2 - 0.1))
    with OnnxModel(shipped, options, expected_kind="yolo") as model:
        det = YoloDetector(model, input_size=(416, 416), score_threshold=0.5).detect(
            np.ascontiguousarray(rgb[..., ::-1]))
    for k, score, box in ref:
        src = np.array([(box[0] - left) * w / nw, (box[1] - top) * h / nh, (box[2] - left) * w / nw,
                        (box[3] - top) * h / nh])
        src = np.clip(src, 0, [w, h, w, h])
        same = [i for i, c in enumerate(det.class_ids) if classes[c] == classes[k]]
        assert same, f"{photo}: reference found {classes[k]} {score:.2f}, the shipped detector did not"
        assert max(_iou(src, det.boxes_xyxy[i]) for i in same) > min_iou
        assert min(abs(float(det.scores[i]) - score) for i in same) < max_dscore


if __name__ == "__main__":  # figures for the manifest
    cfg_arg, weights_arg = Path(sys.argv[1]), Path(sys.argv[2])
    photos = ["coffee", "astronaut", "chelsea", "motorcycle"]
    result = {"inputs": [f"{p} letterboxed 416" for p in photos[:2]] + [f"{p} letterboxed 320" for p in photos[2:]],
              "reference": "tests/models/test_darknet_reference.py: plain numpy float64 forward from darknet's "
                           "layer definitions (own cfg and weights reader)"}
    images = [letterboxed_photo(p, 416) for p in photos[:2]] + [letterboxed_photo(p, 320) for p in photos[2:]]
    result.update(torch_vs_reference(cfg_arg, weights_arg, images))
    print(json.dumps(result, indent=2))
