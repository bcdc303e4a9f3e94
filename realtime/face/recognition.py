"""Face recognition stage: track, align, embed, match. (Detection is ``realtime.face.detector.FaceDetector``.)

Recognition re-embeds a face only when its track is new, every few frames, or when the box moved a lot; other
frames reuse the track's last identity, so a steady face costs little.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from realtime.face.embedder import FaceEmbedder
from realtime.face.matching import match_faces
from realtime.face.track import FaceTracker
from realtime.types import FramePacket


class FaceRecognition:
    """Stage "recognize": identities and distances for ``packet.faces`` against a gallery snapshot.

    A new track is embedded at once; a known one only when the tracker says it is due (every few frames, or when
    its box moved), and at most ``max_reembed_per_frame`` of those per frame.

    ``gallery_vectors``: float32 (M, D); ``gallery_labels``: (M,) person names. The alignment template and chip
    size come from the embedder's contract; the chips are cut by ``embedder.align`` (dlib's 5 points and dlib's
    chip geometry when the embedder has a dlib aligner), and the dlib points of the faces embedded on this frame
    travel in ``faces.landmarks_dlib5`` (NaN for the others).
    """

    name = "recognize"

    def __init__(self, embedder: FaceEmbedder, gallery_vectors: np.ndarray, gallery_labels: np.ndarray,
                 tracker: FaceTracker, match_threshold: float, match_margin: float, max_reembed_per_frame: int = 1):
        self.embedder = embedder
        self.gallery_vectors = gallery_vectors
        self.gallery_labels = gallery_labels
        self.tracker = tracker
        self.match_threshold = match_threshold
        self.match_margin = match_margin
        self.max_reembed_per_frame = max_reembed_per_frame
        self.embedded = 0

    def __call__(self, packet: FramePacket) -> FramePacket:
        faces = packet.faces
        update = self.tracker.update(faces.boxes_xyxy, packet.index)
        n = len(faces)
        identities: list[str | None] = [None] * n
        distances = np.full(n, np.nan, dtype=np.float32)
        seconds = np.full(n, np.nan, dtype=np.float32)
        embedded = np.zeros(n, dtype=bool)
        new: list[int] = []
        due: list[int] = []
        for i in range(n):
            remembered = self.tracker.recall(int(update.track_ids[i]))
            if remembered is None:
                new.append(i)
                continue
            identities[i], distances[i] = remembered[0], remembered[1]
            if update.needs_embedding[i]:
                due.append(i)
        # New faces are always embedded; scheduled re-embeddings are spread over frames (the tracker keeps
        # flagging a face until it is embedded), so several steady faces never all cost on the same frame.
        todo = np.asarray(new + due[:self.max_reembed_per_frame], dtype=np.int64)
        landmarks_dlib5 = np.full((n, 5, 2), np.nan, dtype=np.float32)
        if todo.size:
            chips, landmarks_dlib5[todo] = self.embedder.align(packet.frame_bgr, faces.boxes_xyxy[todo],
                                                               faces.landmarks5[todo])
            vectors = self.embedder.embed(chips)
            names, best, second = match_faces(vectors, self.gallery_vectors, self.gallery_labels,
                                               self.match_threshold, self.match_margin)
            self.embedded += int(todo.size)
            for k, i in enumerate(todo):
                identities[i], distances[i], seconds[i], embedded[i] = names[k], best[k], second[k], True
                self.tracker.remember(int(update.track_ids[i]), names[k], float(best[k]), float(second[k]))
        faces = dataclasses.replace(faces, identities=tuple(identities), distances=distances,
                                    second_distances=seconds, embedded=embedded,
                                    track_ids=update.track_ids.astype(np.int64), landmarks_dlib5=landmarks_dlib5)
        return dataclasses.replace(packet, faces=faces)

    def close(self) -> None:
        self.embedder.close()

