"""Face recognition stage: track, align, embed, match. (Detection is ``realtime.face.detector.FaceDetector``.)

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


class FaceRecognition:
    """Stage "recognize": identities and distances for ``packet.faces`` against a gallery snapshot.

    ``gallery_vectors``: float32 (M, D); ``gallery_labels``: (M,) person names. The alignment template and chip
    size come from the embedder's contract.
    """

    name = "recognize"

    def __init__(self, embedder: FaceEmbedder, gallery_vectors: np.ndarray, gallery_labels: np.ndarray,
                 tracker: FaceTracker, match_threshold: float, match_margin: float):
        self.embedder = embedder
        self.gallery_vectors = gallery_vectors
        self.gallery_labels = gallery_labels
        self.tracker = tracker
        self.match_threshold = match_threshold
        self.match_margin = match_margin
        self.embedded = 0

    def __call__(self, packet: FramePacket) -> FramePacket:
        faces = packet.faces
        update = self.tracker.update(faces.boxes_xyxy, packet.index)
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
            chips = align_faces(packet.frame_bgr, faces.landmarks5[todo], self.embedder.template5,
                                self.embedder.size_wh[0])
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
        self.embedder.close()

