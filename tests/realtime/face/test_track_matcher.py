"""The face tracker associates boxes with the object tracker's greedy matcher (one matcher for both trackers)."""

import numpy as np
import pytest

from realtime.boxes import box_iou
from realtime.detect.track import greedy_match
from realtime.face.track import FaceTracker


def _boxes(rng, n):
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(20, 60, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("seed", range(20))
def test_second_frame_ids_follow_greedy_match(seed):
    rng = np.random.default_rng(seed)
    first = _boxes(rng, int(rng.integers(1, 6)))
    second = np.concatenate([first + rng.normal(0, 8, first.shape), _boxes(rng, int(rng.integers(0, 3)))])
    second = second[rng.permutation(len(second))]
    tracker = FaceTracker(iou_threshold=0.3)
    ids_first = tracker.update(first).track_ids
    ids_second = tracker.update(second).track_ids
    rows = greedy_match(box_iou(first, second), 0.3)
    for i, row in enumerate(rows):
        if row >= 0:
            assert ids_second[i] == ids_first[row]
        else:
            assert ids_second[i] not in ids_first  # a new track


def test_an_iou_tie_goes_to_the_older_track():
    tracker = FaceTracker(iou_threshold=0.3)
    a, b = np.array([[0, 0, 10, 10]], float), np.array([[10, 0, 20, 10]], float)
    ids = tracker.update(np.concatenate([a, b])).track_ids
    middle = np.array([[5, 0, 15, 10]], float)  # the same IoU with both tracks
    assert tracker.update(middle).track_ids.tolist() == [ids[0]]
