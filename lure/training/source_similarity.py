"""The stage-2 term that plays U2Fusion's role without VGG16: similarity of the fused image to
both sources, each weighted by how much information it carries.

U2Fusion (Xu et al., TPAMI 2020) measures each source's information as the mean squared gradient
of its VGG16 feature maps, turns the two measures into weights with a softmax, and asks the fused
image to be similar to each source in proportion. ImageNet VGG16 weights cannot be had offline,
so two feature spaces that need no download stand in for it (``stage2.perceptual``):

* ``latent`` — the frozen stage-1 encoder's own multi-scale latents: the fused image is encoded as
  each modality (pseudo-degradation text) and compared with that source's latents, weighted per
  sample by the sources' latent information (mean squared latent gradient);
* ``structure`` — image structure on the luminance: a per-pixel weight from each source's local
  gradient energy (Gaussian window), softmax over the two sources; loss = weighted ``1 - SSIM``
  map plus weighted L1 intensity, so the fused image follows, at every place, whichever source
  has more structure there (a hot person on a flat thermal background, visible texture elsewhere).

``vgg`` (:mod:`lure.training.perceptual`) stays available when its weight file exists.
Images are ``(B, C, H, W)`` in [0, 1]. The terms compute in float32, also under bf16 autocast
(:mod:`lure.training.precision`); the encoder passes of ``latent`` stay under autocast.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lure.color import luminance
from lure.training.losses import sobel_magnitude
from lure.training.precision import float32_loss

PERCEPTUAL_TERMS = ("vgg", "latent", "structure", "none")


@float32_loss
def feature_information(features: list[torch.Tensor]) -> torch.Tensor:
    """U2Fusion's information measure ``(B,)``: mean over layers of the mean squared spatial
    gradient of each feature map (``(B, C, H, W)`` each)."""
    scores = []
    for f in features:
        gx = f[..., :, 1:] - f[..., :, :-1]
        gy = f[..., 1:, :] - f[..., :-1, :]
        scores.append(gx.pow(2).mean(dim=(1, 2, 3)) + gy.pow(2).mean(dim=(1, 2, 3)))
    return torch.stack(scores).mean(0)


@float32_loss
def information_weights(info_vi: torch.Tensor, info_ir: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax weights ``(B, 2)`` (visible, infrared) of two information measures ``(B,)``,
    each measure normalised by their sum so the temperature is scale-free."""
    stacked = torch.stack([info_vi, info_ir], 1)
    stacked = stacked / stacked.sum(1, keepdim=True).clamp_min(1e-12)
    return torch.softmax(stacked / temperature, dim=1)


@float32_loss
def weighted_feature_distance(fused_vi: list[torch.Tensor], fused_ir: list[torch.Tensor],
                              feats_vi: list[torch.Tensor], feats_ir: list[torch.Tensor],
                              weights: torch.Tensor) -> torch.Tensor:
    """``mean_layers mean_B (w_vi |f(F) - f(vi)|^2 + w_ir |f(F) - f(ir)|^2)`` (feature-mean MSE)."""
    loss = weights.new_zeros(())
    for fv_f, fi_f, fv, fi in zip(fused_vi, fused_ir, feats_vi, feats_ir):
        d_vi = (fv_f - fv).pow(2).mean(dim=(1, 2, 3))
        d_ir = (fi_f - fi).pow(2).mean(dim=(1, 2, 3))
        loss = loss + (weights[:, 0] * d_vi + weights[:, 1] * d_ir).mean()
    return loss / len(feats_vi)


def latent_similarity_loss(encode: Callable[[torch.Tensor, int], list[torch.Tensor]], fused: torch.Tensor,
                           visible: torch.Tensor, infrared: torch.Tensor, temperature: float = 0.1,
                           source_latents: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None,
                           ) -> torch.Tensor:
    """U2Fusion's term in the frozen encoder's latent space. ``encode(image, modality)`` returns the
    multi-scale latents with the pseudo-degradation text; ``source_latents`` (visible, infrared)
    may be passed when they are already computed. The fused image is encoded once as each
    modality (its luminance, repeated, for the infrared encoder)."""
    if source_latents is None:
        with torch.no_grad():
            source_latents = (encode(visible, 0), encode(infrared, 1))
    z_vi, z_ir = [[z.detach() for z in zs] for zs in source_latents]
    with torch.no_grad():
        weights = information_weights(feature_information(z_vi), feature_information(z_ir), temperature)
    fused_as_vi = encode(fused, 0)
    fused_as_ir = encode(luminance(fused).expand(-1, 3, -1, -1), 1)
    return weighted_feature_distance(fused_as_vi, fused_as_ir, z_vi, z_ir, weights)


def _gaussian_kernel(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


@float32_loss
def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of a ``(B, 1, H, W)`` tensor (replicate padding, same size)."""
    g = _gaussian_kernel(sigma, image.device, image.dtype)
    r = g.numel() // 2
    out = F.conv2d(F.pad(image, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))


@float32_loss
def ssim_map(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM ``(B, 1, H, W)`` of two ``(B, 1, H, W)`` images in [0, 1] (Gaussian window,
    the usual constants ``(0.01)^2`` and ``(0.03)^2``)."""
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = gaussian_blur(a, sigma), gaussian_blur(b, sigma)
    var_a = gaussian_blur(a * a, sigma) - mu_a * mu_a
    var_b = gaussian_blur(b * b, sigma) - mu_b * mu_b
    cov = gaussian_blur(a * b, sigma) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))


@float32_loss
def structure_weights(y_vi: torch.Tensor, y_ir: torch.Tensor, sigma: float = 4.0,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per-pixel weights ``(B, 2, H, W)`` (visible, infrared): softmax over the two sources of
    their local gradient energy (Sobel magnitude squared, Gaussian window ``sigma`` px), each
    normalised by the pair's mean energy so the temperature is scale-free."""
    energy = torch.cat([gaussian_blur(sobel_magnitude(y).pow(2), sigma) for y in (y_vi, y_ir)], 1)
    energy = energy / energy.mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
    return torch.softmax(energy / temperature, dim=1)


@float32_loss
def structure_similarity_loss(fused: torch.Tensor, visible: torch.Tensor, infrared: torch.Tensor,
                              sigma: float = 4.0, temperature: float = 1.0,
                              intensity_fraction: float = 0.5) -> torch.Tensor:
    """Weighted ``(1 - SSIM) + intensity_fraction * |Y_F - Y_s|`` to each source ``s`` with
    :func:`structure_weights` (luminance of all three images)."""
    y_f, y_vi, y_ir = luminance(fused), luminance(visible), luminance(infrared)
    with torch.no_grad():
        w = structure_weights(y_vi, y_ir, sigma, temperature)
    loss = fused.new_zeros(())
    for i, y_s in enumerate((y_vi, y_ir)):
        term = (1 - ssim_map(y_f, y_s)) + intensity_fraction * (y_f - y_s).abs()
        loss = loss + (w[:, i : i + 1] * term).mean()
    return loss


@float32_loss
def max_intensity_loss(fused: torch.Tensor, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
    """L1 between the fused luminance and the element-wise maximum of the sources' luminance
    (SeAFusion / Text-IF's intensity term: keeps hot targets and lit regions bright)."""
    return F.l1_loss(luminance(fused), torch.maximum(luminance(visible), luminance(infrared)))
