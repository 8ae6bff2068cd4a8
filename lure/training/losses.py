"""Training objectives of LURE (docs/paper-map.md#training). Images are ``(B, C, H, W)`` in [0, 1].

Every loss here computes in float32, also under bf16 autocast (:mod:`lure.training.precision`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lure.color import luminance, rgb_to_ycbcr
from lure.training.precision import float32_loss

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_KERNELS: dict[tuple[torch.device, torch.dtype, int], torch.Tensor] = {}


def _sobel_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    """``(2C, 1, 3, 3)`` Sobel x/y kernels on ``like``'s device and dtype, copied there once (a
    copy per call would be a host-to-device transfer in every training step)."""
    key = (like.device, like.dtype, channels)
    if key not in _SOBEL_KERNELS:
        kx = _SOBEL_X.to(like)
        _SOBEL_KERNELS[key] = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(channels, 1, 1, 1)
    return _SOBEL_KERNELS[key]


@float32_loss
def sobel_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude ``sqrt(gx^2 + gy^2)`` (replicate padding, same size),
    in float32 (also under autocast)."""
    c = image.shape[1]
    kernel = _sobel_kernel(c, image)  # (2C, 1, 3, 3)
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    grad = F.conv2d(padded, kernel, groups=c)  # (B, 2C, H, W): gx, gy per channel
    gx, gy = grad[:, 0::2], grad[:, 1::2]
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


@float32_loss
def task_loss(restored: torch.Tensor, target: torch.Tensor, gradient_weight: float) -> torch.Tensor:
    """``L_task = |y_hat - y|_1 + a_task * | |grad y_hat| - |grad y| |_1`` (means)."""
    loss = F.l1_loss(restored, target)
    if gradient_weight:
        loss = loss + gradient_weight * F.l1_loss(sobel_magnitude(restored), sobel_magnitude(target))
    return loss


def _flatten(latents: list[torch.Tensor]) -> list[torch.Tensor]:
    return [z.flatten(1) for z in latents]


@float32_loss
def latent_similarity(latents_a: list[torch.Tensor], latents_b: list[torch.Tensor],
                      measure: str = "cosine") -> torch.Tensor:
    """Mean over scales and samples of the similarity of two multi-scale latents.

    ``cosine``: cosine similarity of the flattened latents; ``pearson``: Pearson correlation
    coefficient (cosine of the mean-centred latents), the paper's "Using CC" ablation."""
    sims = []
    for a, b in zip(_flatten(latents_a), _flatten(latents_b)):
        if measure == "pearson":
            a = a - a.mean(1, keepdim=True)
            b = b - b.mean(1, keepdim=True)
        elif measure != "cosine":
            raise ValueError(f"unified loss measure must be 'cosine' or 'pearson', got {measure!r}")
        sims.append(F.cosine_similarity(a, b, dim=1, eps=1e-8))
    return torch.stack(sims).mean()


UNIFIED_MEASURES = ("cosine", "pearson", "cosine_l1")


@float32_loss
def relative_latent_l1(latents: list[torch.Tensor], latents_pd: list[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of ``mean|Z - Z_pd| / mean|Z_pd|`` with ``Z_pd`` a fixed target (detached):
    a scale-aware distance that pulls the degraded image's latents onto the clean image's."""
    terms = [(z - t.detach()).abs().mean() / t.detach().abs().mean().clamp_min(1e-6)
             for z, t in zip(latents, latents_pd)]
    return torch.stack(terms).mean()


@float32_loss
def unified_loss(latents: list[torch.Tensor], latents_pd: list[torch.Tensor], measure: str = "cosine") -> torch.Tensor:
    """``L_unified = 1 - Gamma(Z, Z_pd)`` over the multi-scale latents.

    ``cosine`` (the paper), ``pearson`` (its "Using CC" ablation) or ``cosine_l1`` (ours): the
    cosine term plus :func:`relative_latent_l1`. Cosine similarity ignores the latents' scale and
    starts near 1 (latents share a large common component), so alone it unifies weakly; the
    relative L1 also matches magnitudes, which the fusion rule (an activity-level weighting) sees."""
    if measure == "cosine_l1":
        return (1.0 - latent_similarity(latents, latents_pd, "cosine")) + relative_latent_l1(latents, latents_pd)
    return 1.0 - latent_similarity(latents, latents_pd, measure)


@float32_loss
def color_loss(fused: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """L1 between fused and visible on Cb and Cr (both RGB)."""
    return F.l1_loss(rgb_to_ycbcr(fused)[:, 1:], rgb_to_ycbcr(visible)[:, 1:])


@float32_loss
def gradient_loss(fused: torch.Tensor, visible: torch.Tensor, infrared: torch.Tensor,
                  gain: float = 1.0) -> torch.Tensor:
    """L1 between the Sobel magnitude of the fused luminance and ``gain`` times the element-wise
    maximum of the two sources' (Text-IF at ``gain`` 1; above 1 asks for more detail than either
    source has, the crisp end of the detail control)."""
    target = torch.maximum(sobel_magnitude(luminance(visible)), sobel_magnitude(luminance(infrared)))
    if gain != 1.0:
        target = target * gain
    return F.l1_loss(sobel_magnitude(luminance(fused)), target)


@float32_loss
def range_loss(fused: torch.Tensor, visible: torch.Tensor, infrared: torch.Tensor, band: float = 0.04) -> torch.Tensor:
    """No new clipping: the mean hinge of the fused luminance entering the top or bottom ``band`` of
    [0, 1] (or leaving it) where neither source is there,
    ``relu(Y_f - max(1 - band, Y_vi, Y_ir)) + relu(min(band, Y_vi, Y_ir) - Y_f)``.

    Zero for any output that stays inside the sources' range or the open band; it stops a detail
    gain from being met by stretching contrast into clipped whites and crushed blacks."""
    y_f, y_vi, y_ir = luminance(fused), luminance(visible), luminance(infrared)
    top = torch.maximum(torch.maximum(y_vi, y_ir), torch.full_like(y_f, 1.0 - band))
    bottom = torch.minimum(torch.minimum(y_vi, y_ir), torch.full_like(y_f, band))
    return (F.relu(y_f - top) + F.relu(bottom - y_f)).mean()


@float32_loss
def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of two tensors, in float32."""
    return F.l1_loss(a, b)
