"""Packet contents check their own lengths and index like supervision's Detections."""

import dataclasses

import numpy as np
import pytest

from realtime.types import Detections, EndReason, FaceDetections, FaceIdentities, FramePacket


def test_faces_with_arrays_of_unequal_length_are_refused():
    ok = FaceDetections(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
                        landmarks5=np.zeros((2, 5, 2), np.float32))
    assert len(ok) == 2
    with pytest.raises(ValueError, match="landmarks5"):
        FaceDetections(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
                       landmarks5=np.zeros((1, 5, 2), np.float32))


def test_identities_have_one_row_per_face_in_every_field():
    two = FaceIdentities.unknown(2)
    assert len(two) == 2 and two.names == (None, None) and two.track_ids.tolist() == [-1, -1]
    with pytest.raises(ValueError, match="names"):
        dataclasses.replace(two, names=("a",))
    with pytest.raises(ValueError, match="embedded"):
        dataclasses.replace(two, embedded=np.zeros(3, bool))
    with pytest.raises(ValueError, match="landmarks_dlib5"):
        dataclasses.replace(two, landmarks_dlib5=np.zeros((0, 5, 2), np.float32))  # no "empty or per-face" rows


def test_a_packet_refuses_identities_for_another_number_of_faces():
    faces = FaceDetections(np.zeros((2, 4), np.float32), np.ones(2, np.float32), np.zeros((2, 5, 2), np.float32))
    frame = np.zeros((4, 4, 3), np.uint8)
    assert len(FramePacket(0, 0.0, 0.0, frame, faces=faces, identities=FaceIdentities.unknown(2)).identities) == 2
    with pytest.raises(ValueError, match="identities"):
        FramePacket(0, 0.0, 0.0, frame, faces=faces, identities=FaceIdentities.unknown(1))


def _detections():
    return Detections(boxes_xyxy=np.arange(12, dtype=np.float32).reshape(3, 4),
                      scores=np.array([0.9, 0.3, 0.6], np.float32), class_ids=np.array([0, 1, 2]),
                      class_names=("a", "b", "c"), track_ids=np.array([5, -1, 7]))


def test_detections_index_like_supervision_with_masks_indices_slices_and_ints():
    d = _detections()
    confident = d[d.scores > 0.5]
    assert isinstance(confident, Detections) and len(confident) == 2
    assert confident.class_ids.tolist() == [0, 2] and confident.track_ids.tolist() == [5, 7]
    assert confident.boxes_xyxy.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert confident.class_names == ("a", "b", "c")  # the class list is not per row
    assert d[np.array([2, 0])].scores.tolist() == pytest.approx([0.6, 0.9])
    assert d[1:].class_ids.tolist() == [1, 2] and d[-1].track_ids.tolist() == [7]
    assert len(d[d.scores > 5]) == 0 and d[d.scores > 5].boxes_xyxy.shape == (0, 4)
    with pytest.raises(IndexError):
        d[np.array([True, False])]  # a mask for another number of rows
    with pytest.raises(IndexError):
        d[3]


def test_faces_and_identities_index_the_same_way():
    faces = FaceDetections(np.arange(8, dtype=np.float32).reshape(2, 4), np.array([0.2, 0.8], np.float32),
                           np.arange(20, dtype=np.float32).reshape(2, 5, 2))
    ids = dataclasses.replace(FaceIdentities.unknown(2), names=("ann", None), track_ids=np.array([3, 4]))
    keep = faces.scores > 0.5
    assert faces[keep].landmarks5.tolist() == [np.arange(10, 20).reshape(5, 2).tolist()]
    assert ids[keep].names == (None,) and ids[keep].track_ids.tolist() == [4]
    assert ids[[1, 0]].names == (None, "ann") and ids[keep].landmarks_dlib5.shape == (1, 5, 2)


def test_detections_with_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="class_ids"):
        Detections(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
                   class_ids=np.zeros(1, np.int64))


def test_end_reasons_are_strings_in_the_jsonl():
    assert EndReason.END == "end" and str(EndReason.INTERRUPTED) == "interrupted"
