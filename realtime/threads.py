"""One thread policy for the whole process: ONNX Runtime intra-op threads per session, OpenCV's pool, BLAS's pool
and the number of stage workers, sized together from the cores this process may run on so they never fight.

The pipeline runs at most ``workers`` branches at once (object detection beside face detection + recognition);
each branch runs one session at a time, so the compute threads busy at any moment are ``workers * intra_op``.
``auto`` keeps that at or under the cores available (``os.sched_getaffinity``): on 2 cores two workers of one
thread each; on 16 cores two workers of 8. OpenCV resizes and warps inside the branches, so its pool gets a
branch's share; numpy's BLAS only sees small matrices here (NMS, gallery search), so it gets one thread.
Explicit numbers in ``runtime`` are used as given; :attr:`ThreadPlan.oversubscribed` says when they add up to more
than the cores.

Nothing happens at import: :func:`plan_threads` is pure arithmetic and :func:`apply_process_threads` is called
once when a pipeline is built.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

AUTO = "auto"


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not every platform has affinity masks
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    """The thread counts chosen for one process.

    ``cores``: cores available; ``workers``: stage branches run at once (1 = every stage in sequence on the main
    thread); ``intra_op``: ONNX Runtime intra-op threads of every session (0 = ONNX Runtime's own default, one per
    core); ``inter_op``: ORT inter-op threads; ``opencv``: ``cv2.setNumThreads``; ``blas``: OpenBLAS threads;
    ``allow_spinning``: whether ORT's idle pool threads spin (off when sessions share cores with other work);
    ``explicit``: the fields given as numbers rather than ``auto``; ``in_flight``: frames whose pure stages
    (detector inference) may run at the same time, completed in capture order (1 = one frame at a time).
    """

    cores: int
    workers: int
    intra_op: int
    inter_op: int
    opencv: int
    blas: int
    allow_spinning: bool
    explicit: tuple[str, ...] = ()
    in_flight: int = 1
    live_in_flight: int = 1

    @property
    def peak_compute_threads(self) -> int:
        """Threads that may compute at the same moment: every worker running a session."""
        per_session = self.intra_op if self.intra_op > 0 else self.cores
        return self.workers * per_session

    @property
    def oversubscribed(self) -> bool:
        return self.peak_compute_threads > self.cores

    def describe(self) -> str:
        auto = [n for n in ("workers", "intra_op", "opencv", "blas", "in_flight") if n not in self.explicit]
        text = (f"{self.cores} cores: {self.workers} stage worker(s) x {self.intra_op or 'ORT-default'} intra-op "
                f"thread(s), {self.in_flight} frame(s) in flight ({self.live_in_flight} live), inter-op {self.inter_op}, OpenCV {self.opencv}, "
                f"BLAS {self.blas}, "
                f"ORT spinning {'on' if self.allow_spinning else 'off'}")
        if auto:
            text += f" (auto: {', '.join(auto)})"
        if self.oversubscribed:
            text += f"; OVERSUBSCRIBED: {self.peak_compute_threads} compute threads on {self.cores} cores"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"cores": self.cores, "workers": self.workers, "intra_op": self.intra_op, "inter_op": self.inter_op,
                "opencv": self.opencv, "blas": self.blas, "in_flight": self.in_flight, "live_in_flight": self.live_in_flight,
                "allow_spinning": self.allow_spinning,
                "explicit": list(self.explicit), "peak_compute_threads": self.peak_compute_threads,
                "oversubscribed": self.oversubscribed}


def plan_threads(runtime: Any, cores: int | None = None, branches: int = 2) -> ThreadPlan:
    """Resolve ``runtime``'s ``auto`` thread fields for ``cores`` (default: :func:`available_cores`).

    ``runtime``: a :class:`realtime.config.RuntimeConfig` (fields ``workers``, ``intra_op_threads``,
    ``inter_op_threads``, ``opencv_threads``, ``blas_threads``, each an int or ``"auto"``). ``branches``: how many
    stage branches the pipeline could run at once (2 with object detection and faces, 1 with only one of them).

    auto: ``workers = min(branches, cores)``; ``intra_op = cores // workers``; ``opencv = intra_op``; ``blas = 1``;
    ``in_flight = workers``.
    So ``workers * intra_op <= cores`` whenever nothing is explicit.
    """
    cores = max(1, int(cores if cores is not None else available_cores()))
    branches = max(1, int(branches))
    explicit = []

    def given(name: str, field_name: str):
        value = getattr(runtime, field_name, AUTO)
        if value == AUTO:
            return None
        explicit.append(name)
        return int(value)

    workers = given("workers", "workers")
    intra = given("intra_op", "intra_op_threads")
    opencv = given("opencv", "opencv_threads")
    blas = given("blas", "blas_threads")
    in_flight = given("in_flight", "frames_in_flight")
    inter = int(getattr(runtime, "inter_op_threads", 1))
    if workers is None:
        workers = min(branches, cores)  # more workers than branches would only idle
    workers = max(1, workers)
    if intra is None:
        intra = max(1, cores // workers)
    if opencv is None:
        opencv = max(1, intra if intra > 0 else cores // workers)
    if blas is None:
        blas = 1
    live_in_flight = in_flight if in_flight is not None else 1  # live: latency first (measured: see README)
    if in_flight is None:
        in_flight = workers  # each worker can hold one frame's detector while the caller finishes another frame
    per_session = intra if intra > 0 else cores
    spinning = workers == 1 and per_session * workers <= cores
    plan = ThreadPlan(cores=cores, workers=workers, intra_op=intra, inter_op=inter, opencv=opencv, blas=blas,
                      allow_spinning=spinning, explicit=tuple(explicit), in_flight=max(1, in_flight),
                      live_in_flight=max(1, live_in_flight))
    return plan


def apply_process_threads(plan: ThreadPlan) -> dict[str, Any]:
    """Set OpenCV's and OpenBLAS's pools for this process from ``plan``; returns what was set (BLAS may be
    ``None`` when no OpenBLAS is loaded). ORT's counts go into each session's options instead."""
    import cv2

    cv2.setNumThreads(int(plan.opencv))
    blas = set_blas_threads(plan.blas)
    if plan.oversubscribed:
        log.warning("thread settings oversubscribe the machine: %s", plan.describe())
    else:
        log.info("threads: %s", plan.describe())
    return {"opencv": cv2.getNumThreads(), "blas": blas}


_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads")
_BLAS_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads")


def _openblas_libraries() -> list[str]:
    """Paths of the OpenBLAS libraries loaded in this process (read from /proc/self/maps; empty elsewhere)."""
    import numpy  # noqa: F401 - numpy loads its BLAS; make sure it is in the map

    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.isfile(p))


def set_blas_threads(n: int) -> int | None:
    """Set every loaded OpenBLAS to ``n`` threads; returns the count read back, or None without OpenBLAS."""
    result = None
    for path in _openblas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _BLAS_SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _BLAS_GETTERS if hasattr(lib, g)), None)
        if setter is None:
            continue
        setter(ctypes.c_int(int(n)))
        if getter is not None:
            getter.restype = ctypes.c_int
            result = int(getter())
    return result


def blas_threads() -> int | None:
    """The thread count of the first loaded OpenBLAS, or None."""
    for path in _openblas_libraries():
        lib = ctypes.CDLL(path)
        getter = next((getattr(lib, g) for g in _BLAS_GETTERS if hasattr(lib, g)), None)
        if getter is not None:
            getter.restype = ctypes.c_int
            return int(getter())
    return None
