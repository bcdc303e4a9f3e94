"""Threshold calibration for door mode: genuine/impostor distances, threshold at a target FAR, TAR there.

Pairs come from the enrolled gallery (every two embeddings of one person: genuine; of two persons: impostor), plus,
optionally, faces from extra images of people who are not enrolled (each against every enrolled embedding:
impostor). The threshold is the largest distance whose false-accept rate over those impostor pairs is at most the
target (:func:`realtime.face.verification.threshold_at_far`; a pair is accepted when distance < threshold).

Where it is stored: ``<gallery file>.calibration.json`` next to the gallery (the gallery's schema belongs to the
face package and its file is checked table by table, so a side file keeps the two independent). It records the
embedding model's sha256 and a fingerprint of the gallery's embeddings: door mode uses it only for that model, and
says so when the gallery changed since (the calibration is then stale; run ``rtv calibrate`` again).

Caveat: these are pair statistics over enrolment photos, which are usually better than door frames; the FAR
resolution is one over the number of impostor pairs, so a target of 0.1% needs well over 1000 impostor pairs
(add ``--impostors DIR``) before the figure means anything. :func:`calibrate` says so in ``notes``, and
``rtv calibrate`` stores no threshold whose FAR it could not measure (:attr:`Calibration.measurable`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from realtime.errors import ConfigError, GalleryError
from realtime.face.matching import pairwise_distances
from realtime.face.verification import far_measurable, pair_distances, threshold_at_far

FORMAT = "rtv-door-calibration"
VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and the figures behind it (``tar``/``far`` at the threshold; NaN: not measured)."""

    threshold: float
    target_far: float
    far: float
    tar: float
    n_genuine: int
    n_impostor: int
    model_sha256: str
    gallery_fingerprint: str
    created: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def measurable(self) -> bool:
        """Whether there are enough impostor pairs to measure the target FAR (at least ``1 / target_far``).

        When not, the threshold is just the smallest impostor distance seen, with no margin below it: too loose to
        store (``rtv calibrate`` then refuses to write it).
        """
        return self.n_impostor * self.target_far >= 1.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data.update(format=FORMAT, version=VERSION)
        for key in ("far", "tar"):
            if not math.isfinite(data[key]):
                data[key] = None
        return data


def gallery_fingerprint(vectors: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over the gallery's labels and float32 embeddings (order as given)."""
    digest = hashlib.sha256()
    for label, vector in zip(np.asarray(labels).tolist(), np.asarray(vectors, dtype="<f4")):
        digest.update(str(label).encode("utf-8") + b"\0" + vector.tobytes())
    return digest.hexdigest()


def calibration_path(gallery_path: str | Path) -> Path:
    gallery_path = Path(gallery_path)
    return gallery_path.with_name(gallery_path.name + ".calibration.json")


def impostor_distances(gallery_vectors: np.ndarray, extra_vectors: np.ndarray) -> np.ndarray:
    """Every extra (not enrolled) face against every enrolled embedding: float64 (K*M,)."""
    extra = np.asarray(extra_vectors, dtype=np.float32)
    if extra.size == 0 or len(gallery_vectors) == 0:
        return np.zeros(0)
    return pairwise_distances(extra, gallery_vectors).ravel()


def calibrate(vectors: np.ndarray, labels: np.ndarray, target_far: float, model_sha256: str,
              extra_impostor_vectors: np.ndarray | None = None) -> tuple[Calibration, np.ndarray, np.ndarray]:
    """Calibrate on the gallery (``vectors`` float32 (M, D), ``labels`` (M,)) and optional extra impostor faces
    (float32 (K, D)). Returns ``(calibration, genuine distances, impostor distances)``."""
    if not 0 < target_far < 1:
        raise ConfigError(f"door.target_far={target_far!r}: must be in (0, 1), e.g. 0.001 for 0.1%")
    genuine, impostor = pair_distances(vectors, labels)
    if extra_impostor_vectors is not None:
        impostor = np.concatenate([impostor, impostor_distances(vectors, extra_impostor_vectors)])
    if impostor.size == 0:
        raise GalleryError("no impostor pairs to calibrate on: the gallery needs at least two enrolled persons, "
                           "or give photos of other people with --impostors DIR")
    threshold, far, tar = threshold_at_far(genuine, impostor, target_far)
    notes = []
    if not far_measurable(impostor.size, target_far):
        notes.append(f"only {impostor.size} impostor pairs: a FAR of {target_far:g} cannot be measured (it needs "
                     f"{math.ceil(1.0 / target_far)}); the threshold found is just the smallest impostor distance; "
                     "add photos of people who are not enrolled with --impostors DIR")
    if genuine.size == 0:
        tar = math.nan
        notes.append("no genuine pairs (every person has one embedding): TAR not measured; enrol 2+ photos each")
    cal = Calibration(threshold=float(threshold), target_far=float(target_far), far=float(far), tar=float(tar),
                      n_genuine=int(genuine.size), n_impostor=int(impostor.size), model_sha256=model_sha256,
                      gallery_fingerprint=gallery_fingerprint(vectors, labels),
                      created=datetime.now(timezone.utc).isoformat(timespec="seconds"), notes=tuple(notes))
    return cal, genuine, impostor


def save_calibration(cal: Calibration, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(cal.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_calibration(path: str | Path) -> Calibration | None:
    """The calibration at ``path``, None if there is none; :class:`GalleryError` when it is unreadable."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} version {VERSION} file")
        threshold = float(data["threshold"])
        if not math.isfinite(threshold) or threshold <= 0:
            raise ValueError(f"threshold {threshold!r} is not a positive number")
        return Calibration(
            threshold=threshold, target_far=float(data["target_far"]),
            far=math.nan if data["far"] is None else float(data["far"]),
            tar=math.nan if data["tar"] is None else float(data["tar"]),
            n_genuine=int(data["n_genuine"]), n_impostor=int(data["n_impostor"]),
            model_sha256=str(data["model_sha256"]), gallery_fingerprint=str(data["gallery_fingerprint"]),
            created=str(data["created"]), notes=tuple(data.get("notes") or ()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GalleryError(f"calibration file {path} is unreadable ({exc}); run 'rtv calibrate' again or delete "
                           "it") from None


def choose_threshold(configured: float, use_calibration: bool, calibration: Calibration | None,
                     model_sha256: str, fingerprint: str) -> tuple[float, str]:
    """The match threshold door mode uses, and a sentence saying which and why (printed at start)."""
    if not use_calibration:
        return configured, f"threshold {configured:g} from config (door.use_calibration is false)"
    if calibration is None:
        return configured, (f"threshold {configured:g} from config (door.match_threshold): no calibration yet; "
                            "run 'rtv calibrate'")
    if calibration.model_sha256 != model_sha256:
        return configured, (f"threshold {configured:g} from config (door.match_threshold): the calibration was "
                            "made with another embedding model; run 'rtv calibrate' again")
    text = (f"calibrated threshold {calibration.threshold:.4f} (FAR {calibration.far:.2g} at target "
            f"{calibration.target_far:g}, TAR {calibration.tar:.3f}, {calibration.created})")
    if calibration.gallery_fingerprint != fingerprint:
        text += "; WARNING: the gallery changed since calibration, run 'rtv calibrate' again"
    return calibration.threshold, text


def plot_histogram(genuine: np.ndarray, impostor: np.ndarray, threshold: float, path: str | Path,
                   title: str = "") -> Path | None:
    """Genuine/impostor distance histograms with the threshold, as PNG; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    values = np.concatenate([genuine, impostor])
    bins = np.linspace(0.0, max(1.2, float(values.max()) if values.size else 1.2), 60)
    if impostor.size:
        ax.hist(impostor, bins=bins, density=True, alpha=0.6, color="tab:red", label=f"impostor ({impostor.size})")
    if genuine.size:
        ax.hist(genuine, bins=bins, density=True, alpha=0.6, color="tab:green", label=f"genuine ({genuine.size})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("Euclidean distance between embeddings")
    ax.set_ylabel("density")
    ax.set_title(title or "door calibration")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(str(path))
    return path
