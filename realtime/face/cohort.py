"""A background cohort: embeddings of faces of people who are not enrolled, used as second-best candidates.

With one person enrolled, "is this face that person?" has nothing to compare with but a threshold. The cohort
gives it strangers: a face is named only when it is nearer the enrolled person than any cohort face by the match
margin (:func:`realtime.face.matching.match_faces`). The shipped cohort, ``realtime/zoo/face_cohort.npz``, is built
by ``python -m recipes.face_cohort build`` from registry photos (its MANIFEST entry says which), embedded with the
shipped embedder; it is only valid for that embedder (its sha256 is stored beside the vectors) and the chip method
it was made with (the alignment template is stored too).

File format (``np.load(..., allow_pickle=False)``): ``vectors`` float32 (C, D); ``sources`` (C,) str, where each
face came from; ``model_sha256`` () str; ``template5`` float32 (5, 2), the alignment template used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.errors import ModelError
from realtime.face.matching import pairwise_distances

log = logging.getLogger(__name__)

# Closer than this to an enrolled embedding, a cohort face is taken to be that person and left out (the same photo
# or the same person; different people rarely come this close with the dlib descriptor).
SAME_PERSON_DISTANCE = 0.4


@dataclass(frozen=True)
class Cohort:
    """``vectors``: float32 (C, D); ``sources``: (C,) where each came from; ``model_sha256``; ``template5``."""

    vectors: np.ndarray
    sources: tuple[str, ...]
    model_sha256: str
    template5: np.ndarray


def save_cohort(path: Path | str, cohort: Cohort) -> None:
    np.savez(Path(path), vectors=np.asarray(cohort.vectors, np.float32), sources=np.asarray(cohort.sources, dtype=str),
             model_sha256=np.asarray(cohort.model_sha256), template5=np.asarray(cohort.template5, np.float32))


def load_cohort(path: Path | str) -> Cohort:
    """Read a cohort file; :class:`ModelError` when it is missing or malformed."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors = np.asarray(data["vectors"], np.float32)
            sources = tuple(str(s) for s in data["sources"])
            sha = str(data["model_sha256"])
            template = np.asarray(data["template5"], np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read the face cohort {path}: {exc}; rebuild it with "
                         "'python -m recipes.face_cohort build'") from exc
    if vectors.ndim != 2 or len(sources) != len(vectors) or template.shape != (5, 2):
        raise ModelError(f"{path}: malformed face cohort (vectors {vectors.shape}, {len(sources)} sources, template "
                         f"{template.shape})")
    return Cohort(vectors, sources, sha, template)


def cohort_for(cohort: Cohort, embedder_sha256: str, template5: np.ndarray, gallery_vectors: np.ndarray
               ) -> np.ndarray | None:
    """The cohort vectors to use with this embedder and gallery: float32 (C', D), or None when the cohort was made
    with another embedder or chip template (logged: it would compare descriptors of different spaces).

    Cohort faces within :data:`SAME_PERSON_DISTANCE` of an enrolled embedding are left out (logged), so enrolling
    someone who happens to be in the cohort does not block their own name.
    """
    if cohort.model_sha256 != embedder_sha256:
        log.warning("face cohort left out: it was built with embedder %s..., this one is %s...; rebuild it with "
                    "'python -m recipes.face_cohort build'", cohort.model_sha256[:12], embedder_sha256[:12])
        return None
    if not np.allclose(cohort.template5, np.asarray(template5, np.float32), atol=0.5):
        log.warning("face cohort left out: it was built with another alignment template; rebuild it with "
                    "'python -m recipes.face_cohort build'")
        return None
    vectors = cohort.vectors
    gallery = np.asarray(gallery_vectors, np.float32)
    if len(gallery) and len(vectors):
        keep = pairwise_distances(vectors, gallery).min(axis=1) >= SAME_PERSON_DISTANCE
        if not keep.all():
            log.info("face cohort: %d of %d faces left out as enrolled people (%s)", int((~keep).sum()),
                     len(vectors), ", ".join(s for s, k in zip(cohort.sources, keep) if not k))
        vectors = vectors[keep]
    log.info("face cohort: %d background faces as second-best candidates", len(vectors))
    return vectors
