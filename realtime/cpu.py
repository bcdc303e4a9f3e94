"""What this CPU offers the models: its name, its instruction-set flags and the class of matrix units they imply.

Reduced precision depends on the hardware, not only on the model file: ONNX Runtime's INT8 kernels on x86-64 CPUs
without VNNI multiply uint8 by int8 in 16-bit sums that can saturate (a documented ONNX Runtime limitation), so an
INT8 model that agrees with float on a VNNI CPU can lose objects on an AVX2-only one; OpenVINO's bf16 hint computes
in bf16 only where the CPU has bf16 units (AMX or AVX-512 BF16). Precision verdicts are therefore recorded per
:func:`isa_class` and only reused on a CPU of the same class.

Nothing is read at import; :func:`cpu_info` reads ``/proc/cpuinfo`` once, when first asked.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

# Flags that matter to the providers and precisions, in the order they are reported.
RELEVANT_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                  "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")

# Classes from the most capable down; a recorded verdict applies to CPUs of its own class only.
ISA_CLASSES = ("amx", "avx512_vnni", "avx_vnni", "avx512", "avx2", "baseline")


@dataclass(frozen=True)
class CpuInfo:
    """``model``: the CPU's name; ``vendor``: e.g. GenuineIntel / AuthenticAMD; ``flags``: every flag reported."""

    model: str
    vendor: str
    machine: str
    flags: frozenset[str]

    @property
    def relevant_flags(self) -> list[str]:
        return [f for f in RELEVANT_FLAGS if f in self.flags]

    @property
    def isa(self) -> str:
        return isa_class(self.flags)

    @property
    def has_vnni(self) -> bool:
        """INT8 dot products without 16-bit saturation (VNNI or AMX)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8"})

    @property
    def has_bf16(self) -> bool:
        """bf16 arithmetic units (AMX or AVX-512 BF16), which OpenVINO's bf16 hint needs to run in bf16."""
        return bool(self.flags & {"amx_bf16", "avx512_bf16"})

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "vendor": self.vendor, "machine": self.machine, "isa": self.isa,
                "flags": self.relevant_flags}


def isa_class(flags: frozenset[str] | set[str]) -> str:
    """One of :data:`ISA_CLASSES` for a set of ``/proc/cpuinfo`` flags."""
    if "amx_bf16" in flags or "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if "avx_vnni" in flags:
        return "avx_vnni"
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    return "baseline"


def parse_cpuinfo(text: str, machine: str = "") -> CpuInfo:
    """The first processor block of a ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(model=fields.get("model name", "") or platform.processor() or "unknown",
                   vendor=fields.get("vendor_id", ""), machine=machine or platform.machine(),
                   flags=frozenset(fields.get("flags", "").split()))


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU (read once). Where there is no ``/proc/cpuinfo``: no flags, class ``baseline``."""
    path = Path("/proc/cpuinfo")
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text)
