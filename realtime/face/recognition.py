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

    A new track is embedded at once; a known one only when the tracker says it is due (every few frames, or when
    its box moved), and at most ``max_reembed_per_frame`` of those per frame.

    ``gallery_vectors``: float32 (M, D); ``gallery_labels``: (M,) person names. The alignment template and chip
    size come from the embedder's contract.
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
        if todo.size:
            chips = align_faces(packet.frame_bgr, faces.landmarks5[todo], self.embedder.template5,
                                self.embedder.size_wh[0])
            vectors = self.embedder.embed(chips)
            names, best, second = match_faces(vectors, self.gallery_vectors, self.gallery_labels,
                                               self.match_threshold, self.match_margin)
            self.embedded += int(todo.size)
            for k, i in enumerate(todo):
                identities[i], distances[i], seconds[i], embedded[i] = names[k], best[k], second[k], True
                self.tracker.remember(int(update.track_ids[i]), names[k], float(best[k]), float(second[k]))
        faces = dataclasses.replace(faces, identities=tuple(identities), distances=distances,
                                    second_distances=seconds, embedded=embedded,
                                    track_ids=update.track_ids.astype(np.int64))
        return dataclasses.replace(packet, faces=faces)

    def reset(self) -> None:
        """Start over as for a new video: a fresh tracker (no tracks; ids from 1 again), no embedding count."""
        t = self.tracker
        self.tracker = FaceTracker(iou_threshold=t.iou_threshold, max_missed=t.max_missed,
                                   reembed_every=t.reembed_every, reembed_iou=t.reembed_iou,
                                   history_size=t.history_size)
        self.embedded = 0

    def close(self) -> None:
        self.embedder.close()

