"""Open-set matching: golden cases on orthonormal embeddings, the margin rule, empty gallery, a brute-force check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.errors import ConfigError, GalleryError
from realtime.face.matching import match_faces, pairwise_distances

SQRT2 = math.sqrt(2.0)


def _basis(d: int = 8) -> np.ndarray:
    return np.eye(d, dtype=np.float32)


def test_orthonormal_golden_distances():
    e = _basis()
    gallery = np.stack([e[0], e[1], e[2]])
    labels = np.array(["alice", "bob", "carol"])
    # q0 == alice; q1 == bob; q2 orthogonal to all; q3 halfway between alice and bob (unit length).
    q3 = (e[0] + e[1]) / np.float32(SQRT2)
    query = np.stack([e[0], e[1], e[5], q3])
    ids, dist, second = match_faces(query, gallery, labels, match_threshold=0.6, margin=0.0)
    assert ids == ("alice", "bob", None, None)
    assert dist.dtype == np.float32 and second.dtype == np.float32
    # |e0 - e0| = 0, |e0 - e1| = sqrt 2; q3 to e0: sqrt(2 - 2 cos 45deg) = sqrt(2 - sqrt 2).
    np.testing.assert_allclose(dist, [0.0, 0.0, SQRT2, math.sqrt(2 - SQRT2)], atol=1e-6)
    np.testing.assert_allclose(second, [SQRT2, SQRT2, SQRT2, math.sqrt(2 - SQRT2)], atol=1e-6)


def test_scaled_vectors_exact_distance():
    e = _basis(4)
    gallery = np.stack([3 * e[0], 4 * e[1]])
    ids, dist, second = match_faces(np.zeros((1, 4), np.float32), gallery, ["a", "b"], match_threshold=10.0)
    assert ids == ("a",)
    np.testing.assert_allclose(dist, [3.0], atol=1e-6)
    np.testing.assert_allclose(second, [4.0], atol=1e-6)
    # (3, 4) is |4 e1| = 4 from 3 e0 ("a") and |3 e0| = 3 from 4 e1 ("b").
    ids, dist, second = match_faces((3 * e[0] + 4 * e[1])[None], gallery, ["a", "b"], match_threshold=10.0)
    assert ids == ("b",)
    np.testing.assert_allclose(dist, [3.0], atol=1e-5)
    np.testing.assert_allclose(second, [4.0], atol=1e-5)


def test_threshold_is_strict():
    e = _basis(4)
    ids, dist, _ = match_faces(e[1][None], e[0][None], ["a"], match_threshold=SQRT2)
    assert ids == (None,)  # distance == threshold is not a match
    np.testing.assert_allclose(dist, [SQRT2], atol=1e-6)
    ids, _, _ = match_faces(e[1][None], e[0][None], ["a"], match_threshold=SQRT2 + 1e-4)
    assert ids == ("a",)


def test_per_person_minimum_over_several_embeddings():
    e = _basis()
    gallery = np.stack([e[3], e[0], e[4], 0.5 * e[1]])
    labels = np.array(["bob", "alice", "bob", "bob"])
    ids, dist, second = match_faces(e[1][None], gallery, labels, match_threshold=1.0)
    assert ids == ("bob",)
    np.testing.assert_allclose(dist, [0.5], atol=1e-6)  # bob's closest row is 0.5 e1
    np.testing.assert_allclose(second, [SQRT2], atol=1e-6)  # alice, not bob's other rows


def test_margin_rule():
    e = _basis(4)
    a = e[0]
    b = 0.8 * e[0] + 0.6 * e[1]  # unit, |a - b| = sqrt((0.2)^2 + 0.6^2) = sqrt(0.4)
    gallery = np.stack([a, b]).astype(np.float32)
    query = a[None]
    ids, dist, second = match_faces(query, gallery, ["a", "b"], match_threshold=0.5, margin=0.0)
    assert ids == ("a",)
    np.testing.assert_allclose(second, [math.sqrt(0.4)], atol=1e-6)
    gap = math.sqrt(0.4)
    ids, _, _ = match_faces(query, gallery, ["a", "b"], match_threshold=0.5, margin=gap - 1e-4)
    assert ids == ("a",)
    ids, dist, second = match_faces(query, gallery, ["a", "b"], match_threshold=0.5, margin=gap + 1e-4)
    assert ids == (None,)  # too close to the runner-up: unknown, but distances still reported
    np.testing.assert_allclose(dist, [0.0], atol=1e-6)
    np.testing.assert_allclose(second, [gap], atol=1e-6)


def test_margin_counts_people_not_rows():
    e = _basis(4)
    gallery = np.stack([e[0], e[0], e[2]])  # two identical rows of one person must not kill the margin
    ids, _, second = match_faces(e[0][None], gallery, ["a", "a", "c"], match_threshold=0.5, margin=1.0)
    assert ids == ("a",)
    np.testing.assert_allclose(second, [SQRT2], atol=1e-6)


def test_single_person_second_distance_is_inf():
    e = _basis(4)
    ids, dist, second = match_faces(e[0][None], e[0][None], ["a"], match_threshold=0.5, margin=5.0)
    assert ids == ("a",)
    assert np.isinf(second[0])


def test_empty_gallery():
    q = _basis(4)[:3]
    ids, dist, second = match_faces(q, np.zeros((0, 4), np.float32), np.array([], dtype=str), 0.6, 0.1)
    assert ids == (None, None, None)
    assert dist.shape == (3,) and second.shape == (3,)
    assert np.isnan(dist).all() and np.isnan(second).all()


def test_no_query_faces():
    e = _basis(4)
    ids, dist, second = match_faces(np.zeros((0, 4), np.float32), e, list("abcd"), 0.6)
    assert ids == () and dist.shape == (0,) and second.shape == (0,)


def test_nan_query_is_unknown():
    e = _basis(4)
    q = np.stack([e[0], np.full(4, np.nan, np.float32)])
    ids, dist, _ = match_faces(q, e, list("abcd"), 0.6)
    assert ids == ("a", None)
    assert np.isnan(dist[1])


def test_dimension_mismatch_is_gallery_error():
    with pytest.raises(GalleryError, match="re-enrol"):
        match_faces(np.zeros((1, 128), np.float32), np.zeros((2, 512), np.float32), ["a", "b"], 0.6)


@pytest.mark.parametrize("kwargs", [{"match_threshold": 0.0}, {"match_threshold": float("nan")},
                                    {"match_threshold": -1.0}, {"match_threshold": 0.6, "margin": -0.1},
                                    {"match_threshold": "x"}])
def test_bad_thresholds(kwargs):
    e = _basis(4)
    with pytest.raises(ConfigError, match="match_threshold|margin"):
        match_faces(e, e, list("abcd"), **kwargs)


def test_against_brute_force_loop():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        n, m, d = rng.integers(1, 6), rng.integers(1, 12), 16
        gallery = rng.normal(size=(m, d)).astype(np.float32)
        gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
        labels = rng.choice(["ann", "ben", "cat", "dan"], size=m)
        query = gallery[rng.integers(0, m, size=n)] + 0.3 * rng.normal(size=(n, d)).astype(np.float32)
        thr, margin = 0.9, 0.05
        ids, dist, second = match_faces(query, gallery, labels, thr, margin)
        for i in range(n):
            per = {}
            for row, name in zip(gallery, labels):
                dd = float(np.sqrt(np.sum((query[i].astype(np.float64) - row) ** 2)))
                per[name] = min(per.get(name, np.inf), dd)
            ranked = sorted(per.items(), key=lambda kv: (kv[1], kv[0]))
            best_name, best = ranked[0]
            runner = ranked[1][1] if len(ranked) > 1 else np.inf
            assert dist[i] == pytest.approx(best, abs=1e-5)
            assert second[i] == pytest.approx(runner, abs=1e-5) or (np.isinf(runner) and np.isinf(second[i]))
            expected = best_name if (best < thr and runner - best >= margin) else None
            assert ids[i] == expected


def test_pairwise_distances_nonnegative_and_zero_on_self():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 32)).astype(np.float32)
    dd = pairwise_distances(x, x)
    assert (dd >= 0).all()
    np.testing.assert_allclose(np.diag(dd), 0.0, atol=1e-5)


def test_cohort_is_a_second_best_candidate_that_is_never_named():
    from realtime.face.matching import match_faces

    gallery = np.eye(3, dtype=np.float32)[:1]
    labels = np.array(["ann"])
    query = np.array([[0.8, 0.6, 0.0], [1.0, 0.0, 0.0]], np.float32)  # |q0 - ann| = 0.632, |q1 - ann| = 0
    cohort = np.array([[0.6, 0.8, 0.0]], np.float32)  # |q0 - c| = 0.283, |q1 - c| = 0.894
    names, best, second = match_faces(query, gallery, labels, 0.7, 0.05)
    assert names == ("ann", "ann") and np.isinf(second).all()  # one person enrolled: the margin cannot apply
    names, best, second = match_faces(query, gallery, labels, 0.7, 0.05, cohort=cohort)
    assert names == (None, "ann")  # q0 is nearer a stranger than ann
    np.testing.assert_allclose(best, [0.6325, 0.0], atol=1e-4)
    np.testing.assert_allclose(second, [0.2828, 0.8944], atol=1e-4)


def test_cohort_of_another_size_is_refused():
    from realtime.errors import GalleryError
    from realtime.face.matching import match_faces

    with pytest.raises(GalleryError, match="cohort"):
        match_faces(np.ones((1, 3), np.float32), np.ones((1, 3), np.float32), np.array(["a"]), 0.6,
                    cohort=np.ones((2, 4), np.float32))
