"""Benchmarks across execution providers in one process: which providers are here, each one's runtime config,
the machine description every bench JSON carries, and the side-by-side table with ratios."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from realtime.config import Config, RuntimeConfig
from realtime.errors import ProviderError

BENCH_PROVIDERS = ("cpu", "openvino", "cuda")


def provider_runtimes(runtime: RuntimeConfig, providers: Sequence[str]) -> tuple[dict[str, RuntimeConfig], list[str]]:
    """``runtime`` once per provider that is usable here; and one line for each that is not (why)."""
    from realtime.runtime import resolve_provider

    usable, missing = {}, []
    for provider in dict.fromkeys(providers):
        try:
            resolve_provider(provider)
        except ProviderError as exc:
            missing.append(f"{provider}: not measured: {exc}")
            continue
        usable[provider] = dataclasses.replace(runtime, providers=provider)
    return usable, missing


def machine_record(config: Config | None = None, runtimes: Mapping[str, RuntimeConfig] | None = None
                   ) -> dict[str, Any]:
    """CPU model, class and flags, onnxruntime version, and per provider the precision each model role runs in."""
    import onnxruntime

    from realtime.build import precision_choice
    from realtime.cpu import cpu_info

    record: dict[str, Any] = {"cpu": cpu_info().to_dict(), "onnxruntime": onnxruntime.__version__}
    if config is not None:
        runtimes = runtimes or {config.runtime.providers: config.runtime}
        configured = {"detector": config.detector.model, "face_detector": config.faces.detector_model,
                      "face_embedder": config.faces.embedder_model}
        record["precision"] = {
            label: {role: precision_choice(role, rt, bool(path)).to_dict() for role, path in configured.items()}
            for label, rt in runtimes.items()}
    return record


def side_by_side(title: str, values: Mapping[str, Mapping[str, float]], unit: str = "ms") -> str:
    """``values``: provider -> {row name: figure (lower is better)}; one column per provider and the speed-up of
    each against the first provider's column."""
    providers = list(values)
    if not providers:
        return f"{title}: no provider measured"
    names = list(dict.fromkeys(n for p in providers for n in values[p]))
    width = max(10, *(len(p) + 2 for p in providers))
    head = f"{title} ({unit}; speed-up against {providers[0]})"
    lines = [head, f"  {'':<30}" + "".join(f"{p:>{width}}" for p in providers)
             + "".join(f"{p + '/' + providers[0]:>{width + 6}}" for p in providers[1:])]
    for name in names:
        figures = [values[p].get(name, float("nan")) for p in providers]
        base = figures[0]
        ratios = [f"{base / f:.2f}x" if f and f == f and base == base else "-" for f in figures[1:]]
        lines.append(f"  {name:<30}" + "".join(f"{f:>{width}.2f}" for f in figures)
                     + "".join(f"{r:>{width + 6}}" for r in ratios))
    return "\n".join(lines)
