"""rtv serving package: capture, ONNX Runtime, decode, faces, overlays, outputs. Never imports torch.

The public Python API (imported on first use, so ``import realtime`` stays cheap)::

    import realtime

    with realtime.open_pipeline(overrides={"detector.score_threshold": 0.4}) as vision:
        result = vision.predict("photo.jpg")           # one photo -> Result
        for result in vision.stream("street.mp4"):     # frames of a video, camera or stream
            ...
        for result in vision.predict_files("photos/"): # files, folders, globs, lists
            ...
    gallery = realtime.open_gallery("people.sqlite")   # enrol, identify, list, remove
    faces = realtime.open_faces()                      # describe and verify faces on photos

See docs/api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "open_pipeline": "realtime.api",
    "Vision": "realtime.api",
    "Result": "realtime.results",
    "open_gallery": "realtime.api",
    "Gallery": "realtime.face.enroll",
    "Match": "realtime.face.enroll",
    "open_faces": "realtime.api",
    "FaceModels": "realtime.face.describe",
    "FaceDescription": "realtime.face.describe",
    "Verification": "realtime.face.describe",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from realtime.api import Vision, open_faces, open_gallery, open_pipeline
    from realtime.face.describe import FaceDescription, FaceModels, Verification
    from realtime.face.enroll import Gallery, Match
    from realtime.results import Result


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'realtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
