"""What the public API returns for one image or frame: :class:`Result`.

A result wraps the pipeline's frozen :class:`realtime.types.FramePacket` and says where it came from. Its JSON is the
JSONL row the CLI writes (one function, :func:`result_record`, makes both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from realtime.config import OverlayConfig
from realtime.serialize import DEFAULT_DECIMALS, packet_record
from realtime.types import Detections, FaceDetections, FaceIdentities, FramePacket

if TYPE_CHECKING:
    import supervision


def result_record(packet: FramePacket, source: str | None, decimals: int = DEFAULT_DECIMALS) -> dict[str, Any]:
    """The JSON object for one frame: the JSONL row (frame, t, detections, faces, ...; see
    :func:`realtime.serialize.packet_record`) plus ``source``, the file it came from (``None`` for an image passed
    as an array). ``decimals``: pixel coordinates' decimals (``output.jsonl_decimals``)."""
    return packet_record(packet, decimals, extra={"source": source})


@dataclass(frozen=True)
class Result:
    """The results for one image or video frame.

    ``source``: the file it came from as given (``"photos/a.jpg"``), or ``None`` for an array; ``index``: the frame's
    number in its source (0 for a photo); ``frame_bgr``: uint8 (H, W, 3), the image the results are in the pixels
    of; ``detections``: objects (:class:`realtime.types.Detections`); ``faces``: the faces found
    (:class:`realtime.types.FaceDetections`: boxes, scores, landmarks); ``identities``: who they are
    (:class:`realtime.types.FaceIdentities`: names, distances, ...; ``None`` without recognition); ``packet``:
    everything the pipeline computed; ``decimals``: pixel coordinates' decimals in :meth:`to_json`.

    Example::

        >>> import numpy as np, realtime
        >>> with realtime.open_pipeline(overrides={"faces.recognize": False}) as vision:
        ...     result = vision.predict(np.zeros((120, 160, 3), np.uint8))
        >>> result.index, len(result.detections), len(result.faces)
        (0, 0, 0)
        >>> sorted(result.to_json())[:4]
        ['detections', 'faces', 'frame', 'ms']
    """

    packet: FramePacket
    source: str | None = None
    overlay: OverlayConfig = field(default_factory=OverlayConfig, repr=False)
    decimals: int = DEFAULT_DECIMALS

    @property
    def index(self) -> int:
        return self.packet.index

    @property
    def frame_bgr(self) -> np.ndarray:
        return self.packet.frame_bgr

    @property
    def detections(self) -> Detections:
        return self.packet.detections

    @property
    def faces(self) -> FaceDetections:
        return self.packet.faces

    @property
    def identities(self) -> FaceIdentities | None:
        return self.packet.identities

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the same object as this frame's JSONL row, with ``source``.

        Example::

            >>> import json, numpy as np, realtime
            >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
            ...     row = vision.predict(np.zeros((64, 64, 3), np.uint8)).to_json()
            >>> json.loads(json.dumps(row))["detections"]
            []
        """
        return result_record(self.packet, self.source, self.decimals)

    def plot(self) -> np.ndarray:
        """The annotated image: uint8 (H, W, 3) BGR, a new array (boxes, labels and names drawn as in the CLI's
        annotated outputs).

        Example::

            >>> import numpy as np, realtime
            >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
            ...     image = vision.predict(np.zeros((90, 120, 3), np.uint8)).plot()
            >>> image.shape, image.dtype.name
            ((90, 120, 3), 'uint8')
        """
        from realtime.overlay import Hud, render

        return render(self.packet, Hud(), self.overlay)

    def to_supervision(self) -> "supervision.Detections":
        """The objects as a ``supervision.Detections`` (``xyxy``, ``confidence``, ``class_id``, ``tracker_id``
        where tracked, and ``data["class_name"]``). Needs the ``supervision`` package; :class:`ImportError` saying
        how to install it otherwise.

        Example::

            >>> import numpy as np, realtime
            >>> with realtime.open_pipeline(overrides={"faces.enabled": False}) as vision:
            ...     result = vision.predict(np.zeros((64, 64, 3), np.uint8))
            >>> len(result.to_supervision())  # doctest: +SKIP
            0
        """
        try:
            import supervision as sv
        except ImportError as exc:
            raise ImportError("Result.to_supervision() needs the supervision package: pip install supervision") \
                from exc
        d = self.detections
        tracked = d.track_ids if len(d) and bool((d.track_ids >= 0).all()) else None
        return sv.Detections(xyxy=np.asarray(d.boxes_xyxy, np.float32).reshape(-1, 4),
                             confidence=np.asarray(d.scores, np.float32),
                             class_id=np.asarray(d.class_ids, int),
                             tracker_id=None if tracked is None else np.asarray(tracked, int),
                             data={"class_name": np.asarray([d.class_name(i) for i in range(len(d))], dtype=str)})
