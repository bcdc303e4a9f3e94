"""Open-set face matching: nearest enrolled person by Euclidean distance, with a threshold and a margin.

Pure numpy; no gallery or ONNX Runtime needed. The gallery supplies ``(vectors, labels)``
(see :meth:`realtime.gallery.store.Gallery.vectors`).
"""

from __future__ import annotations

import math

import numpy as np

from realtime.errors import ConfigError, GalleryError


def pairwise_distances(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows.

    ``query``: float (N, D); ``gallery``: float (M, D) -> float64 (N, M), computed as
    ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))`` in float64 (one matrix product, no (N, M, D) temporary).
    """
    q = np.asarray(query, dtype=np.float64)
    g = np.asarray(gallery, dtype=np.float64)
    sq = np.einsum("nd,nd->n", q, q)[:, None] + np.einsum("md,md->m", g, g)[None, :] - 2.0 * (q @ g.T)
    return np.sqrt(np.maximum(sq, 0.0))


def per_label_min(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Best (smallest) distance per label.

    ``distances``: float (N, M); ``labels``: (M,) names -> (names (P,) sorted unique labels, best float64 (N, P)),
    where ``best[n, p]`` is the minimum of ``distances[n, m]`` over the embeddings ``m`` of person ``names[p]``.
    """
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    best = np.minimum.reduceat(np.asarray(distances, dtype=np.float64)[:, order], starts, axis=1)
    return names, best


def match_faces(query: np.ndarray, gallery: np.ndarray, labels, match_threshold: float,
                margin: float = 0.0, cohort: np.ndarray | None = None
                ) -> tuple[tuple[str | None, ...], np.ndarray, np.ndarray]:
    """Match face embeddings against a gallery, open set.

    ``query``: float32 (N, D) embeddings of the faces in a frame; ``gallery``: float32 (M, D) enrolled embeddings;
    ``labels``: (M,) person name of each gallery row (a person may have several rows).

    Each person's distance is the minimum over that person's embeddings. A face gets the best person's name only when
    that distance is ``< match_threshold`` and the second-best *person* is at least ``margin`` further away
    (``second - best >= margin``); otherwise its identity is ``None`` (unknown), but the distances are still reported.

    Returns ``(identities, distances, second_distances)``: ``identities`` tuple of N names or None;
    ``distances`` float32 (N,) best person's distance; ``second_distances`` float32 (N,) second-best person's distance
    (``inf`` when the gallery holds a single person and there is no cohort, who then always passes the margin rule).
    With an empty gallery every identity is None and both distance arrays are NaN. A query row containing NaN gets
    NaN distances and None.

    ``cohort``: float32 (C, D) embeddings of people who are *not* enrolled (background faces). Each cohort row is a
    candidate like another person: the second-best distance is the smaller of the second-best person's and the
    nearest cohort face's, so a face that is as close to some stranger as to the enrolled person is not named. This
    gives the open-set decision something to compare with when a single person is enrolled.
    """
    threshold = _positive_finite("match_threshold", match_threshold, allow_zero=False)
    margin_value = _positive_finite("margin", margin, allow_zero=True)
    q = np.asarray(query, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    names_in = np.asarray(labels)
    if q.ndim != 2:
        raise ValueError(f"query embeddings must be (N, D), got shape {q.shape}")
    n = q.shape[0]
    if g.size == 0 or names_in.size == 0:
        nan = np.full(n, np.nan, dtype=np.float32)
        return (None,) * n, nan, nan.copy()
    if g.ndim != 2:
        raise ValueError(f"gallery embeddings must be (M, D), got shape {g.shape}")
    if g.shape[1] != q.shape[1]:
        raise GalleryError(
            f"gallery embeddings have size {g.shape[1]} but the embedder gives {q.shape[1]}: the gallery was built "
            "with another model; re-enrol with 'rtv enroll' or rebuild the gallery")
    if names_in.shape != (g.shape[0],):
        raise ValueError(f"labels must be ({g.shape[0]},) to match the gallery rows, got shape {names_in.shape}")
    if n == 0:
        empty = np.zeros(0, dtype=np.float32)
        return (), empty, empty.copy()

    names, per_person = per_label_min(pairwise_distances(q, g), names_in)
    best_idx = np.argmin(per_person, axis=1)
    best = per_person[np.arange(n), best_idx]
    if per_person.shape[1] >= 2:
        second = np.partition(per_person, 1, axis=1)[:, 1]
    else:
        second = np.full(n, np.inf)
    if cohort is not None and len(cohort):
        c = np.asarray(cohort, dtype=np.float32)
        if c.ndim != 2 or c.shape[1] != q.shape[1]:
            raise GalleryError(f"cohort embeddings have shape {c.shape} but the embedder gives size {q.shape[1]}: "
                               "the cohort was built with another model")
        second = np.minimum(second, pairwise_distances(q, c).min(axis=1))
    accepted = (best < threshold) & ((second - best) >= margin_value)
    identities = tuple(str(names[i]) if ok else None for i, ok in zip(best_idx, accepted))
    return identities, best.astype(np.float32), second.astype(np.float32)


def _positive_finite(name: str, value: float, allow_zero: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return number
