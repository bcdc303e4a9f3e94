import numpy as np

from realtime.face.recognition import FaceRecognition
from realtime.face.track import FaceTracker, VoteRule
from realtime.serialize import faces_json
from realtime.types import FaceDetections, FramePacket


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
    return FaceDetections(boxes, np.ones(n, np.float32), landmarks)


def test_new_faces_are_named_and_steady_ones_reuse_identity():
    embedder = FakeEmbedder()
    gallery = np.eye(4, dtype=np.float32)
    labels = np.array(["dark", "dim", "mid", "bright"])
    vote = VoteRule(window=3, name_votes=2, change_votes=3)
    stage = FaceRecognition(embedder, gallery, labels, FaceTracker(reembed_every=5, vote=vote),
                            match_threshold=0.5, match_margin=0.1)
    frame = frame_with_patches([10, 100, 250])
    names_per_frame = []
    for index in range(16):
        out = stage(FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame, faces=faces_for(3)))
        names_per_frame.append(out.identities.track_names)
        assert list(out.identities.track_ids) == [1, 2, 3]
        assert out.identities.names == ("dark", "dim", "bright")  # every embedding names them
    assert names_per_frame[0] == (None, None, None)  # one vote of the two needed
    assert all(names == ("dark", "dim", "bright") for names in names_per_frame[1:])
    assert embedder.calls[:3] == [3, 3, 3]  # new tracks: embedded together on each frame of the vote window
    assert max(embedder.calls[3:]) == 1  # then re-embeddings spread: never more than one per frame
    assert sum(embedder.calls) < 3 * 16 / 2  # far fewer embeddings than faces seen
    assert out.identities.votes.tolist() == [3, 3, 3] and out.identities.voters.tolist() == [3, 3, 3]
    entry = faces_json(out.faces, out.identities)[0]
    assert entry["track_identity"] == "dark" and entry["votes"] == 3 and entry["voters"] == 3
    assert entry["identity"] == "dark" and entry["distance"] == 0.0 and entry["track"] == 1


def test_unknown_face_keeps_distance():
    embedder = FakeEmbedder()
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32)[:1], np.array(["dark"]), FaceTracker(),
                            match_threshold=0.5, match_margin=0.0)
    out = stage(FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([250]),
                            faces=faces_for(1)))
    assert out.identities.names == (None,)
    assert out.identities.distances[0] == np.float32(np.sqrt(2))


def test_no_faces_no_embedding():
    embedder = FakeEmbedder()
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32), np.array(list("abcd")), FaceTracker(),
                            match_threshold=0.5, match_margin=0.0)
    out = stage(FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([]),
                            faces=faces_for(0)))
    assert len(out.faces) == 0 and embedder.calls == []


def test_one_stray_embedding_does_not_rename_a_track():
    """A face named 'dark' whose patch turns 'bright' for one re-embedding keeps its name (hysteresis)."""
    embedder = FakeEmbedder()
    vote = VoteRule(window=3, name_votes=2, change_votes=3)
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32), np.array(["dark", "dim", "mid", "bright"]),
                            FaceTracker(reembed_every=1, vote=vote, swap_distance=2.0), match_threshold=0.5,
                            match_margin=0.0)
    values = [10] * 5 + [250] + [10] * 3 + [250] * 3
    seen = []
    for index, v in enumerate(values):
        out = stage(FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([v]),
                                faces=faces_for(1)))
        seen.append((out.identities.names[0], out.identities.track_names[0]))
    assert seen[5] == ("bright", "dark")  # the stray embedding is reported, the track keeps its name
    assert [s[1] for s in seen[6:9]] == ["dark"] * 3
    assert seen[-1] == ("bright", "bright")  # three of three: a real change
    assert seen[-2][1] == "dark"


def test_cohort_face_closer_than_the_enrolled_person_blocks_the_name():
    embedder = FakeEmbedder()
    gallery = np.eye(4, dtype=np.float32)[:1]  # only "dark" enrolled
    near = np.array([[0.98, 0.0, 0.0, 0.0]], np.float32)  # a stranger within the margin of this face
    args = dict(match_threshold=1.0, match_margin=0.05)
    vote = VoteRule(1, 1, 1)
    with_cohort = FaceRecognition(embedder, gallery, np.array(["dark"]), FaceTracker(vote=vote),
                                  cohort_vectors=np.array([[0.0, 1.0, 0.0, 0.0]], np.float32), **args)
    packet = FramePacket(index=0, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([10]),
                         faces=faces_for(1))
    assert with_cohort(packet).identities.track_names == ("dark",)  # the cohort face is far: named
    blocked = FaceRecognition(embedder, gallery, np.array(["dark"]), FaceTracker(vote=vote), cohort_vectors=near,
                              **args)
    out = blocked(packet).identities
    assert out.track_names == (None,) and out.names == (None,)
    assert out.distances[0] == 0.0  # distance still reported


def test_a_track_that_swaps_people_votes_again_at_once():
    """The IoU tracker carries a track over a cut to another face: its embedding jumps further than
    ``swap_distance``, and the track forgets its name at once instead of keeping it until the vote turns."""
    embedder = FakeEmbedder()
    vote = VoteRule(window=3, name_votes=2, change_votes=3)
    stage = FaceRecognition(embedder, np.eye(4, dtype=np.float32), np.array(["dark", "dim", "mid", "bright"]),
                            FaceTracker(reembed_every=1, vote=vote), match_threshold=0.5, match_margin=0.0)
    shown = []
    for index, v in enumerate([10] * 4 + [250] * 3):
        out = stage(FramePacket(index=index, t_capture=0.0, t_source=0.0, frame_bgr=frame_with_patches([v]),
                                faces=faces_for(1)))
        shown.append(out.identities.track_names[0])
    assert out.identities.track_ids.tolist() == [1]  # one track throughout
    assert shown == [None, "dark", "dark", "dark", None, "bright", "bright"]
