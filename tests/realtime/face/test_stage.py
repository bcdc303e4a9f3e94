import numpy as np

from realtime.face.recognition import FaceRecognition
from realtime.face.track import FaceTracker
from realtime.types import Faces, FramePacket


class FakeEmbedder:
    """Embeds a chip as a one-hot vector chosen by the chip's mean brightness band; counts faces embedded."""

    template5 = np.array([[46.7, 46.1], [100.3, 46.6], [74.3, 76.5], [45.8, 93.2], [100.7, 93.5]], np.float32)
    size_wh = (150, 150)
    embedding_size = 4

    def __init__(self):
        self.calls = []

    def align(self, frame, boxes_xyxy, landmarks5):
        from realtime.face.align import align_faces

        chips = align_faces(frame, landmarks5, self.template5, self.size_wh[0])
        return chips, np.full((len(chips), 5, 2), np.nan, np.float32)

    def embed(self, chips):
        self.calls.append(len(chips))
        out = np.zeros((len(chips), 4), np.float32)
        for k, chip in enumerate(chips):
            out[k, min(3, int(chip.mean()) // 64)] = 1.0
        return out

    def close(self):
        pass


def frame_with_patches(values):
    frame = np.zeros((200, 600, 3), np.uint8)
    for k, v in enumerate(values):
        frame[40:160, 20 + 200 * k:140 + 200 * k] = v
    return frame


def faces_for(n):
    boxes = np.array([[20 + 200 * k, 40, 140 + 200 * k, 160] for k in range(n)], np.float32)
    boxes = boxes.reshape(-1, 4)
    landmarks = (FakeEmbedder.template5[None] * 0.8 + boxes[:, None, :2]).astype(np.float32)
    return Faces(boxes, np.ones(n, np.float32), landmarks, (None,) * n, np.full(n, np.nan, np.float32),
                 np.full(n, -1, np.int64))


def test_new_faces_are_named_and_steady_ones_reuse_identity():
    embedder = FakeEmbedder()
    gallery = np.eye(4, dtype=np.float32)
    labels = np.array(["dark", "dim", "mid", "bright"])
    stage = FaceRecognition(embedder, gallery, labels, FaceTracker(reembed_every=5), match_threshold=0.5,
                            match_margin=0.1)
    frame = frame_with_patches([10, 100, 250])
    names_per_frame = []
    for index in range(12):
        out = stage(FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame, faces=faces_for(3)))
        names_per_frame.append(out.faces.identities)
        assert list(out.faces.track_ids) == [1, 2, 3]
    assert all(names == ("dark", "dim", "bright") for names in names_per_frame)
    assert embedder.calls[0] == 3  # all three new faces at once, in one batch
    assert max(embedder.calls[1:]) == 1  # re-embeddings spread: never more than one per frame
    assert sum(embedder.calls) < 3 * 12 / 2  # far fewer embeddings than faces seen


def test_unknown_face_keeps_distance():
    embedder = FakeEmbedder()
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32)[:1], np.array(["dark"]), FaceTracker(),
                            match_threshold=0.5, match_margin=0.0)
    out = stage(FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([250]),
                            faces=faces_for(1)))
    assert out.faces.identities == (None,)
    assert out.faces.distances[0] == np.float32(np.sqrt(2))


def test_no_faces_no_embedding():
    embedder = FakeEmbedder()
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32), np.array(list("abcd")), FaceTracker(),
                            match_threshold=0.5, match_margin=0.0)
    out = stage(FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([]),
                            faces=faces_for(0)))
    assert len(out.faces) == 0 and embedder.calls == []
