"""The U-Net style decoder D: multi-scale latents -> image."""

from __future__ import annotations

import torch
from torch import nn

from lure.models.config import LUREConfig
from lure.models.nafblock import NAFBlock


class Decoder(nn.Module):
    """From the deepest latent upwards: at each finer level upsample (1x1 conv + PixelShuffle),
    merge the same-scale latent (concat + 1x1), run NAFBlocks; a 3x3 conv gives the image
    (``image_channels`` channels, nominally in [0,1]; not clamped)."""

    def __init__(self, config: LUREConfig) -> None:
        super().__init__()
        w, lat, n = config.widths, config.latent_channels, config.decoder_blocks
        top = config.levels - 1
        self.entry = nn.Conv2d(lat[top], w[top], 1)
        self.entry_blocks = nn.Sequential(*(NAFBlock(w[top]) for _ in range(n[top])))
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(w[i + 1], w[i] * 4, 1), nn.PixelShuffle(2)) for i in range(top))
        self.merges = nn.ModuleList(nn.Conv2d(w[i] + lat[i], w[i], 1) for i in range(top))
        self.blocks = nn.ModuleList(nn.Sequential(*(NAFBlock(w[i]) for _ in range(n[i]))) for i in range(top))
        self.head = nn.Conv2d(w[0], config.image_channels, 3, padding=1)

    def forward(self, latents: list[torch.Tensor]) -> torch.Tensor:
        # channels-last like the encoder's latents (a no-op for them)
        latents = [z.contiguous(memory_format=torch.channels_last) for z in latents]
        x = self.entry_blocks(self.entry(latents[-1]))
        for i in reversed(range(len(self.ups))):
            x = self.ups[i](x)
            x = self.blocks[i](self.merges[i](torch.cat([x, latents[i]], dim=1)))
        return self.head(x)
