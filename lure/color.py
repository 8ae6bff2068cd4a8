"""Colour conversions on ``(B, 3, H, W)`` tensors in [0, 1] (full-range BT.601 YCbCr, the
convention of the IVIF literature: Y = 0.299 R + 0.587 G + 0.114 B, Cb/Cr centred at 0.5)."""

from __future__ import annotations

import torch


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = (b - y) * 0.564 + 0.5
    cr = (r - y) * 0.713 + 0.5
    return torch.cat([y, cb, cr], dim=1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    y, cb, cr = ycbcr[:, 0:1], ycbcr[:, 1:2] - 0.5, ycbcr[:, 2:3] - 0.5
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return torch.cat([r, g, b], dim=1)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y channel ``(B, 1, H, W)`` of an RGB image; a one-channel image is returned as is."""
    if image.shape[1] == 1:
        return image
    return rgb_to_ycbcr(image)[:, :1]
