"""Face descriptors from aligned chips with an ONNX face embedder (e.g. dlib_resnet128.onnx). Never torch."""

from __future__ import annotations

import numpy as np

from realtime.errors import ModelError
from realtime.face.align import TEMPLATE5_150, DlibAligner, align_faces
from realtime.preprocess import to_input_nchw
from realtime.runtime import OnnxModel


ALIGNMENTS = ("dlib5", "template5")


class FaceEmbedder:
    """Wraps an :class:`OnnxModel` of kind ``face_embedder``: aligned BGR chips -> descriptors.

    ``template5`` (float32 (5, 2)), ``match_threshold``, ``distance`` and ``alignment`` come from the contract's
    ``extra`` when it has them (the template falls back to :data:`realtime.face.align.TEMPLATE5_150`, the
    alignment to ``"template5"``). ``alignment`` says which chips the network expects: ``"dlib5"``, dlib's chips
    cut from dlib's 5 landmarks (give an ``aligner``), or ``"template5"``, the 5 CenterFace landmarks warped onto
    ``template5``. :meth:`align` cuts chips with the ``aligner`` when there is one, else with the template.
    ``close()`` closes the model and is safe to call twice.
    """

    def __init__(self, model: OnnxModel, aligner: DlibAligner | None = None):
        contract = model.contract
        if contract.kind != "face_embedder":
            raise ModelError(f"{model.path}: is a {contract.kind!r} model, FaceEmbedder needs a 'face_embedder'")
        self.model = model
        self.size_wh = contract.input.working_size_wh()
        self.embedding_size = int(contract.embedding_size or 0)
        extra = contract.extra
        template = np.asarray(extra.get("template5_150", TEMPLATE5_150), dtype=np.float32)
        if template.shape != (5, 2):
            raise ModelError(f"{model.path}: contract extra 'template5_150' has shape {template.shape}, "
                             "expected (5, 2); re-export the model")
        self.template5 = template
        self.match_threshold = float(extra.get("match_threshold", 0.6))
        self.distance = str(extra.get("distance", "euclidean"))
        self.alignment = str(extra.get("alignment", "template5"))
        if self.alignment not in ALIGNMENTS:
            raise ModelError(f"{model.path}: contract extra 'alignment' is {self.alignment!r}, this rtv knows "
                             f"{', '.join(ALIGNMENTS)}")
        if aligner is not None and aligner.size != self.size_wh[0]:
            raise ModelError(f"{model.path}: the aligner cuts {aligner.size}px chips, the model takes "
                             f"{self.size_wh[0]}px")
        self.aligner = aligner

    def align(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray, landmarks5: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Chips for :meth:`embed` from detected faces.

        ``frame_bgr``: uint8 (H, W, 3); ``boxes_xyxy``: float32 (N, 4) and ``landmarks5``: float32 (N, 5, 2) from
        the face detector. Returns ``(chips_bgr, landmarks_dlib5)``: uint8 (N, S, S, 3) and float32 (N, 5, 2),
        dlib's points (NaN when the template path cut the chips).
        """
        if self.aligner is not None:
            chips, points = self.aligner(frame_bgr, boxes_xyxy)
            return chips, points.astype(np.float32)
        chips = align_faces(frame_bgr, landmarks5, self.template5, self.size_wh[0])
        return chips, np.full((len(chips), 5, 2), np.nan, dtype=np.float32)

    @property
    def sha256(self) -> str:
        """The model file's hash, stored beside gallery embeddings."""
        return self.model.sha256

    def embed(self, chips_bgr: np.ndarray) -> np.ndarray:
        """``chips_bgr``: uint8 (N, H, W, 3) aligned chips at the contract size -> float32 (N, embedding_size).

        One batched session run; N = 0 returns an empty (0, embedding_size) array without running.
        """
        chips = np.asarray(chips_bgr)
        w, h = self.size_wh
        if chips.ndim != 4 or chips.shape[1:] != (h, w, 3) or chips.dtype != np.uint8:
            raise ModelError(f"FaceEmbedder.embed needs uint8 chips of shape (N, {h}, {w}, 3), got "
                             f"{chips.dtype} {chips.shape}; cut them with realtime.face.align.align_faces")
        if len(chips) == 0:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        out = self.model.run(to_input_nchw(chips, self.model.contract.input))[0]
        return np.asarray(out, dtype=np.float32).reshape(len(chips), self.embedding_size)

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> "FaceEmbedder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
