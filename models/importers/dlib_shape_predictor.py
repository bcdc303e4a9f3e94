"""Read dlib's serialised ``shape_predictor`` (``dlib::serialize(sp, file)``; e.g. the 5-point model's .dat).

Written from the format as dlib's ``image_processing/shape_predictor.h`` and ``serialize.h`` define it (no dlib
code is used). After a version integer (1), the file holds:

* ``initial_shape``: a ``matrix<float,0,1>``: rows and columns written negated (``-nr``, ``-nc``), then the values
  (x0, y0, x1, y1, ...) in the box-normalised frame (the box's top-left corner at 0, its bottom-right at 1);
* ``forests``: a vector (size, items) of cascades, each a vector of regression trees; a tree is a vector of splits
  (``idx1``, ``idx2`` integers, ``thresh`` float) followed by a vector of leaf values (each a ``matrix<float,0,1>``
  shaped like the initial shape); the tree is complete: leaf count = split count + 1;
* ``anchor_idx``: per cascade, a vector of landmark indices (one per feature pixel);
* ``deltas``: per cascade, a vector of ``vector<float,2>`` (x, y) offsets of each feature pixel from its anchor
  landmark, in the normalised frame of the initial shape.

Pure numpy, torch-free; integers and floats use :class:`models.importers.dlib_dat.DlibReader`'s primitives.
Errors are :class:`models.importers.dlib_dat.DlibFormatError` (``export/`` turns them into ``ExportError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.importers.dlib_dat import DlibFormatError, DlibReader

FORMAT_VERSION = 1
_MAX_COUNT = 10_000_000  # any vector longer than this is a corrupt length field, not a model


@dataclass(frozen=True)
class ShapePredictorArrays:
    """A shape predictor as flat arrays (C cascades, T trees per cascade, S splits and L = S + 1 leaves per tree,
    P feature pixels per cascade, K landmarks).

    ``initial_shape``: float32 (K, 2); ``split_idx``: int32 (C, T, S, 2) feature pixel pairs; ``split_thresh``:
    float32 (C, T, S); ``leaf_values``: float32 (C, T, L, K, 2); ``anchor_idx``: int32 (C, P);
    ``deltas``: float32 (C, P, 2). Tree nodes are numbered breadth first: node i's children are 2i+1 (taken when
    ``pixel[idx1] - pixel[idx2] > thresh``) and 2i+2; leaf j is node S + j.
    """

    initial_shape: np.ndarray
    split_idx: np.ndarray
    split_thresh: np.ndarray
    leaf_values: np.ndarray
    anchor_idx: np.ndarray
    deltas: np.ndarray

    @property
    def num_landmarks(self) -> int:
        return int(self.initial_shape.shape[0])


def _count(reader: DlibReader, what: str) -> int:
    n = reader.read_int(f"length of {what}")
    if n < 0 or n > _MAX_COUNT:
        raise reader._fail(f"implausible length {n} for {what}")
    return n


def _read_float_column(reader: DlibReader, what: str) -> np.ndarray:
    """A ``matrix<float,0,1>`` -> float32 (n,)."""
    nr = reader.read_int(f"rows of {what}")
    nc = reader.read_int(f"columns of {what}")
    # dlib writes -nr, -nc (the sign marks its current matrix format); an old-format file writes them positive.
    nr, nc = abs(nr), abs(nc)
    if nc != 1 or nr > _MAX_COUNT:
        raise reader._fail(f"{what} should be a column vector, found a {nr}x{nc} matrix")
    return np.array([reader.read_float(f"{what} value") for _ in range(nr)], dtype=np.float32)


def read_shape_predictor(path: Path | str) -> ShapePredictorArrays:
    """Parse ``path`` (a serialised ``dlib::shape_predictor``) into :class:`ShapePredictorArrays`.

    Raises :class:`DlibFormatError` naming the byte offset and what was expected: a missing or unreadable file,
    another format version, a truncated file, trees that are not complete or not all of one depth, indices out of
    range, or bytes left over.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DlibFormatError(f"cannot read dlib shape predictor file {path}: {exc}") from exc
    reader = DlibReader(data, str(path))
    version = reader.read_int("shape_predictor version")
    if version != FORMAT_VERSION:
        raise reader._fail(f"shape_predictor version is {version}, expected {FORMAT_VERSION} "
                           "(not a dlib shape predictor, or a dlib version this reader does not know)")
    initial = _read_float_column(reader, "initial shape")
    if initial.size == 0 or initial.size % 2:
        raise reader._fail(f"initial shape has {initial.size} values; expected 2 per landmark")
    num_values = initial.size

    n_cascades = _count(reader, "cascades")
    split_idx: list[list[list[tuple[int, int]]]] = []
    split_thresh: list[list[list[float]]] = []
    leaves: list[list[np.ndarray]] = []
    for c in range(n_cascades):
        n_trees = _count(reader, f"cascade {c} trees")
        c_idx, c_thresh, c_leaves = [], [], []
        for t in range(n_trees):
            what = f"cascade {c} tree {t}"
            n_splits = _count(reader, f"{what} splits")
            pairs, thresholds = [], []
            for _ in range(n_splits):
                pairs.append((reader.read_int(f"{what} split idx1"), reader.read_int(f"{what} split idx2")))
                thresholds.append(reader.read_float(f"{what} split threshold"))
            n_leaves = _count(reader, f"{what} leaves")
            if n_leaves != n_splits + 1 or n_leaves & (n_leaves - 1):
                raise reader._fail(f"{what} has {n_splits} splits and {n_leaves} leaves; dlib's trees are complete "
                                   "(leaves = splits + 1, a power of 2)")
            tree_leaves = np.empty((n_leaves, num_values), dtype=np.float32)
            for j in range(n_leaves):
                value = _read_float_column(reader, f"{what} leaf {j}")
                if value.size != num_values:
                    raise reader._fail(f"{what} leaf {j} has {value.size} values, the initial shape {num_values}")
                tree_leaves[j] = value
            c_idx.append(pairs)
            c_thresh.append(thresholds)
            c_leaves.append(tree_leaves)
        split_idx.append(c_idx)
        split_thresh.append(c_thresh)
        leaves.append(c_leaves)

    anchors: list[list[int]] = []
    n_anchor_sets = _count(reader, "anchor index sets")
    for c in range(n_anchor_sets):
        anchors.append([reader.read_int(f"cascade {c} anchor index") for _ in range(_count(reader, f"cascade {c} "
                                                                                               "anchors"))])
    deltas: list[list[tuple[float, float]]] = []
    n_delta_sets = _count(reader, "delta sets")
    for c in range(n_delta_sets):
        n = _count(reader, f"cascade {c} deltas")
        deltas.append([(reader.read_float(f"cascade {c} delta x"), reader.read_float(f"cascade {c} delta y"))
                       for _ in range(n)])
    if reader.pos != len(data):
        raise DlibFormatError(f"{path}: {len(data) - reader.pos} bytes left after the shape predictor; "
                              "not a dlib shape predictor file")
    return _to_arrays(str(path), initial, split_idx, split_thresh, leaves, anchors, deltas)


def _to_arrays(source: str, initial: np.ndarray, split_idx: list, split_thresh: list, leaves: list,
               anchors: list, deltas: list) -> ShapePredictorArrays:
    n_cascades = len(split_idx)
    if n_cascades == 0:
        raise DlibFormatError(f"{source}: the shape predictor has no cascades")
    if len(anchors) != n_cascades or len(deltas) != n_cascades:
        raise DlibFormatError(f"{source}: {n_cascades} cascades but {len(anchors)} anchor sets and {len(deltas)} "
                              "delta sets")
    tree_counts = {len(c) for c in split_idx}
    split_counts = {len(t) for c in split_idx for t in c}
    pixel_counts = {len(a) for a in anchors} | {len(d) for d in deltas}
    if len(tree_counts) != 1 or len(split_counts) != 1 or len(pixel_counts) != 1:
        raise DlibFormatError(f"{source}: cascades differ in tree count {sorted(tree_counts)}, tree depth "
                              f"{sorted(split_counts)} or feature pixels {sorted(pixel_counts)}; this reader "
                              "needs them uniform")
    k = initial.size // 2
    n_pixels = pixel_counts.pop()
    idx = np.asarray(split_idx, dtype=np.int64)
    anchor = np.asarray(anchors, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n_pixels):
        raise DlibFormatError(f"{source}: a split reads feature pixel {int(idx.max())}, only {n_pixels} exist")
    if anchor.size and (anchor.min() < 0 or anchor.max() >= k):
        raise DlibFormatError(f"{source}: an anchor names landmark {int(anchor.max())}, only {k} exist")
    n_trees = tree_counts.pop()
    n_splits = split_counts.pop()
    leaf = np.asarray(leaves, dtype=np.float32).reshape(n_cascades, n_trees, n_splits + 1, k, 2)
    return ShapePredictorArrays(
        initial_shape=initial.reshape(k, 2),
        split_idx=idx.astype(np.int32).reshape(n_cascades, n_trees, n_splits, 2),
        split_thresh=np.asarray(split_thresh, dtype=np.float32).reshape(n_cascades, n_trees, n_splits),
        leaf_values=leaf,
        anchor_idx=anchor.astype(np.int32),
        deltas=np.asarray(deltas, dtype=np.float32).reshape(n_cascades, n_pixels, 2),
    )
