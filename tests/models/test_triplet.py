"""Triplet loss and in-batch mining against plain Python loops over every triplet."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.triplet import (batch_triplet_loss, mine_batch_hard, mine_semi_hard, squared_distances,  # noqa: E402
                            triplet_loss)


def _reference_hard(emb: np.ndarray, labels: np.ndarray, alpha: float) -> list[tuple[int, int, int, float]]:
    out = []
    n = len(labels)
    for a in range(n):
        pos = [i for i in range(n) if i != a and labels[i] == labels[a]]
        neg = [i for i in range(n) if labels[i] != labels[a]]
        if not pos or not neg:
            continue
        d = {i: float(((emb[a] - emb[i]) ** 2).sum()) for i in range(n)}
        p = max(pos, key=lambda i: (d[i], -i))
        q = min(neg, key=lambda i: (d[i], i))
        out.append((a, p, q, max(d[p] - d[q] + alpha, 0.0)))
    return out


def _reference_semi_hard(emb: np.ndarray, labels: np.ndarray, alpha: float) -> list[tuple[int, int, int, float]]:
    out = []
    n = len(labels)
    for a, p in itertools.product(range(n), range(n)):
        if a == p or labels[a] != labels[p]:
            continue
        neg = [i for i in range(n) if labels[i] != labels[a]]
        if not neg:
            continue
        d = {i: float(((emb[a] - emb[i]) ** 2).sum()) for i in range(n)}
        farther = [i for i in neg if d[i] > d[p]]
        q = min(farther, key=lambda i: (d[i], i)) if farther else max(neg, key=lambda i: (d[i], -i))
        out.append((a, p, q, max(d[p] - d[q] + alpha, 0.0)))
    return out


def test_triplet_loss_golden():
    a = torch.tensor([[0.0, 0.0]])
    p = torch.tensor([[0.3, 0.4]])  # d_ap^2 = 0.25
    n = torch.tensor([[0.6, 0.0]])  # d_an^2 = 0.36
    assert triplet_loss(a, p, n, 0.2).item() == pytest.approx(0.25 - 0.36 + 0.2)
    assert triplet_loss(a, p, n, 0.1).item() == 0.0
    assert triplet_loss(a, n, p, 0.0).item() == pytest.approx(0.11)


def test_squared_distances_exact_and_zero_diagonal():
    e = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    d = squared_distances(e)
    assert torch.equal(torch.diag(d), torch.zeros(3))
    assert d[0, 1].item() == 25.0 and d[1, 2].item() == 13.0 and torch.equal(d, d.T)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("mining", ["hard", "semihard"])
def test_mining_matches_reference_loops(seed, mining):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 14))
    labels = rng.integers(0, int(rng.integers(2, 5)), n)
    # A coarse grid makes exact ties in distance common, so tie-breaking is tested too.
    emb = rng.integers(-2, 3, (n, 3)).astype(np.float32) * 0.25
    alpha = float(rng.choice([0.0, 0.2, 0.5]))
    expected = (_reference_hard if mining == "hard" else _reference_semi_hard)(emb, labels, alpha)
    result = batch_triplet_loss(torch.from_numpy(emb), torch.from_numpy(labels), alpha, mining)
    got = list(zip(result.anchor.tolist(), result.positive.tolist(), result.negative.tolist()))
    assert got == [t[:3] for t in expected]
    np.testing.assert_allclose(result.losses.numpy(), [t[3] for t in expected], atol=1e-6)
    mean = np.mean([t[3] for t in expected]) if expected else 0.0
    assert result.loss.item() == pytest.approx(mean, abs=1e-6)


def test_semi_hard_picks_a_semi_hard_negative_when_there_is_one():
    # anchor 0, positive 1 at d^2 = 1; negatives at d^2 = 0.25 (hard), 1.21 (semi-hard), 4 (easy)
    emb = torch.tensor([[0.0], [1.0], [0.5], [1.1], [2.0]])
    labels = torch.tensor([0, 0, 1, 2, 3])
    a, p, n = mine_semi_hard(squared_distances(emb), labels)
    pairs = {(int(x), int(y)): int(z) for x, y, z in zip(a, p, n)}
    assert pairs[(0, 1)] == 3
    a, p, n = mine_batch_hard(squared_distances(emb), labels)
    assert dict(zip(a.tolist(), n.tolist()))[0] == 2


def test_no_triplet_gives_zero_loss_connected_to_the_graph():
    emb = torch.randn(3, 4, requires_grad=True)
    for labels in (torch.tensor([0, 1, 2]), torch.tensor([0, 0, 0])):
        for mining in ("hard", "semihard"):
            result = batch_triplet_loss(emb, labels, 0.2, mining)
            assert len(result.losses) == 0 and result.loss.item() == 0.0 and np.isnan(result.active)
            result.loss.backward()


def test_gradient_pulls_positive_in_and_pushes_negative_out():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.5], [1.0, 0.6]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    result = batch_triplet_loss(emb, labels, 0.2, "hard")
    assert result.loss.item() > 0
    result.loss.backward()
    stepped = emb.detach() - 0.05 * emb.grad
    assert batch_triplet_loss(stepped, labels, 0.2, "hard").loss.item() < result.loss.item()


def test_bad_arguments():
    with pytest.raises(ValueError, match="mining"):
        batch_triplet_loss(torch.zeros(2, 2), torch.tensor([0, 1]), 0.2, "easy")
    with pytest.raises(ValueError, match="labels"):
        batch_triplet_loss(torch.zeros(2, 2), torch.tensor([0, 1, 1]), 0.2, "hard")
