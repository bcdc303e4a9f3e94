import numpy as np
import pytest

from realtime.face.verification import best_accuracy_threshold, pair_distances, roc_curve, threshold_at_far


def test_pair_distances_golden():
    vectors = np.array([[0, 0], [3, 4], [0, 1], [6, 8]], np.float32)
    labels = np.array(["a", "a", "b", "b"])
    genuine, impostor = pair_distances(vectors, labels)
    np.testing.assert_allclose(sorted(genuine), [5.0, np.hypot(6, 7)])
    np.testing.assert_allclose(sorted(impostor), sorted([1.0, 10.0, np.hypot(3, 3), 5.0]))


def test_roc_matches_a_plain_loop():
    rng = np.random.default_rng(3)
    genuine, impostor = rng.normal(0.4, 0.1, 50), rng.normal(0.8, 0.1, 200)
    roc = roc_curve(genuine, impostor)
    for t, far, tar in zip(roc.thresholds, roc.far, roc.tar):
        assert far == pytest.approx(np.mean(impostor < t))
        assert tar == pytest.approx(np.mean(genuine < t))
    assert roc.tar[-1] == 1.0 and roc.far[-1] == 1.0


def test_threshold_at_far():
    genuine = np.array([0.1, 0.2, 0.3, 0.7])
    impostor = np.array([0.5, 0.6, 0.8, 0.9])
    threshold, far, tar = threshold_at_far(genuine, impostor, 0.0)
    assert threshold == 0.5 and far == 0.0 and tar == 0.75  # accept < 0.5: no impostor, 3 of 4 genuine
    threshold, far, tar = threshold_at_far(genuine, impostor, 0.25)
    assert threshold == 0.6 and far == 0.25 and tar == 0.75


def test_best_accuracy_threshold():
    threshold, accuracy = best_accuracy_threshold(np.array([0.1, 0.2]), np.array([0.5, 0.6]))
    assert 0.2 < threshold <= 0.5 and accuracy == 1.0
