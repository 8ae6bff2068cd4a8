"""Every training loss computes in float32 under bf16 autocast (emulated with CPU autocast): on
bright smooth images, where bf16 second moments break SSIM, the losses equal their float32 values."""

from __future__ import annotations

import math

import pytest
import torch

from lure.models.global_correction import STATS_PER_CHANNEL, GlobalAffineCorrection
from lure.training import losses, source_similarity
from lure.training.perceptual import VGG16Features, perceptual_loss


def bright_images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fused, visible and infrared ``(2, 3, 48, 48)`` images: a 0.55 -> 0.95 ramp with faint texture,
    the case where bf16 local means of ``x * x`` are off by more than the local variance."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0.55, 0.95, 48).view(1, 1, 1, 48).expand(2, 3, 48, 48)
    texture = lambda: 0.01 * torch.rand(2, 3, 48, 48, generator=g)  # noqa: E731
    visible = (ramp + texture()).clamp(0, 1)
    infrared = (ramp.flip(-1) + texture()).mean(1, keepdim=True).expand(-1, 3, -1, -1).clamp(0, 1)
    fused = (0.6 * visible + 0.4 * infrared + texture()).clamp(0, 1)
    return fused, visible, infrared


def latents(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [1.0 + 0.05 * torch.randn(2, c, s, s, generator=g) for c, s in ((4, 24), (8, 12))]


def cases() -> dict:
    fused, vi, ir = bright_images()
    z, z_pd = latents(1), latents(2)
    y = fused.mean(1, keepdim=True)
    return {
        "sobel_magnitude": lambda: losses.sobel_magnitude(fused),
        "task_loss": lambda: losses.task_loss(fused, vi, 0.1),
        "unified_loss cosine": lambda: losses.unified_loss(z, z_pd, "cosine"),
        "unified_loss pearson": lambda: losses.unified_loss(z, z_pd, "pearson"),
        "unified_loss cosine_l1": lambda: losses.unified_loss(z, z_pd, "cosine_l1"),
        "color_loss": lambda: losses.color_loss(fused, vi),
        "gradient_loss": lambda: losses.gradient_loss(fused, vi, ir),
        "l1_distance": lambda: losses.l1_distance(fused, vi),
        "ssim_map": lambda: source_similarity.ssim_map(y, vi.mean(1, keepdim=True)),
        "structure_similarity_loss": lambda: source_similarity.structure_similarity_loss(fused, vi, ir),
        "max_intensity_loss": lambda: source_similarity.max_intensity_loss(fused, vi, ir),
        "weighted_feature_distance": lambda: source_similarity.weighted_feature_distance(
            z, z, z_pd, latents(3), source_similarity.information_weights(
                source_similarity.feature_information(z_pd), source_similarity.feature_information(latents(3)), 0.1)),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_loss_under_bf16_autocast_equals_float32(name):
    fn = cases()[name]
    expected = fn()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fn()
    assert got.dtype == torch.float32, name
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=name)


def test_ssim_map_stays_in_range_under_autocast():
    fused, vi, _ = bright_images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ssim = source_similarity.ssim_map(fused[:, :1], vi[:, :1])
    assert float(ssim.min()) >= -1.0 and float(ssim.max()) <= 1.0 + 1e-6


def test_vgg_term_distances_in_float32_under_autocast():
    """The VGG passes follow autocast (bf16 features); the weights and distances do not."""
    torch.manual_seed(0)
    vgg = VGG16Features()
    for layer in vgg.features:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.normal_(layer.weight, std=0.05)
    fused, vi, ir = (x[:, :, :32, :32] for x in bright_images())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = perceptual_loss(vgg, fused, vi, ir)
    assert loss.dtype == torch.float32 and math.isfinite(float(loss))


def test_global_correction_under_autocast_equals_float32():
    torch.manual_seed(0)
    correction = GlobalAffineCorrection(channels=3, text_dim=16, with_log_spread=True)
    torch.nn.init.normal_(correction.mlp[-1].weight, std=0.3)  # not the identity
    _, image, _ = bright_images()
    stats = torch.rand(2, 3, STATS_PER_CHANNEL) * 0.4 + 0.55
    text = torch.randn(2, 16)
    expected = correction(image, stats, text)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = correction(image, stats, text)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
