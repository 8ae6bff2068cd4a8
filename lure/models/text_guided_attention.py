"""Text-Guided Attention block (LURE) and its InstructIR-style gating ablation.

Both blocks take image features ``x: (B, C, H, W)`` and a text feature ``c: (B, D)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lure.models.nafblock import LayerNorm2d, NAFBlock


class GatedDconvFeedForward(nn.Module):
    """Restormer's GDFN: 1x1 expand, 3x3 depthwise, GELU gate, 1x1 project back."""

    def __init__(self, channels: int, expansion: float = 2.66) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, hidden * 2, 1)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2)
        self.project_out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the gate and value halves are computed apart (1x1 and depthwise convs split exactly
        # by output channel): GELU on a contiguous half is ~3x faster than on a strided
        # channels-last chunk of the whole
        hidden = self.project_out.in_channels
        gate, value = (
            F.conv2d(F.conv2d(x, self.project_in.weight[part], self.project_in.bias[part]),
                     self.dwconv.weight[part], self.dwconv.bias[part], padding=1, groups=hidden)
            for part in (slice(0, hidden), slice(hidden, 2 * hidden)))
        return self.project_out(F.gelu(gate) * value)


def channel_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                      temperature: torch.Tensor) -> torch.Tensor:
    """Restormer's transposed attention: per head, a ``(C/h x C/h)`` attention map over
    channels: the cosine similarity of the query and key channels over all pixels, times
    ``temperature``; cost is linear in pixel count.

    q, k, v: ``(B, C, H, W)``; temperature: ``(heads, 1, 1)``. Returns ``(B, C, H, W)``
    (channels-last memory). Computed on ``(B, H*W, heads, C/h)`` views, free for
    channels-last inputs; dividing the dot products by both norms equals normalising first.
    """
    b, c, h, w = q.shape

    def tokens(x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).reshape(b, h * w, heads, c // heads)

    q, k, v = tokens(q), tokens(k), tokens(v)
    norm_q = (q * q).sum(dim=1).sqrt().clamp_min(1e-12)  # (B, heads, C/h), as F.normalize
    norm_k = (k * k).sum(dim=1).sqrt().clamp_min(1e-12)
    attn = torch.einsum("bnhd,bnhe->bhde", q, k) / (norm_q[..., :, None] * norm_k[..., None, :])
    attn = (attn * temperature).softmax(dim=-1)  # (B, heads, C/h, C/h)
    out = torch.einsum("bhde,bnhe->bnhd", attn, v)
    return out.reshape(b, h, w, c).permute(0, 3, 1, 2)


class ChannelCrossAttention(nn.Module):
    """Channel (transposed) attention with queries from one feature map and keys/values from
    another: ``q = dw3x3(1x1(query))``, ``k, v = dw3x3(1x1(context))``, per-head channel
    attention, then a 1x1 output projection. Inputs and output ``(B, C, H, W)``."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q = nn.Sequential(nn.Conv2d(channels, channels, 1),
                               nn.Conv2d(channels, channels, 3, padding=1, groups=channels))
        self.kv = nn.Sequential(nn.Conv2d(channels, channels * 2, 1),
                                nn.Conv2d(channels * 2, channels * 2, 3, padding=1, groups=channels * 2))
        self.project_out = nn.Conv2d(channels, channels, 1)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(context).chunk(2, dim=1)
        return self.project_out(channel_attention(self.q(query), k, v, self.heads, self.temperature))


class TextGuidedAttention(ChannelCrossAttention):
    """Attention whose query comes from text-weighted image features: the channel attention
    above with ``query = x * sigmoid(W c)`` and ``context = x``."""

    def __init__(self, channels: int, text_dim: int, heads: int) -> None:
        super().__init__(channels, heads)
        self.text_weight = nn.Linear(text_dim, channels)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        weight = torch.sigmoid(self.text_weight(text))[:, :, None, None]  # (B, C, 1, 1)
        return super().forward(x * weight, x)


class TGABlock(nn.Module):
    """Pre-norm transformer block: ``x + TGA(LN(x), c)`` then ``x + GDFN(LN(x))``."""

    def __init__(self, channels: int, text_dim: int, heads: int, ffn_expansion: float = 2.66) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(channels)
        self.attn = TextGuidedAttention(channels, text_dim, heads)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = GatedDconvFeedForward(channels, ffn_expansion)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), text)
        return x + self.ffn(self.norm2(x))


class TextGateBlock(nn.Module):
    """Ablation "TGA -> Gate" (InstructIR-style): the text only re-weights channels.

    ``x + NAF(x * sigmoid(W c))`` (docs/paper-map.md#ablations-table-6). The skip keeps the
    un-gated signal; the gated copy passes through a NAFBlock, so the text acts from the first step.
    """

    def __init__(self, channels: int, text_dim: int, heads: int | None = None) -> None:
        super().__init__()
        self.text_weight = nn.Linear(text_dim, channels)
        self.naf = NAFBlock(channels)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        gated = x * torch.sigmoid(self.text_weight(text))[:, :, None, None]
        return x + self.naf(gated)
