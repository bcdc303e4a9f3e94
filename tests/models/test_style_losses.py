"""Golden values for the Gatys/Johnson losses, computed by hand in the comments."""

import pytest

torch = pytest.importorskip("torch")

from models.style_losses import (content_cost, gram_matrix, layer_style_cost, style_cost, total_cost,  # noqa: E402
                                 total_variation)


def t(values):
    return torch.tensor(values, dtype=torch.float64)


def test_content_cost_by_hand():
    # a(C) = [[1, 2], [3, 4]] (one channel), a(G) = 0: 1/2 (1 + 4 + 9 + 16) = 15
    a_c = t([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert content_cost(a_c, torch.zeros_like(a_c)).item() == pytest.approx(15.0)
    # a(G) = a(C) + 1 everywhere: 1/2 * 4 = 2
    assert content_cost(a_c, a_c + 1).item() == pytest.approx(2.0)


def test_content_cost_is_a_batch_mean_and_has_the_textbook_gradient():
    a_c = t([[[[1.0, 2.0], [3.0, 4.0]]]])
    batch = torch.cat([a_c, a_c])
    assert content_cost(batch, torch.zeros_like(batch)).item() == pytest.approx(15.0)
    a_g = torch.zeros_like(a_c, requires_grad=True)
    content_cost(a_c, a_g).backward()
    assert torch.allclose(a_g.grad, a_g.detach() - a_c)  # d/dG 1/2 ||C - G||^2 = G - C


def test_gram_matrix_by_hand():
    # channel 0 = [1, 2], channel 1 = [3, 4] (n_H = 2, n_W = 1):
    # G = [[1*1 + 2*2, 1*3 + 2*4], [.., 3*3 + 4*4]] = [[5, 11], [11, 25]]
    a = t([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    assert torch.equal(gram_matrix(a), t([[[5.0, 11.0], [11.0, 25.0]]]))


def test_layer_style_cost_by_hand():
    # G(S) = [[5, 11], [11, 25]], G(G) = 0: sum of squares = 25 + 121 + 121 + 625 = 892
    # normalisation 1 / (2 n_H n_W n_C)^2 = 1 / (2 * 2 * 1 * 2)^2 = 1 / 64  ->  892 / 64 = 13.9375
    a_s = t([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    assert layer_style_cost(a_s, torch.zeros_like(a_s)).item() == pytest.approx(13.9375)
    assert layer_style_cost(a_s, a_s).item() == 0.0


def test_style_cost_weights_layers():
    a_s = t([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    # second layer: one channel [[2]] (n_H = n_W = n_C = 1): G(S) = 4, G(G) = 0 -> 16 / (2)^2 = 4
    b_s = t([[[[2.0]]]])
    total = style_cost([a_s, b_s], [torch.zeros_like(a_s), torch.zeros_like(b_s)], [0.5, 2.0])
    assert total.item() == pytest.approx(0.5 * 13.9375 + 2.0 * 4.0)


def test_style_image_of_another_size_uses_the_pixel_ratio():
    # the same texture on twice the pixels has twice the Gram entries; after rescaling the cost is 0
    a = t([[[[1.0], [2.0]], [[3.0], [4.0]]]])
    doubled = torch.cat([a, a], dim=3)
    assert layer_style_cost(doubled, a).item() == pytest.approx(0.0)


def test_total_variation_by_hand():
    # [[0, 1], [3, 5]]: vertical (3-0)^2 + (5-1)^2 = 25, horizontal (1-0)^2 + (5-3)^2 = 5 -> 30
    image = t([[[[0.0, 1.0], [3.0, 5.0]]]])
    assert total_variation(image).item() == pytest.approx(30.0)
    assert total_variation(torch.ones(2, 3, 4, 4)).item() == 0.0


def test_total_cost_combines_terms():
    assert total_cost(t(2.0), t(3.0), alpha=10, beta=0.5, tv=t(4.0), gamma=0.25).item() == pytest.approx(22.5)


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gram_matrix(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="differ in shape"):
        content_cost(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="channels"):
        layer_style_cost(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="one weight per layer"):
        style_cost([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 2)], [])
