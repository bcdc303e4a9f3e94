"""Side-by-side timing: face_recognition 1.3.0 vs ``realtime.compat.face_recognition`` on the same photos, one core
each, in one run.

For every photo (each distinct .jpg/.jpeg/.png under the folder, sorted): ``load_image_file`` then
``face_encodings`` (find the faces, place the landmarks, describe each face), as a face_recognition program does.
Each library runs in its own process pinned to CPU 0 (``taskset -c 0``) with BLAS/OpenMP threads 1 (and ONNX
Runtime's intra-op threads 1 for rtv); one warm-up photo first (model loading is not timed)::

    python -m recipes.face_recognition_timing --photos FACE_RECOGNITION_REPO/examples \
        --reference-python /path/to/dlib-venv/bin/python

``--reference-python``: the python of an environment with face_recognition and dlib (never an rtv dependency).
Prints one line per library (ms per photo: mean, median; faces found) and the ratio; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SUFFIXES = (".jpg", ".jpeg", ".png")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def photos(folder: Path) -> list[Path]:
    """Distinct photos (by content) under ``folder``, sorted by path."""
    seen, out = set(), []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(path)
    return out


def worker(library: str, files: list[str]) -> dict:
    """Time ``library`` ("face_recognition" or "rtv") on ``files``; the first file is a warm-up run first."""
    if library == "rtv":
        import realtime.compat.face_recognition as fr
        from realtime.config import load_config

        fr.configure(load_config(overrides=["runtime.intra_op_threads=1", "runtime.opencv_threads=1",
                                            "runtime.blas_threads=1", "runtime.workers=1"]))
    else:
        import face_recognition as fr
    fr.face_encodings(fr.load_image_file(files[0]))  # warm-up: models load here
    seconds, faces = [], 0
    for file in files:
        t0 = time.perf_counter()
        encodings = fr.face_encodings(fr.load_image_file(file))
        seconds.append(time.perf_counter() - t0)
        faces += len(encodings)
    return {"library": library, "photos": len(files), "faces": faces,
            "ms_mean": 1000 * statistics.mean(seconds), "ms_median": 1000 * statistics.median(seconds),
            "ms_per_photo": [round(1000 * s, 1) for s in seconds]}


def run(library: str, python: str, files: list[str]) -> dict:
    env = dict(os.environ, **ONE_THREAD)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    command = ["taskset", "-c", "0", python, str(Path(__file__).resolve()), "--worker", library, *files]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{library} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.face_recognition_timing", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", help="folder of photos (face_recognition's examples/)")
    parser.add_argument("--reference-python", help="python with face_recognition and dlib installed")
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.files)))
        return 0
    if not args.photos or not args.reference_python:
        parser.error("--photos and --reference-python are needed")
    files = [str(p) for p in photos(Path(args.photos))]
    load = os.getloadavg()
    results = [run("face_recognition", args.reference_python, files), run("rtv", sys.executable, files)]
    report = {"photos": len(files), "cpu": "taskset -c 0, one thread each", "load_average_before": load,
              "load_average_after": os.getloadavg(), "results": results,
              "speedup_mean": results[0]["ms_mean"] / results[1]["ms_mean"]}
    for r in results:
        print(f"{r['library']:<17} {r['ms_mean']:7.0f} ms per photo (median {r['ms_median']:.0f}), "
              f"{r['faces']} faces in {r['photos']} photos")
    print(f"rtv is {report['speedup_mean']:.1f}x faster (mean); load average before {load[0]:.1f}, after "
          f"{report['load_average_after'][0]:.1f} on {os.cpu_count()} cores")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
