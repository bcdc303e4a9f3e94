"""Service fixtures: photos from scikit-image (two people and a stranger), a group photo, a scene with a cup, and
``rtv serve`` started as a real process on a free 127.0.0.1 port with a temporary gallery, audit log and accounts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
FLOAT_DETECTOR = REPO / "realtime" / "zoo" / "yolov3_tiny_coco.onnx"


def _photo_arrays() -> dict[str, np.ndarray]:
    import cv2

    data = pytest.importorskip("skimage.data")
    astro = np.ascontiguousarray(data.astronaut()[..., ::-1])
    camera = np.ascontiguousarray(np.stack([data.camera()] * 3, axis=-1))
    face = cv2.resize((data.lfw_subset()[0] * 255).astype(np.uint8), (220, 220), interpolation=cv2.INTER_CUBIC)
    stranger = np.stack([face] * 3, axis=-1)
    group = np.full((420, 1000, 3), 114, np.uint8)
    group[40:340, 20:300] = astro[20:320, 90:370]
    group[40:340, 360:640] = camera[40:340, 90:370]
    group[80:300, 720:940] = stranger
    return {"astronaut": astro, "cameraman": camera, "stranger": stranger, "group": group,
            "coffee": np.ascontiguousarray(data.coffee()[..., ::-1])}


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """JPEG files: astronaut, cameraman (to register), stranger, group (all three side by side), coffee (a cup)."""
    import cv2

    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name, image in _photo_arrays().items():
        path = folder / f"{name}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        out[name] = path
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``rtv serve`` in a child process; ``url``, ``settings`` (the --set list), ``admin_key``, ``read_key``."""

    def __init__(self, folder: Path, extra_args=(), extra_settings=(), users=()) -> None:
        from argon2 import PasswordHasher

        from realtime.serve.accounts import Accounts

        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.accounts_path = folder / "accounts.sqlite"
        accounts = Accounts(self.accounts_path, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        for name, password in users:
            accounts.add_user(name, password)
        self.admin_key = accounts.add_key("home-assistant", "admin")
        self.read_key = accounts.add_key("viewer", "read")
        self.settings = [f"faces.gallery={folder / 'gallery.sqlite'}", f"door.audit={folder / 'audit.sqlite'}",
                         f"detector.model={FLOAT_DETECTOR}", *extra_settings]
        args = [sys.executable, "-m", "realtime.cli", "serve", "--port", str(self.port), "--accounts",
                str(self.accounts_path), *extra_args]
        for item in self.settings:
            args += ["--set", item]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.log = open(folder / "serve.log", "w+")
        self.proc = subprocess.Popen(args, cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout_s: float = 60.0) -> None:
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtv serve exited with {self.proc.returncode}: {self.output()}")
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"rtv serve did not answer in {timeout_s} s: {self.output()}")

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.folder / "serve.log").read_text()

    def stop(self, timeout_s: float = 20.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One ``rtv serve`` for a test module (stopped with SIGTERM at the end)."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    server = ServeProcess(tmp_path_factory.mktemp("serve"))
    yield server
    server.stop()


DOOR_SIZE_WH = (480, 360)
DOOR_FPS = 10.0
DOOR_SETTINGS = ["door.use_calibration=false", "door.cooldown_s=1", "door.track_cooldown_s=1", "source.pace=true"]


def _door_view(photo: np.ndarray, center_xy, zoom: float) -> np.ndarray:
    import cv2

    w, h = DOOR_SIZE_WH
    m = np.float32([[zoom, 0, w / 2 - zoom * center_xy[0]], [0, zoom, h / 2 - zoom * center_xy[1]]])
    return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(114, 114, 114))


def write_door_video(path: Path) -> Path:
    """A short clip for a door on a file source (looped by the service): the astronaut in view for 1.5 s, then
    nobody for 0.8 s (so each pass is a new face track)."""
    from realtime.io.sinks import Mp4Writer

    astro = _photo_arrays()["astronaut"]
    with Mp4Writer(path, fps=DOOR_FPS, crf=18, preset="ultrafast") as writer:
        for k in range(15):
            writer.write(_door_view(astro, (250.0 + k, 190.0 + 0.5 * k), 0.9 + 0.01 * k))
        for _ in range(8):
            writer.write(np.full((DOOR_SIZE_WH[1], DOOR_SIZE_WH[0], 3), 114, np.uint8))
    return path


def enrol_in_process(gallery_path: Path, name: str, image_bgr: np.ndarray) -> None:
    """Enrol one photo into ``gallery_path`` with the shipped models (a door needs someone enrolled to start)."""
    import dataclasses

    from realtime.build import open_face_detector, open_face_embedder
    from realtime.config import Config
    from realtime.face.enroll import collect_samples
    from realtime.gallery.store import Gallery

    config = Config()
    detector = open_face_detector(dataclasses.replace(config.faces, detect_width=640), config.runtime)
    embedder = open_face_embedder(config.faces, config.runtime)
    try:
        samples, refused = collect_samples([(name, image_bgr)], detector, embedder, 40, 25.0)
        assert samples, refused
        contract = embedder.model.contract
        with Gallery.open(gallery_path, model_sha256=embedder.sha256, model_name=contract.name,
                          embedding_size=contract.embedding_size, create=True) as gallery:
            gallery.enroll(name, samples[0].vector[None, :])
    finally:
        detector.close()
        embedder.close()


class Mosquitto:
    """Debian's mosquitto broker on a free 127.0.0.1 port (skips the test when it is not installed)."""

    def __init__(self, folder: Path) -> None:
        import shutil

        exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if exe is None:
            pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
        self.port = free_port()
        conf = folder / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
