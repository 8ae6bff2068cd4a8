"""Per-scale fusion of the visible and infrared latents.

``Z_fused^i = zero_conv(F^i(Z_vi^i, Z_ir^i)) + rule(Z_vi^i, Z_ir^i)`` (paper Eq. 6): ``rule`` is
a fixed prior (DenseFuse's l1-norm activity rule by default), ``F^i`` learned cross-attention
between the two modalities and ``zero_conv`` a 1x1 conv initialised to zero, so a fresh
fusion module outputs exactly the rule (ControlNet-style).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lure.models.config import LUREConfig
from lure.models.nafblock import LayerNorm2d
from lure.models.text_guided_attention import ChannelCrossAttention, GatedDconvFeedForward


def l1_activity(z: torch.Tensor, window: int) -> torch.Tensor:
    """DenseFuse activity map: channel l1-norm, averaged over a ``window x window`` box.

    ``(B, C, H, W) -> (B, 1, H, W)``."""
    activity = z.abs().sum(dim=1, keepdim=True)
    return F.avg_pool2d(activity, window, stride=1, padding=window // 2, count_include_pad=False)


def prior_fusion_rule(z_vi: torch.Tensor, z_ir: torch.Tensor, rule: str, window: int = 3) -> torch.Tensor:
    """Fixed fusion prior on two latents of equal shape.

    * ``l1``: DenseFuse (Li & Wu 2018): per-pixel weights ``a_k / (a_vi + a_ir)`` from the
      windowed l1 activity ``a_k``;
    * ``l1_softmax``: the same activities normalised with a softmax;
    * ``add`` / ``avg``: sum / mean; ``none``: zeros (ablation "w/o rule").
    """
    if rule == "add":
        return z_vi + z_ir
    if rule == "avg":
        return 0.5 * (z_vi + z_ir)
    if rule == "none":
        return torch.zeros_like(z_vi)
    a_vi, a_ir = l1_activity(z_vi, window), l1_activity(z_ir, window)
    if rule == "l1":
        w_vi = a_vi / (a_vi + a_ir).clamp_min(1e-8)
    elif rule == "l1_softmax":
        w_vi = torch.softmax(torch.cat([a_vi, a_ir], dim=1), dim=1)[:, :1]
    else:
        raise ValueError(f"unknown fusion rule {rule!r}")
    return w_vi * z_vi + (1 - w_vi) * z_ir


class CrossAttentionFusionBlock(nn.Module):
    """Each modality attends to the other (pre-norm), then a GDFN per modality."""

    def __init__(self, channels: int, heads: int, ffn_expansion: float = 2.66) -> None:
        super().__init__()
        self.norm_vi, self.norm_ir = LayerNorm2d(channels), LayerNorm2d(channels)
        self.vi_from_ir = ChannelCrossAttention(channels, heads)
        self.ir_from_vi = ChannelCrossAttention(channels, heads)
        self.ffn_norm_vi, self.ffn_norm_ir = LayerNorm2d(channels), LayerNorm2d(channels)
        self.ffn_vi = GatedDconvFeedForward(channels, ffn_expansion)
        self.ffn_ir = GatedDconvFeedForward(channels, ffn_expansion)

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_vi, n_ir = self.norm_vi(vi), self.norm_ir(ir)
        vi, ir = vi + self.vi_from_ir(n_vi, n_ir), ir + self.ir_from_vi(n_ir, n_vi)
        return vi + self.ffn_vi(self.ffn_norm_vi(vi)), ir + self.ffn_ir(self.ffn_norm_ir(ir))


class ScaleFusion(nn.Module):
    """Fusion at one scale: ``zero_conv(merge(blocks(z_vi, z_ir))) + rule(z_vi, z_ir)``."""

    def __init__(self, channels: int, blocks: int, heads: int, rule: str, window: int,
                 ffn_expansion: float = 2.66) -> None:
        super().__init__()
        self.rule, self.window = rule, window
        self.blocks = nn.ModuleList(CrossAttentionFusionBlock(channels, heads, ffn_expansion) for _ in range(blocks))
        self.merge = nn.Conv2d(2 * channels, channels, 1)
        self.zero_conv = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.zero_conv.weight)
        nn.init.zeros_(self.zero_conv.bias)

    def forward(self, z_vi: torch.Tensor, z_ir: torch.Tensor,
                modulation: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """``modulation``: ``(gamma, beta)`` ``(B, C, 1, 1)`` of the detail conditioning, applied to
        the merged features as ``h * (1 + gamma) + beta`` (``None``: unmodulated)."""
        vi, ir = z_vi, z_ir
        for block in self.blocks:
            vi, ir = block(vi, ir)
        merged = self.merge(torch.cat([vi, ir], dim=1))
        if modulation is not None:
            gamma, beta = modulation
            merged = merged * (1 + gamma.to(merged.dtype)) + beta.to(merged.dtype)
        learned = self.zero_conv(merged)
        return learned + prior_fusion_rule(z_vi, z_ir, self.rule, self.window)


class FusionModule(nn.Module):
    """One :class:`ScaleFusion` per encoder level."""

    def __init__(self, config: LUREConfig) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            ScaleFusion(c, n, config.heads, config.fusion_rule, config.l1_window, config.ffn_expansion)
            for c, n in zip(config.latent_channels, config.fusion_blocks))

    def forward(self, latents_vi: list[torch.Tensor], latents_ir: list[torch.Tensor],
                modulations: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> list[torch.Tensor]:
        """``modulations``: one ``(gamma, beta)`` per scale from the detail conditioning, or ``None``."""
        mods = modulations if modulations is not None else [None] * len(self.scales)
        return [scale(v, i, m) for scale, v, i, m in zip(self.scales, latents_vi, latents_ir, mods)]

    def rule_only(self, latents_vi: list[torch.Tensor], latents_ir: list[torch.Tensor]) -> list[torch.Tensor]:
        """The prior rule alone at every scale (what the module outputs at initialisation)."""
        return [prior_fusion_rule(v, i, s.rule, s.window) for s, v, i in zip(self.scales, latents_vi, latents_ir)]
