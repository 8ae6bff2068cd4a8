"""The text-conditioned image encoder E_img(x, c, m) with inner-residual layers."""

from __future__ import annotations

import torch
from torch import nn

from lure.models.base_blocks import BaseBlock, BottleNeck
from lure.models.config import LUREConfig
from lure.models.text_guided_attention import TextGateBlock, TGABlock


def make_text_block(kind: str, channels: int, text_dim: int, heads: int, ffn_expansion: float) -> nn.Module:
    """A TGABlock (``kind="tga"``) or the gating ablation (``kind="gate"``)."""
    if kind == "tga":
        return TGABlock(channels, text_dim, heads, ffn_expansion)
    return TextGateBlock(channels, text_dim)


class InnerResidualEncoderLayer(nn.Module):
    """One encoder level.

    1. ``K_bt`` x (text block -> BaseBlock) gives ``X``;
    2. path A: ``X`` downsampled (2x2 stride-2 conv) feeds the next level;
    3. path B: ``K_tb`` x (text block -> BottleNeck) gives the degradation-specific ``phi_d``;
    4. path C: a 1x1 conv of ``X`` gives the task-relevant base ``phi_t``;
    5. inner residual: ``z = phi_t - phi_d``. Without it (ablation) ``z = phi_d`` and path C
       does not exist.
    """

    def __init__(self, width: int, latent: int, next_width: int | None, base_blocks: int,
                 branch_blocks: int, text_dim: int, heads: int, text_block: str = "tga",
                 inner_residual: bool = True, ffn_expansion: float = 2.66) -> None:
        super().__init__()
        self.base_text = nn.ModuleList(
            make_text_block(text_block, width, text_dim, heads, ffn_expansion) for _ in range(base_blocks))
        self.base = nn.ModuleList(BaseBlock(width) for _ in range(base_blocks))
        self.down = nn.Conv2d(width, next_width, 2, stride=2) if next_width else None
        self.branch_text = nn.ModuleList(
            make_text_block(text_block, width, text_dim, heads, ffn_expansion) for _ in range(branch_blocks))
        self.branch = nn.ModuleList(
            BottleNeck(width, latent if i == branch_blocks - 1 else width) for i in range(branch_blocks))
        self.base_projection = nn.Conv2d(width, latent, 1) if inner_residual else None

    def forward(self, x: torch.Tensor, text: torch.Tensor,
                modality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        for text_block, base in zip(self.base_text, self.base):
            x = base(text_block(x, text), modality)
        phi_d = x
        for text_block, bottleneck in zip(self.branch_text, self.branch):
            phi_d = bottleneck(text_block(phi_d, text))
        z = phi_d if self.base_projection is None else self.base_projection(x) - phi_d
        return z, (self.down(x) if self.down is not None else None)


class ImageEncoder(nn.Module):
    """Multi-scale encoder: image ``(B, 3, H, W)`` in [0,1] -> latents ``z^i`` of shape
    ``(B, latent_channels[i], H / 2^i, W / 2^i)`` (channels-last memory). H and W must be multiples of
    ``config.size_multiple``."""

    def __init__(self, config: LUREConfig) -> None:
        super().__init__()
        w = config.widths
        self.stem = nn.Conv2d(config.image_channels, w[0], 3, padding=1)
        self.layers = nn.ModuleList(
            InnerResidualEncoderLayer(
                width=w[i], latent=config.latent_channels[i],
                next_width=w[i + 1] if i + 1 < config.levels else None,
                base_blocks=config.base_blocks[i], branch_blocks=config.branch_blocks[i],
                text_dim=config.text_dim, heads=config.heads, text_block=config.text_block,
                inner_residual=config.inner_residual, ffn_expansion=config.ffn_expansion)
            for i in range(config.levels))

    def forward(self, image: torch.Tensor, text: torch.Tensor, modality: torch.Tensor) -> list[torch.Tensor]:
        # channels-last activations: oneDNN's 1x1 and depthwise convolutions run ~2x faster on
        # CPU, and LayerNorm2d / channel attention read them without copies
        x = self.stem(image.contiguous(memory_format=torch.channels_last))
        latents = []
        for layer in self.layers:
            z, x = layer(x, text, modality)
            latents.append(z)
        return latents
