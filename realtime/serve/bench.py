"""``rtv bench serve``: requests per second and latency of the service's DeepStack routes under concurrent clients,
optionally while a door runs at 15 FPS in the same process.

A real server (uvicorn on a free 127.0.0.1 port, in this process) with a temporary gallery (one person enrolled)
and accounts; N client threads post the same 640x480 JPEG (a person's photo on a grey frame) to
``/v1/vision/detection`` and then to ``/v1/vision/face/recognize`` for ``seconds`` each. Errors (any answer but
200, or a connection failure) are counted, never hidden.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.config import Config

ROUTES = ("/v1/vision/detection", "/v1/vision/face/recognize")
DOOR_FPS = 15.0


@dataclass(frozen=True)
class RouteFigures:
    route: str
    clients: int
    seconds: float
    requests: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float


def bench_image() -> tuple[np.ndarray, bytes]:
    """A 640x480 BGR frame with the astronaut photo in it, and its JPEG bytes."""
    import cv2
    from skimage import data

    frame = np.full((480, 640, 3), 114, np.uint8)
    frame[:, 64:576] = np.ascontiguousarray(data.astronaut()[16:496, :, ::-1])
    return frame, cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _door_clip(path: Path, frame: np.ndarray, seconds: float = 4.0) -> Path:
    from realtime.io.sinks import Mp4Writer

    with Mp4Writer(path, fps=DOOR_FPS, crf=23, preset="ultrafast") as writer:
        for k in range(int(seconds * DOOR_FPS)):
            writer.write(np.roll(frame, k % 8, axis=1))
    return path


def _client(url: str, body: bytes, key: str, stop_at: float, latencies: list, errors: list) -> None:
    import requests

    session = requests.Session()
    while time.perf_counter() < stop_at:
        t0 = time.perf_counter()
        try:
            r = session.post(url, files={"image": ("frame.jpg", body, "image/jpeg")}, data={"api_key": key},
                             timeout=60)
            ok = r.status_code == 200 and r.json().get("success") is True
        except Exception as exc:  # noqa: BLE001 - every failure is counted
            ok = False
            errors.append(f"{type(exc).__name__}: {exc}")
        dt = (time.perf_counter() - t0) * 1000
        if ok:
            latencies.append(dt)
        elif len(errors) < 1000:
            errors.append(f"HTTP {r.status_code}" if "r" in locals() else "no answer")


def run_bench(config: Config, clients: int = 4, seconds: float = 10.0, door: bool = True,
              echo=print) -> dict:
    """The figures for each route (and the door's frame rate meanwhile) as a JSON-ready dict."""
    import uvicorn

    from realtime.serve.accounts import Accounts
    from realtime.serve.adminlog import AdminLog
    from realtime.serve.app import create_app
    from realtime.serve.deps import ServeSettings
    from realtime.serve.engine import Engine

    frame, body = bench_image()
    with tempfile.TemporaryDirectory(prefix="rtv-bench-serve-") as tmp:
        folder = Path(tmp)
        config = dataclasses.replace(
            config, faces=dataclasses.replace(config.faces, gallery=str(folder / "gallery.sqlite")),
            door=dataclasses.replace(config.door, audit=str(folder / "audit.sqlite"), audit_key_file="",
                                     use_calibration=False, hook_command=(), hook_url=""),
            source=dataclasses.replace(config.source, pace=True))
        engine = Engine.open(config)
        runner = None
        try:
            engine.enroll("astronaut", [("bench", frame)])
            accounts = Accounts(folder / "accounts.sqlite")
            key = accounts.add_key("bench", "read")
            if door:
                from realtime.serve.doors import DoorRunner

                runner = DoorRunner(config, [("bench", str(_door_clip(folder / "door.mp4", frame)))], loop=True)
                runner.start()
            app = create_app(engine, accounts, AdminLog(config, runner.audit_paths if runner else None),
                             ServeSettings(), runner)
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                   access_log=False))
            thread = threading.Thread(target=server.run, name="bench-server", daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            results = []
            door_fps = []
            for route in ROUTES:
                latencies: list[float] = []
                errors: list[str] = []
                frames0 = _door_frames(runner)
                t0 = time.perf_counter()
                stop_at = t0 + seconds
                threads = [threading.Thread(target=_client, args=(f"http://127.0.0.1:{port}{route}", body, key,
                                                                  stop_at, latencies, errors))
                           for _ in range(clients)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.perf_counter() - t0
                door_fps.append((_door_frames(runner) - frames0) / elapsed if runner else None)
                lat = sorted(latencies)
                figures = RouteFigures(route, clients, round(elapsed, 2), len(lat) + len(errors), len(errors),
                                       round(len(lat) / elapsed, 2),
                                       round(statistics.median(lat), 1) if lat else float("nan"),
                                       round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else
                                       float("nan"))
                results.append(figures)
                echo(f"{route:<28} {clients} clients {elapsed:5.1f} s: {figures.requests_per_s:7.2f} req/s  "
                     f"p50 {figures.p50_ms:7.1f} ms  p95 {figures.p95_ms:7.1f} ms  errors {figures.errors}"
                     + (f"  door {door_fps[-1]:.1f} FPS" if runner else ""))
            server.should_exit = True
            thread.join(30)
        finally:
            if runner is not None:
                runner.stop()
            engine.close()
    return {"clients": clients, "seconds": seconds, "door_fps_target": DOOR_FPS if door else None,
            "routes": [dataclasses.asdict(r) | {"door_fps": fps} for r, fps in zip(results, door_fps)]}


def _door_frames(runner) -> int:
    if runner is None:
        return 0
    return sum(d["frames"] for d in runner.status())
