"""LURE's image-side blocks around NAFBlock: modality embedding, BaseBlock, BottleNeck."""

from __future__ import annotations

import torch
from torch import nn

from lure.models.nafblock import NAFBlock


class ModalityEmbedding(nn.Module):
    """One learned vector per modality (0 visible, 1 infrared), added to every pixel."""

    def __init__(self, channels: int, num_modalities: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_modalities, channels)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, x: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        # modality: (B,) long -> (B, C, 1, 1)
        return x + self.embedding(modality)[:, :, None, None]


class BaseBlock(nn.Module):
    """Modality embedding followed by a NAFBlock: extracts modality-specific features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.modality = ModalityEmbedding(channels)
        self.naf = NAFBlock(channels)

    def forward(self, x: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        return self.naf(self.modality(x, modality))


class BottleNeck(nn.Module):
    """NAFBlock followed by a 1x1 convolution to ``out_channels`` (the latent width)."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.naf = NAFBlock(channels)
        self.reduce = nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.naf(x))
