"""Face recognition stage: track, align, embed, match. (Detection is ``realtime.face.detector.FaceDetector``.)

Recognition re-embeds a face only when its track is new, every few frames, or when the box moved a lot; other
frames reuse the track's last result, so a steady face costs little. A track whose identity is still forming (fewer
results than the vote window) is embedded on every frame, like a new one, and so is a face whose tiny thumbnail
changed abruptly since the last frame (the IoU tracker carried its track over a cut or a crossing).

What a face is called is its *track's* identity, voted over the track's recent results with hysteresis
(:func:`realtime.face.track.vote_identity`), not the newest embedding's decision alone:
``FaceIdentities.track_names`` (what the overlay shows), while ``FaceIdentities.names`` and ``distances`` keep the
newest embedding's own decision and distance (the door votes on those). A background *cohort* of faces of people
who are not enrolled (:mod:`realtime.face.cohort`) gives each decision a second-best candidate even when a single
person is enrolled.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np

from realtime.face.embedder import FaceEmbedder
from realtime.face.matching import match_faces
from realtime.face.track import APPEARANCE_CHANGE, FaceTracker, appearance_changed, face_thumbnail
from realtime.types import FaceIdentities, FramePacket


class FaceRecognition:
    """Stage "recognize": ``packet.identities`` (tracks, names, distances, votes) for ``packet.faces`` against a
    gallery snapshot (:meth:`replace_gallery` hands it a new one between frames).

    A new track is embedded at once and on each of its first ``vote.window`` frames; a known one only when the
    tracker says it is due (every few frames, or when its box moved), and at most ``max_reembed_per_frame`` of
    those per frame.

    ``gallery_vectors``: float32 (M, D); ``gallery_labels``: (M,) person names; ``cohort_vectors``: float32 (C, D)
    background faces (second-best candidates, never named) or None; ``appearance_change``: the thumbnail change
    that makes a face be embedded again at once (None: off). The alignment template and chip size come from
    the embedder's contract; the chips are cut by ``embedder.align`` (dlib's 5 points and dlib's chip geometry
    when the embedder has a dlib aligner), and the dlib points of the faces embedded on this frame travel in
    ``identities.landmarks_dlib5`` (NaN for the others).
    """

    name = "recognize"
    pure = False
    fail_soft = False

    def __init__(self, embedder: FaceEmbedder, gallery_vectors: np.ndarray, gallery_labels: np.ndarray,
                 tracker: FaceTracker, match_threshold: float, match_margin: float, max_reembed_per_frame: int = 1,
                 cohort_vectors: np.ndarray | None = None, appearance_change: float | None = APPEARANCE_CHANGE):
        self.embedder = embedder
        self.gallery_vectors = gallery_vectors
        self.gallery_labels = gallery_labels
        self.tracker = tracker
        self._tracker_as_built = copy.deepcopy(tracker)  # what reset() starts from
        self.match_threshold = match_threshold
        self.match_margin = match_margin
        self.max_reembed_per_frame = max_reembed_per_frame
        self.cohort_vectors = cohort_vectors
        self.embedded = 0
        self.appearance_change = appearance_change
        self._thumbs: dict[int, np.ndarray] = {}

    def __call__(self, packet: FramePacket) -> FramePacket:
        faces = packet.faces
        update = self.tracker.update(faces.boxes_xyxy, packet.index)
        n = len(faces)
        identities: list[str | None] = [None] * n
        distances = np.full(n, np.nan, dtype=np.float32)
        seconds = np.full(n, np.nan, dtype=np.float32)
        embedded = np.zeros(n, dtype=bool)
        new: list[int] = []
        urgent: list[int] = []
        due: list[int] = []
        for track_id in update.dropped_ids.tolist():
            self._thumbs.pop(int(track_id), None)
        for i in range(n):
            track_id = int(update.track_ids[i])
            swapped = False
            if self.appearance_change is not None:
                thumb = face_thumbnail(packet.frame_bgr, faces.boxes_xyxy[i])
                before = self._thumbs.get(track_id)
                self._thumbs[track_id] = thumb
                swapped = before is not None and appearance_changed(before, thumb, self.appearance_change)
            remembered = self.tracker.recall(track_id)
            # a new track, a vote still forming, or the box now shows another face (a cut, people crossing)
            if remembered is None or self.tracker.voting(track_id) or swapped:
                new.append(i)
                continue
            identities[i], distances[i] = remembered[0], remembered[1]
            if self.tracker.unsettled(track_id):
                urgent.append(i)
            elif update.needs_embedding[i]:
                due.append(i)
        # New faces (and tracks whose vote is still forming: at most ``vote.window`` frames each) are always
        # embedded; re-embeddings are spread over frames (the tracker keeps flagging a face until it is embedded),
        # so several steady faces never all cost on the same frame. A track whose newest result disagrees with its
        # identity goes first, so a change (or a stray result) is settled within a few frames.
        todo = np.asarray(new + (urgent + due)[:self.max_reembed_per_frame], dtype=np.int64)
        landmarks_dlib5 = np.full((n, 5, 2), np.nan, dtype=np.float32)
        if todo.size:
            chips, landmarks_dlib5[todo] = self.embedder.align(packet.frame_bgr, faces.boxes_xyxy[todo],
                                                               faces.landmarks5[todo])
            vectors = self.embedder.embed(chips)
            names, best, second = match_faces(vectors, self.gallery_vectors, self.gallery_labels,
                                               self.match_threshold, self.match_margin, self.cohort_vectors)
            self.embedded += int(todo.size)
            for k, i in enumerate(todo):
                identities[i], distances[i], seconds[i], embedded[i] = names[k], best[k], second[k], True
                self.tracker.remember(int(update.track_ids[i]), names[k], float(best[k]), float(second[k]),
                                      vector=vectors[k])
        voted = [self.tracker.identity(int(t)) for t in update.track_ids]
        result = FaceIdentities(track_ids=update.track_ids.astype(np.int64).reshape(n), names=tuple(identities),
                                distances=distances, second_distances=seconds, embedded=embedded,
                                track_names=tuple(v.identity for v in voted),
                                votes=np.asarray([v.votes for v in voted], dtype=np.int64).reshape(n),
                                voters=np.asarray([v.voters for v in voted], dtype=np.int64).reshape(n),
                                landmarks_dlib5=landmarks_dlib5)
        return dataclasses.replace(packet, identities=result)

    def replace_gallery(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        """Match against ``vectors`` (float32 (M, D)) named ``labels`` ((M,) person names) from the next frame on,
        and forget every track, so no vote cast against the old gallery counts."""
        vectors = np.asarray(vectors, dtype=np.float32)
        labels = np.asarray(labels)
        if len(vectors) != len(labels):
            raise ValueError(f"replace_gallery: {len(vectors)} vectors for {len(labels)} labels")
        self.gallery_vectors = vectors
        self.gallery_labels = labels
        self.forget_tracks()

    def forget_tracks(self) -> None:
        """Drop every face track (their votes and remembered results), e.g. after the camera was lost: the next
        frames start new tracks. The embedding count and the gallery stay."""
        self.tracker.reset()
        self._thumbs.clear()

    def reset(self) -> None:
        """Start over as for a new video: the tracker as it was built (no tracks; ids from 1 again), no thumbnails,
        no embedding count."""
        self.tracker = copy.deepcopy(self._tracker_as_built)
        self._thumbs.clear()
        self.embedded = 0

    def close(self) -> None:
        self.embedder.close()

