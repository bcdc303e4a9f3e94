"""Packet contents check their own lengths."""

import numpy as np
import pytest

from realtime.types import Detections, EndReason, Faces


def test_faces_with_arrays_of_unequal_length_are_refused():
    ok = Faces(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
               landmarks5=np.zeros((2, 5, 2), np.float32))
    assert len(ok) == 2
    with pytest.raises(ValueError, match="landmarks5"):
        Faces(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
              landmarks5=np.zeros((1, 5, 2), np.float32))
    with pytest.raises(ValueError, match="identities"):
        Faces(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
              landmarks5=np.zeros((2, 5, 2), np.float32), identities=("a",))
    with pytest.raises(ValueError, match="embedded"):
        Faces(boxes_xyxy=np.zeros((1, 4), np.float32), scores=np.ones(1, np.float32),
              landmarks5=np.zeros((1, 5, 2), np.float32), embedded=np.zeros(3, bool))


def test_detections_with_unequal_lengths_are_refused():
    with pytest.raises(ValueError, match="class_ids"):
        Detections(boxes_xyxy=np.zeros((2, 4), np.float32), scores=np.ones(2, np.float32),
                   class_ids=np.zeros(1, np.int64))


def test_end_reasons_are_strings_in_the_jsonl():
    assert EndReason.END == "end" and str(EndReason.INTERRUPTED) == "interrupted"
