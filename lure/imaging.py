"""Conversions between uint8 numpy images and the network's float tensors."""

from __future__ import annotations

import numpy as np
import torch

from lure.color import luminance


def to_tensor(image: np.ndarray, channels: int = 3) -> torch.Tensor:
    """uint8 (or uint16) ``HxW`` / ``HxWx1`` / ``HxWx3`` -> float ``(1, channels, H, W)`` in [0, 1]."""
    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    else:
        raise ValueError(f"expected a uint8 or uint16 image, got dtype {image.dtype}")
    array = image.astype(np.float32) / scale
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an HxW or HxWx{{1,3}} image, got shape {image.shape}")
    array = array[:, :, :3]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).unsqueeze(0)
    if tensor.shape[1] != channels:
        tensor = tensor.mean(1, keepdim=True).expand(-1, channels, -1, -1) if channels in (1, 3) else tensor
    return tensor.contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """float ``(1, C, H, W)`` in [0, 1] -> uint8 ``HxWxC`` (``HxW`` when C = 1), rounded."""
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()[0]
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def luminance_uint8(image: torch.Tensor) -> np.ndarray:
    """The Y channel of a float RGB ``(1, 3, H, W)`` image as uint8 ``HxW``."""
    return to_uint8(luminance(image.clamp(0, 1)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] images (values clamped)."""
    mse = float((a.clamp(0, 1) - b.clamp(0, 1)).pow(2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)
