"""The losses of Gatys et al. as used by Johnson et al. for feed-forward style transfer, in plain PyTorch.

Activations ``a`` are float tensors (N, n_C, n_H, n_W) (PyTorch's NCHW; the formulas below index them as
``a_ijk`` with i, j the spatial position and k the channel).

* content cost      J_content(C, G) = 1/2 * sum (a(C) - a(G))^2                      (per image, summed over all)
* Gram matrix       G_kk' = sum_i sum_j a_ijk a_ijk'                                    (n_C, n_C) per image
* style cost, layer J_style^[l](S, G) = 1 / (2 n_H n_W n_C)^2 * sum_kk' (G(S)_kk' - G(G)_kk')^2
* style cost        J_style(S, G) = sum_l lambda^[l] J_style^[l](S, G)
* total variation   TV(G) = sum (G[:, :, i+1, j] - G[:, :, i, j])^2 + (G[:, :, i, j+1] - G[:, :, i, j])^2
* total             J(G) = alpha J_content + beta J_style + gamma TV

Every function returns the mean over the batch of the per-image cost, so the figures do not depend on the batch
size. Golden values computed by hand are in ``tests/models/test_style_losses.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch


def _check_nchw(a: torch.Tensor, name: str) -> None:
    if a.ndim != 4:
        raise ValueError(f"{name} must be activations (N, C, H, W), got shape {tuple(a.shape)}")


def content_cost(a_content: torch.Tensor, a_generated: torch.Tensor) -> torch.Tensor:
    """J_content = 1/2 * ||a(C) - a(G)||^2 per image, averaged over the batch. Inputs (N, C, H, W), same shape."""
    _check_nchw(a_content, "a_content")
    if a_content.shape != a_generated.shape:
        raise ValueError(f"content activations differ in shape: {tuple(a_content.shape)} vs "
                         f"{tuple(a_generated.shape)}")
    diff = (a_content - a_generated).flatten(1)
    return 0.5 * (diff * diff).sum(dim=1).mean()


def gram_matrix(a: torch.Tensor) -> torch.Tensor:
    """G_kk' = sum_i sum_j a_ijk a_ijk' (unnormalised). ``a``: (N, n_C, n_H, n_W) -> (N, n_C, n_C)."""
    _check_nchw(a, "a")
    flat = a.flatten(2)  # (N, n_C, n_H * n_W)
    return flat @ flat.transpose(1, 2)


def layer_style_cost(a_style: torch.Tensor, a_generated: torch.Tensor) -> torch.Tensor:
    """J_style^[l] = 1/(2 n_H n_W n_C)^2 * sum_kk' (G(S) - G(G))^2, averaged over the batch.

    ``a_style`` may have batch 1 (one style image for the whole batch) or the same batch as ``a_generated``; the
    spatial sizes may differ (the Gram matrix is (n_C, n_C) either way), and n_H, n_W are those of the generated
    image. The style image's Gram matrix is scaled by the ratio of pixel counts so both are on the same footing.
    """
    _check_nchw(a_style, "a_style")
    _check_nchw(a_generated, "a_generated")
    n, n_c, n_h, n_w = a_generated.shape
    if a_style.shape[1] != n_c:
        raise ValueError(f"style activations have {a_style.shape[1]} channels, generated {n_c}")
    if a_style.shape[0] not in (1, n):
        raise ValueError(f"style batch {a_style.shape[0]} must be 1 or the generated batch {n}")
    g_style = gram_matrix(a_style) * (float(n_h * n_w) / float(a_style.shape[2] * a_style.shape[3]))
    g_gen = gram_matrix(a_generated)
    diff = g_style - g_gen
    return (diff * diff).sum(dim=(1, 2)).mean() / float(2 * n_h * n_w * n_c) ** 2


def style_cost(a_style: Sequence[torch.Tensor], a_generated: Sequence[torch.Tensor],
               weights: Sequence[float]) -> torch.Tensor:
    """J_style = sum_l lambda^[l] J_style^[l]; one activation pair and one weight per layer."""
    if not (len(a_style) == len(a_generated) == len(weights)) or not weights:
        raise ValueError(f"style_cost needs one weight per layer: {len(a_style)} style, {len(a_generated)} "
                         f"generated activations, {len(weights)} weights")
    total = a_generated[0].new_zeros(())
    for s, g, w in zip(a_style, a_generated, weights):
        total = total + float(w) * layer_style_cost(s, g)
    return total


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between vertical and horizontal neighbours per image, averaged over the batch."""
    _check_nchw(image, "image")
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    return (dy * dy).sum(dim=(1, 2, 3)).mean() + (dx * dx).sum(dim=(1, 2, 3)).mean()


def total_cost(j_content: torch.Tensor, j_style: torch.Tensor, alpha: float, beta: float,
               tv: torch.Tensor | None = None, gamma: float = 0.0) -> torch.Tensor:
    """J(G) = alpha J_content + beta J_style (+ gamma TV)."""
    total = alpha * j_content + beta * j_style
    if tv is not None:
        total = total + gamma * tv
    return total
