"""Which file and numeric precision each shipped model runs in, chosen from measured agreement with float.

A precision is one of ``float`` (the float file, computed in float32), ``bf16`` (the float file under the OpenVINO
provider with its bf16 inference hint) and ``int8`` (the model's INT8 QDQ file). Each float model's manifest entry
holds ``precision.records``: one record per (provider, precision, CPU class) that was measured against float with
the model's declared rule (``precision.rule``), with the figures, the verdict and the command that measured it
(``rtv eval precision`` writes them). ``runtime.precision: auto`` takes the fastest passing record for this
provider and this CPU's class (:func:`realtime.cpu.isa_class`), and float where nothing was measured for this CPU
class: a verdict measured on one CPU is not assumed on another (INT8 kernels differ with and without VNNI).

The face embedder's file never changes under ``auto``: galleries are tied to the embedder file's sha256, so only
precisions of the same file (float, bf16) are candidates for it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from realtime.cpu import CpuInfo
from realtime.errors import ConfigError

PRECISIONS = ("auto", "float", "bf16", "int8")

# Shipped files per role and precision; bf16 runs the float file with the OpenVINO hint.
ROLE_FILES: dict[str, dict[str, str]] = {
    "detector": {"float": "yolov3_tiny_coco.onnx", "int8": "yolov3_tiny_coco_int8.onnx"},
    "face_detector": {"float": "centerface.onnx", "int8": "centerface_int8.onnx"},
    "face_embedder": {"float": "dlib_resnet128.onnx", "int8": "dlib_resnet128_int8.onnx"},
    "style": {},
}
# Roles whose file must not change under ``auto`` (stored data is keyed by the file's hash).
FILE_PINNED_ROLES = frozenset({"face_embedder"})
# Tie-break when records carry no speed: the cheaper arithmetic first.
_CHEAPER_FIRST = ("int8", "bf16", "float")


@dataclass(frozen=True)
class PrecisionChoice:
    """``precision``: float / bf16 / int8; ``file``: the zoo file name for the role (None for a configured file);
    ``hint``: OpenVINO's INFERENCE_PRECISION_HINT ("" when the provider is not OpenVINO); ``reason``: one line."""

    role: str
    provider: str
    precision: str
    file: str | None
    hint: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "provider": self.provider, "precision": self.precision, "file": self.file,
                "hint": self.hint, "reason": self.reason}


def load_manifest(zoo_dir: Path) -> dict[str, Any]:
    path = Path(zoo_dir) / "MANIFEST.json"
    return json.loads(path.read_text()) if path.is_file() else {}


@functools.lru_cache(maxsize=4)
def _cached_manifest(zoo_dir: str, mtime: float) -> dict[str, Any]:
    return load_manifest(Path(zoo_dir))


def manifest_for(zoo_dir: Path) -> dict[str, Any]:
    """The zoo manifest, read once per change of the file."""
    path = Path(zoo_dir) / "MANIFEST.json"
    return _cached_manifest(str(zoo_dir), path.stat().st_mtime if path.is_file() else 0.0)


def precision_records(manifest: Mapping[str, Any], float_file: str) -> list[dict[str, Any]]:
    return list(manifest.get(float_file, {}).get("precision", {}).get("records", []))


def hint_for(precision: str, provider: str) -> str:
    """OpenVINO's inference precision hint for ``precision`` ("" off OpenVINO)."""
    if provider != "openvino":
        return ""
    return "bf16" if precision == "bf16" else "f32"


def choose_precision(role: str, provider: str, requested: str, cpu: CpuInfo, manifest: Mapping[str, Any],
                     zoo_dir: Path, configured_file: bool = False) -> PrecisionChoice:
    """The precision (and zoo file) for ``role`` on ``provider`` ("cpu", "openvino", "cuda").

    ``requested``: one of :data:`PRECISIONS`. An explicit precision is honoured where it can run (bf16 needs the
    OpenVINO provider; int8 needs an INT8 file) and raises :class:`ConfigError` otherwise. ``configured_file``:
    the user named the model file, so only the provider hint can change, never the file."""
    if requested not in PRECISIONS:
        raise ConfigError(f"runtime.precision {requested!r} is not one of {', '.join(PRECISIONS)}")
    files = ROLE_FILES.get(role, {})
    float_file = None if configured_file else files.get("float")

    def available(precision: str) -> bool:
        if precision == "bf16":
            return provider == "openvino"
        if precision == "int8":
            return not configured_file and precision in files and (Path(zoo_dir) / files[precision]).is_file()
        return True

    def made(precision: str, reason: str) -> PrecisionChoice:
        file = None if configured_file else files.get(precision if precision == "int8" else "float")
        return PrecisionChoice(role, provider, precision, file, hint_for(precision, provider), reason)

    if requested != "auto":
        if not available(requested):
            need = ("the OpenVINO provider (runtime.providers: openvino)" if requested == "bf16"
                    else f"a shipped INT8 {role} file")
            raise ConfigError(f"runtime.precision {requested} for the {role} needs {need}; use precision auto or "
                              "float")
        return made(requested, "as configured")
    if float_file is None:
        return made("float", "configured model file: float" if configured_file else "no measured alternative")
    candidates = []
    for record in precision_records(manifest, float_file):
        precision = record.get("precision")
        if (record.get("provider") != provider or record.get("isa") != cpu.isa or not record.get("pass")
                or precision not in _CHEAPER_FIRST or not available(precision)):
            continue
        if role in FILE_PINNED_ROLES and precision == "int8":
            continue
        if precision == "bf16" and not cpu.has_bf16:
            continue
        speed = record.get("ms")
        candidates.append((float(speed) if isinstance(speed, (int, float)) else float("inf"),
                           _CHEAPER_FIRST.index(precision), precision, record))
    if not any(c[2] != "float" for c in candidates):
        return made("float", f"no reduced precision measured to pass on {provider} with a CPU of class {cpu.isa}")
    _, _, precision, record = min(candidates, key=lambda c: (c[0], c[1]))
    return made(precision, f"measured to pass on {provider} with a CPU of class {cpu.isa} ({record.get('summary', '')})"
                .replace(" ()", ""))
