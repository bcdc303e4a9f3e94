"""``rtv bench batch``: the same generated clips annotated with 1 and 2 local workers and on a local 2-CPU Ray
instance, in one run: inputs per minute, frames per second, speed-up over one worker.

Wall time runs from ``run_batch`` being called to its return: input hashing and probing, worker start (each builds
its pipeline), annotation, the ledger. Ray's own start (``ray.init``) is timed apart and not in the wall time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from realtime.batch.run import run_batch
from realtime.config import Config


def make_clips(folder: Path, clips: int, seconds: float, size_wh: tuple[int, int]) -> list[Path]:
    """``clips`` copies of the demo scenes (faces and no faces), reused when already there."""
    from realtime.bench.clips import write_demo_clip

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(clips):
        path = folder / f"clip{i:02d}_{size_wh[0]}x{size_wh[1]}_{seconds:g}s.mp4"
        if not path.is_file():
            write_demo_clip(path, seconds=seconds, size_wh=size_wh)
        paths.append(path)
    return paths


def _row(label: str, result, ray_start_s: float | None = None) -> dict[str, Any]:
    frames = sum(r["frames"] for r in result.records)
    wall = result.wall_s
    start = max(result.startup_s) if result.startup_s else 0.0
    return {"run": label, "workers": result.workers, "threads": result.threads, "inputs": len(result.records),
            "ok": result.ok, "frames": frames, "wall_s": round(wall, 2), "worker_start_s": round(start, 2),
            "inputs_per_min": round(len(result.records) / wall * 60.0, 1), "fps": round(frames / wall, 1),
            "fps_after_start": round(frames / max(1e-6, wall - start), 1),
            **({"ray_init_s": round(ray_start_s, 2)} if ray_start_s is not None else {})}


def bench_batch(config: Config, clips: int = 6, seconds: float = 1.5, size_wh: tuple[int, int] = (640, 480),
                work_dir: Path | str = "out/bench_batch", ray: bool = True) -> dict[str, Any]:
    work = Path(work_dir)
    inputs = [str(p) for p in make_clips(work / "clips", clips, seconds, size_wh)]
    rows = []
    stages: list[str] = []
    for workers in (1, 2):
        result = run_batch(config, inputs, work / f"local{workers}", workers=workers, overwrite=True)
        rows.append(_row(f"local, {workers} worker{'s' if workers > 1 else ''}", result))
        stages = stages or _stages(work / f"local{workers}", result)
    if ray:
        from realtime.batch.ray_runner import import_ray, local_init_options

        ray_module = import_ray()
        t0 = time.perf_counter()
        ray_module.init(num_cpus=2, include_dashboard=False, log_to_driver=False, **local_init_options())
        ray_start = time.perf_counter() - t0
        try:
            result = run_batch(config, inputs, work / "ray2", ray_address="local", overwrite=True)
        finally:
            ray_module.shutdown()
        rows.append(_row("ray, local 2 CPUs", result, ray_start))
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = round(base / row["wall_s"], 2)
    from realtime.batch.run import available_cores

    return {"clips": clips, "seconds": seconds, "size_wh": list(size_wh), "cores": available_cores(),
            "stages": stages, "runs": rows}


def _stages(out_dir: Path, result) -> list[str]:
    """The stages that ran, from the timings in the first output's first frame record."""
    from realtime.serialize import read_result_lines

    for record in result.records:
        path = out_dir / record["jsonl"]
        if record["frames"] and path.is_file():
            frames = read_result_lines(path).frames
            return list(frames[0].get("ms", {})) if frames else []
    return []


def format_report(report: dict[str, Any]) -> str:
    w, h = report["size_wh"]
    lines = [f"batch: {report['clips']} clips of {report['seconds']:g} s at {w}x{h}, stages "
             f"{', '.join(report['stages']) or '(none)'}, {report['cores']} cores",
             f"{'run':<20} {'workers':>7} {'wall s':>7} {'start s':>7} {'inputs/min':>10} {'FPS':>6} "
             f"{'FPS after start':>15} {'speed-up':>8}"]
    for r in report["runs"]:
        lines.append(f"{r['run']:<20} {r['workers']:>7} {r['wall_s']:>7.2f} {r['worker_start_s']:>7.2f} "
                     f"{r['inputs_per_min']:>10.1f} {r['fps']:>6.1f} {r['fps_after_start']:>15.1f} "
                     f"{r['speedup']:>7.2f}x" + ("" if r["ok"] else "  (some inputs failed)"))
        if "ray_init_s" in r:
            lines.append(f"{'':<20} (ray.init took {r['ray_init_s']:.2f} s, not in the wall time)")
    return "\n".join(lines)
