"""Face pipeline stages: detection (boxes + 5 landmarks), then recognition (track, align, embed, match).

Recognition re-embeds a face only when its track is new, every few frames, or when the box moved a lot; other
frames reuse the track's last identity, so a steady face costs little.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from realtime.face.align import align_faces
from realtime.face.embedder import FaceEmbedder
from realtime.face.matching import match_faces
from realtime.face.track import FaceTracker
from realtime.types import FramePacket


class FaceDetection:
    """Stage "faces": fills ``packet.faces`` with boxes, scores and landmarks in source pixels."""

    name = "faces"

    def __init__(self, detector):
        self.detector = detector

    def __call__(self, packet: FramePacket) -> FramePacket:
        return dataclasses.replace(packet, faces=self.detector.detect(packet.frame_bgr))

    def close(self) -> None:
        self.detector.model.close()


class FaceRecognition:
    """Stage "recognize": identities and distances for ``packet.faces`` against a gallery snapshot.

    ``gallery_vectors``: float32 (M, D); ``gallery_labels``: (M,) person names; ``template5``: float (5, 2) chip
    positions of the 5 landmarks at ``chip_size``.
    """

    name = "recognize"

    def __init__(self, embedder: FaceEmbedder, gallery_vectors: np.ndarray, gallery_labels: np.ndarray,
                 template5: np.ndarray, tracker: FaceTracker, match_threshold: float, match_margin: float,
                 chip_size: int = 150):
        self.embedder = embedder
        self.gallery_vectors = gallery_vectors
        self.gallery_labels = gallery_labels
        self.template5 = np.asarray(template5, dtype=np.float32)
        self.tracker = tracker
        self.match_threshold = match_threshold
        self.match_margin = match_margin
        self.chip_size = chip_size
        self.embedded = 0

    def __call__(self, packet: FramePacket) -> FramePacket:
        faces = packet.faces
        update = self.tracker.update(faces.boxes_xyxy)
        n = len(faces)
        identities: list[str | None] = [None] * n
        distances = np.full(n, np.nan, dtype=np.float32)
        todo = np.nonzero(update.needs_embedding)[0]
        for i in np.nonzero(~update.needs_embedding)[0]:
            remembered = self.tracker.recall(int(update.track_ids[i]))
            if remembered is not None:
                identities[i], distances[i] = remembered[0], remembered[1]
            else:
                todo = np.append(todo, i)
        if todo.size:
            chips = align_faces(packet.frame_bgr, faces.landmarks5[todo], self.template5, self.chip_size)
            vectors = self.embedder.embed(chips)
            names, best, _second = match_faces(vectors, self.gallery_vectors, self.gallery_labels,
                                               self.match_threshold, self.match_margin)
            self.embedded += int(todo.size)
            for k, i in enumerate(todo):
                identities[i], distances[i] = names[k], best[k]
                self.tracker.remember(int(update.track_ids[i]), names[k], float(best[k]))
        faces = dataclasses.replace(faces, identities=tuple(identities), distances=distances,
                                    track_ids=update.track_ids.astype(np.int64))
        return dataclasses.replace(packet, faces=faces)

    def close(self) -> None:
        self.embedder.model.close()

