"""Verification statistics: genuine/impostor distances, ROC, threshold at a target false-accept rate.

A pair is accepted when its distance is ``< threshold`` (the same rule as :func:`realtime.face.matching.match_faces`).
FAR = accepted impostor pairs / impostor pairs; TAR = accepted genuine pairs / genuine pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pair_distances(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs of ``vectors``: float32 (N, D) with ``labels`` (N,).

    Returns ``(genuine, impostor)``: float64 distances of same-label pairs and of different-label pairs.
    """
    v = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(labels)
    if len(v) < 2:
        return np.zeros(0), np.zeros(0)
    sq = np.sum(v * v, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * v @ v.T, 0.0)
    iu = np.triu_indices(len(v), k=1)
    dist = np.sqrt(d2[iu])
    same = labels[iu[0]] == labels[iu[1]]
    return dist[same], dist[~same]


@dataclass(frozen=True)
class Roc:
    """``thresholds`` ascending; ``far``/``tar`` at each (accept when distance < threshold)."""

    thresholds: np.ndarray
    far: np.ndarray
    tar: np.ndarray


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> Roc:
    """Exact ROC over every distinct distance (plus one threshold above all), vectorised with sorted counts."""
    genuine = np.sort(np.asarray(genuine, dtype=np.float64))
    impostor = np.sort(np.asarray(impostor, dtype=np.float64))
    values = np.concatenate([genuine, impostor])
    top = values.max() + 1e-6 if values.size else 1.0
    thresholds = np.unique(np.concatenate([values, [top]]))
    tar = np.searchsorted(genuine, thresholds, side="left") / max(1, len(genuine))
    far = np.searchsorted(impostor, thresholds, side="left") / max(1, len(impostor))
    return Roc(thresholds, far, tar)


def threshold_at_far(genuine: np.ndarray, impostor: np.ndarray, target_far: float) -> tuple[float, float, float]:
    """The largest threshold whose FAR is ``<= target_far``; returns ``(threshold, far, tar)`` at it.

    With no impostor pairs the FAR cannot be measured: the threshold is then above every genuine distance and the
    caller should say that the figure is not backed by data.
    """
    roc = roc_curve(genuine, impostor)
    ok = np.nonzero(roc.far <= target_far)[0]
    k = int(ok[-1]) if ok.size else 0
    return float(roc.thresholds[k]), float(roc.far[k]), float(roc.tar[k])


def best_accuracy_threshold(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises pair accuracy (genuine accepted + impostor rejected); ``(threshold, accuracy)``."""
    roc = roc_curve(genuine, impostor)
    n_g, n_i = len(genuine), len(impostor)
    if n_g + n_i == 0:
        return float("nan"), float("nan")
    correct = roc.tar * n_g + (1.0 - roc.far) * n_i
    k = int(np.argmax(correct))
    return float(roc.thresholds[k]), float(correct[k] / (n_g + n_i))


def far_measurable(n_impostor: int, far: float) -> bool:
    """A FAR can be measured only with at least ``1 / far`` impostor pairs (one false accept would exceed it)."""
    return n_impostor * far >= 1.0


def verification_report(genuine: np.ndarray, impostor: np.ndarray, fars: tuple[float, ...]) -> dict:
    """TAR and threshold at each FAR (``supported`` False, with the reason, when the pairs cannot measure it),
    the best-accuracy threshold and the mean genuine/impostor distances."""
    import math

    rows = []
    for far in fars:
        row: dict = {"far": far}
        if len(genuine) == 0 or not far_measurable(len(impostor), far):
            row["supported"] = False
            row["reason"] = (f"{len(impostor)} impostor pairs; FAR {far:g} needs at least {math.ceil(1 / far)}"
                             if len(genuine) else "no genuine pairs")
        else:
            threshold, far_got, tar = threshold_at_far(genuine, impostor, far)
            row.update(supported=True, tar=tar, threshold=threshold, far_measured=far_got)
        rows.append(row)
    best_threshold, accuracy = best_accuracy_threshold(genuine, impostor)
    return {"genuine_pairs": int(len(genuine)), "impostor_pairs": int(len(impostor)), "at_far": rows,
            "best_threshold": best_threshold, "best_accuracy": accuracy,
            "genuine_mean": float(np.mean(genuine)) if len(genuine) else None,
            "impostor_mean": float(np.mean(impostor)) if len(impostor) else None}
