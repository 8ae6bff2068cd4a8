"""Stage-1/stage-2 objectives (DESIGN.md §3) on small hand-checkable tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lure.color import rgb_to_ycbcr, ycbcr_to_rgb
from lure.training.losses import (
    color_loss,
    gradient_loss,
    latent_similarity,
    sobel_magnitude,
    task_loss,
    unified_loss,
)
from lure.training.perceptual import VGG16Features, load_vgg16_features, perceptual_loss


def test_sobel_magnitude_of_a_vertical_step_edge():
    image = torch.zeros(1, 1, 5, 6)
    image[..., 3:] = 1.0
    mag = sobel_magnitude(image)
    # columns 2 and 3 straddle the edge: |gx| = 1 + 2 + 1 = 4, gy = 0
    torch.testing.assert_close(mag[0, 0, 2, 2:4], torch.tensor([4.0, 4.0]))
    assert mag[0, 0, :, :2].max() < 1e-5 and mag[0, 0, :, 4:].max() < 1e-5
    assert sobel_magnitude(torch.full((1, 3, 4, 4), 0.7)).max() < 1e-5


def test_task_loss_is_l1_plus_weighted_gradient_term():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    assert task_loss(a, b, 0.0) == pytest.approx(float(F.l1_loss(a, b)))
    expected = F.l1_loss(a, b) + 0.5 * F.l1_loss(sobel_magnitude(a), sobel_magnitude(b))
    assert task_loss(a, b, 0.5) == pytest.approx(float(expected))
    assert float(task_loss(a, a, 0.5)) == 0.0


def test_unified_loss_cosine_and_pearson():
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g)]
    assert float(unified_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(unified_loss(z, [-t for t in z])) == pytest.approx(2.0, abs=1e-6)
    shifted = [t + 3.0 for t in z]
    # Pearson ignores a constant offset, cosine does not
    assert float(unified_loss(z, shifted, "pearson")) == pytest.approx(0.0, abs=1e-5)
    assert float(unified_loss(z, shifted, "cosine")) > 0.3
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert float(latent_similarity([a], [b])) == pytest.approx(2 ** -0.5)
    with pytest.raises(ValueError, match="cosine' or 'pearson"):
        unified_loss(z, z, "l2")


def test_ycbcr_round_trip_and_colour_loss_ignores_luminance_shift():
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(1, 3, 6, 6, generator=g) * 0.8
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=2e-3, rtol=0)
    assert float(color_loss(rgb + 0.1, rgb)) == pytest.approx(0.0, abs=1e-6)
    assert float(color_loss(rgb[:, [2, 1, 0]], rgb)) > 0.01


def test_gradient_loss_targets_the_stronger_source_gradient():
    flat = torch.full((1, 3, 8, 8), 0.5)
    edges = torch.zeros(1, 1, 8, 8)
    edges[..., 4:] = 1.0
    fused_like_ir = edges.expand(-1, 3, -1, -1)
    assert float(gradient_loss(fused_like_ir, flat, edges)) == pytest.approx(0.0, abs=1e-5)
    assert float(gradient_loss(flat, flat, edges)) > 0.1


def test_perceptual_loss_needs_the_vgg_file_and_works_with_one(tmp_path):
    missing = tmp_path / "vgg16-397923af.pth"
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth is missing"):
        load_vgg16_features(missing)
    torch.manual_seed(0)
    reference = VGG16Features()
    torch.save({k: v for k, v in reference.state_dict().items()}, missing)  # torchvision key layout
    vgg = load_vgg16_features(missing)
    for a, b in zip(vgg.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    vi, ir = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    assert float(perceptual_loss(vgg, vi, vi, vi)) == pytest.approx(0.0, abs=1e-7)
    assert float(perceptual_loss(vgg, vi, vi, ir)) > 0.0
