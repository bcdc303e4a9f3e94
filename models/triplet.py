"""Triplet loss with in-batch mining (pure torch functions).

The loss of one triplet (anchor A, positive P of the same person, negative N of another person) is FaceNet's

    L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)

on squared Euclidean distances of the embeddings as the network outputs them (the dlib descriptors are compared
with plain Euclidean distance and are not normalised, so neither are they here). Mining picks the triplets inside a
batch of P persons x K images:

* ``hard`` (batch-hard): one triplet per anchor, with its farthest positive and its nearest negative;
* ``semihard``: one triplet per (anchor, positive) pair, with the nearest negative that is still farther from the
  anchor than the positive (``d_an > d_ap``; among those the hardest, so a semi-hard one, ``d_an < d_ap + alpha``,
  whenever one exists). When no negative is farther than the positive, the farthest negative is used (the least
  hard of the hard ones, which avoids the collapse that the hardest negatives cause early in training).

Anchors without a positive or without a negative in the batch give no triplet. Mining is done on detached
distances; the loss is then taken on the differentiable distances of the chosen triplets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MINING = ("hard", "semihard")
DEFAULT_ALPHA = 0.2


@dataclass(frozen=True)
class TripletBatch:
    """The mined triplets of a batch and their loss.

    ``anchor``, ``positive``, ``negative``: int64 (T,) indices into the batch; ``losses``: float (T,) per-triplet
    loss; ``loss``: scalar mean of ``losses`` (0 with no triplet, still connected to the graph);
    ``active``: fraction of triplets with a positive loss (nan with no triplet).
    """

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor
    losses: torch.Tensor
    loss: torch.Tensor
    active: float


def squared_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """``embeddings``: float (N, D) -> float (N, N) squared Euclidean distances (exactly 0 on the diagonal).

    Computed from differences, not the ``|a|^2 + |b|^2 - 2ab`` expansion, so small distances keep their precision
    and the gradient is finite everywhere.
    """
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must have shape (N, D), got {tuple(embeddings.shape)}")
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    return (diff * diff).sum(dim=-1)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """Per-triplet loss of embeddings ``anchor``, ``positive``, ``negative``: float (T, D) each -> float (T,)."""
    d_ap = ((anchor - positive) ** 2).sum(dim=-1)
    d_an = ((anchor - negative) ** 2).sum(dim=-1)
    return torch.clamp(d_ap - d_an + alpha, min=0.0)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,), got {tuple(labels.shape)}")
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def mine_batch_hard(distances: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Batch-hard triplets from ``distances``: float (N, N) squared distances and ``labels``: int (N,).

    Returns int64 (T,) ``(anchor, positive, negative)``: for every anchor that has a positive and a negative in
    the batch, its farthest positive and nearest negative (the first index on ties).
    """
    pos_mask, neg_mask = _masks(labels)
    d = distances.detach()
    valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)
    anchors = torch.nonzero(valid).flatten()
    far_pos = torch.where(pos_mask, d, torch.full_like(d, -torch.inf)).argmax(dim=1)
    near_neg = torch.where(neg_mask, d, torch.full_like(d, torch.inf)).argmin(dim=1)
    return anchors, far_pos[anchors], near_neg[anchors]


def mine_semi_hard(distances: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Semi-hard triplets: one per (anchor, positive) pair, see the module docstring for the choice of negative.

    ``distances``: float (N, N) squared distances; ``labels``: int (N,). Returns int64 (T,) ``(anchor, positive,
    negative)``, pairs in row-major order of (anchor, positive); on ties the first index.
    """
    pos_mask, neg_mask = _masks(labels)
    d = distances.detach()
    has_neg = neg_mask.any(dim=1)
    anchors, positives = torch.nonzero(pos_mask & has_neg[:, None], as_tuple=True)
    d_ap = d[anchors, positives][:, None]  # (T, 1)
    d_an = d[anchors]  # (T, N)
    negs = neg_mask[anchors]
    farther = negs & (d_an > d_ap)
    nearest_farther = torch.where(farther, d_an, torch.full_like(d_an, torch.inf)).argmin(dim=1)
    farthest = torch.where(negs, d_an, torch.full_like(d_an, -torch.inf)).argmax(dim=1)
    negatives = torch.where(farther.any(dim=1), nearest_farther, farthest)
    return anchors, positives, negatives


def batch_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, alpha: float = DEFAULT_ALPHA,
                       mining: str = "semihard") -> TripletBatch:
    """Mine triplets in a batch and return their loss.

    ``embeddings``: float (N, D) network outputs; ``labels``: int (N,) person ids; ``alpha``: the margin on squared
    distances; ``mining``: ``"hard"`` or ``"semihard"``.
    """
    if mining not in MINING:
        raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
    if len(embeddings) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    distances = squared_distances(embeddings)
    mine = mine_batch_hard if mining == "hard" else mine_semi_hard
    a, p, n = mine(distances, labels)
    losses = torch.clamp(distances[a, p] - distances[a, n] + alpha, min=0.0)
    loss = losses.mean() if len(losses) else embeddings.sum() * 0.0
    active = float((losses > 0).float().mean()) if len(losses) else float("nan")
    return TripletBatch(a, p, n, losses, loss, active)
