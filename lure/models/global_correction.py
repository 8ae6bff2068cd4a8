"""Whole-image statistics and the text-conditioned global affine correction (ours).

The paper's encoder sees the image through 3x3 convolutions, channel attention and, in training,
small crops; the global photometric degradations depend on the *whole* image: infrared low
contrast is ``m + c (x - m) + o`` around the image mean, haze adds a global airlight, low light and
over-exposure change the global exposure. :func:`image_statistics` summarises a whole image
(per channel: mean, standard deviation and five quantiles) and :class:`GlobalAffineCorrection`
maps those statistics and the task's text feature to a per-channel gain and shift applied to the
input before the encoder: a learned, text-conditioned contrast/exposure stretch. Its last layer
starts at zero, so an untrained correction is the identity.

The statistics must describe the whole image: a training crop, an inference tile or a padded
image is given the statistics of the image it was cut from (the loaders and
:class:`lure.inference.Fuser` compute them before cropping, tiling and padding).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

#: Quantiles of each channel in :func:`image_statistics` (after the mean and standard deviation).
STAT_QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
#: Values per channel: mean, standard deviation, then :data:`STAT_QUANTILES`.
STATS_PER_CHANNEL = 2 + len(STAT_QUANTILES)
#: The statistics are read on a regular subsample with at most this many pixels on a side.
MAX_STATS_SIDE = 256


def image_statistics(image: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Per-channel statistics ``(B, channels, STATS_PER_CHANNEL)`` float32 of ``(B, 1|3, H, W)``
    images in [0, 1] (a one-channel image is repeated to ``channels``, as the network sees it).

    Read on every ``s``-th pixel in both directions, ``s = ceil(max(H, W) / MAX_STATS_SIDE)``, so
    the cost does not grow with the image and a crop of a larger image is never needed."""
    if image.ndim != 4:
        raise ValueError(f"image_statistics expects (B, C, H, W), got shape {tuple(image.shape)}")
    if image.shape[1] == 1 and channels != 1:
        image = image.expand(-1, channels, -1, -1)
    stride = max(1, math.ceil(max(image.shape[-2:]) / MAX_STATS_SIDE))
    x = image[..., ::stride, ::stride].float().flatten(2)  # (B, C, N)
    q = torch.tensor(STAT_QUANTILES, dtype=x.dtype, device=x.device)
    quantiles = torch.quantile(x, q, dim=-1).permute(1, 2, 0)  # (B, C, Q)
    mean, std = x.mean(-1, keepdim=True), x.std(-1, unbiased=False, keepdim=True)
    return torch.cat([mean, std, quantiles], dim=-1)


def array_statistics(image: np.ndarray, channels: int = 3) -> torch.Tensor:
    """:func:`image_statistics` of one uint8 ``HxW`` or ``HxWxC`` array: ``(channels, STATS_PER_CHANNEL)``.

    Bit-identical to :func:`image_statistics` of ``image / 255`` (float32), and several times
    faster (the data loaders call it twice per training sample): the subsample is taken before
    the conversion to float, and the quantiles come from a 256-bin histogram of the uint8 values
    instead of a sort, interpolated exactly as :func:`torch.quantile` does (linear)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        return image_statistics(_unit_nchw(arr), channels)[0]
    stride = max(1, math.ceil(max(arr.shape[:2]) / MAX_STATS_SIDE))
    sub = arr[::stride, ::stride]
    x = _unit_nchw(sub)  # (1, C, h, w)
    if x.shape[1] == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    # the memory layout image_statistics reduces over (a strided view when nothing was skipped),
    # so that the mean and standard deviation round alike
    x = (x if stride == 1 else x.contiguous()).flatten(2)[0]  # (C, N)
    mean, std = x.mean(-1, keepdim=True), x.std(-1, unbiased=False, keepdim=True)
    values = sub[None] if sub.ndim == 2 else np.moveaxis(sub, -1, 0)  # (C, h, w) uint8
    quantiles = _uint8_quantiles(values.reshape(values.shape[0], -1))
    if quantiles.shape[0] == 1 and channels != 1:  # a grey image: one histogram, repeated
        quantiles = quantiles.expand(channels, -1)
    return torch.cat([mean, std, quantiles], dim=-1)


def _unit_nchw(array: np.ndarray) -> torch.Tensor:
    """A 0-255 ``HxW`` or ``HxWxC`` array as a float32 ``(1, C, H, W)`` view in [0, 1]."""
    x = torch.from_numpy(np.asarray(array, dtype=np.float32) / 255.0)
    return x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]


def _uint8_quantiles(values: np.ndarray) -> torch.Tensor:
    """``torch.quantile(values / 255, STAT_QUANTILES, dim=-1)`` (float32, linear interpolation)
    of uint8 ``(C, N)`` values, from each row's histogram: ``(C, len(STAT_QUANTILES))``."""
    n = values.shape[1]
    q = torch.tensor(STAT_QUANTILES, dtype=torch.float32)
    ranks = q * (n - 1)  # the order statistics torch.quantile interpolates between
    below, above = ranks.long(), ranks.ceil().long()
    weights = ranks - below
    wanted = np.concatenate([below.numpy(), above.numpy()])
    # the k-th smallest value (from 0) is the first v with more than k values <= v
    rows = [np.searchsorted(np.cumsum(np.bincount(row, minlength=256)), wanted, side="right") for row in values]
    order = np.asarray(rows, dtype=np.float32) / 255.0  # the same float32 values as the image's
    k = len(STAT_QUANTILES)
    low, high = torch.from_numpy(order[:, :k]), torch.from_numpy(order[:, k:])
    return low.lerp(high, weights.expand_as(low))


def log_spread(stats: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``(B, 2 C)``: ``log(std + eps)`` and ``log(q99 - q1 + eps)`` of each channel, from
    :func:`image_statistics` ``(B, C, STATS_PER_CHANNEL)``. The log gain of a contrast stretch is
    linear in them (``log g = log target - log spread``), which raw statistics make an MLP learn
    as a reciprocal."""
    std, spread = stats[..., 1], stats[..., 1 + len(STAT_QUANTILES)] - stats[..., 2]
    return torch.cat([torch.log(std + eps), torch.log(spread.clamp_min(0) + eps)], dim=1)


class GlobalAffineCorrection(nn.Module):
    """``x' = mu + g * (x - mu) + b`` per channel, with the gain ``g`` and shift ``b`` predicted by
    a two-layer MLP from the whole image's statistics and the text feature ``c``.

    ``mu`` is the image's channel mean; ``log g`` is bounded to ``[-max_log_gain, max_log_gain]``.
    Input ``(B, C, H, W)`` (nominally [0, 1]; the output is not clamped), statistics
    ``(B, C, STATS_PER_CHANNEL)``, text ``(B, text_dim)``. ``with_log_spread``: the MLP also reads
    :func:`log_spread` of the statistics.
    """

    def __init__(self, channels: int, text_dim: int, hidden: int = 64, max_log_gain: float = 3.0,
                 with_log_spread: bool = False) -> None:
        super().__init__()
        self.channels, self.max_log_gain, self.with_log_spread = channels, max_log_gain, with_log_spread
        inputs = channels * STATS_PER_CHANNEL + (2 * channels if with_log_spread else 0) + text_dim
        self.mlp = nn.Sequential(nn.Linear(inputs, hidden), nn.GELU(), nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.mlp[-1].weight)  # identity at initialisation
        nn.init.zeros_(self.mlp[-1].bias)

    def gain_and_shift(self, stats: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and shift ``(B, C)`` each, float32 (the statistics and the MLP stay out of autocast:
        a quantile in bf16 is off by up to 0.004, a gain of e^3 makes that 0.08)."""
        with torch.autocast(text.device.type, enabled=False):
            stats, text = stats.float(), text.float()
            features = [stats.flatten(1), log_spread(stats)] if self.with_log_spread else [stats.flatten(1)]
            log_gain, shift = self.mlp(torch.cat([*features, text], dim=1)).chunk(2, dim=1)
            bound = self.max_log_gain
            return torch.exp(bound * torch.tanh(log_gain / bound)), shift

    def forward(self, image: torch.Tensor, stats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The corrected ``image`` (float32, also under autocast)."""
        gain, shift = self.gain_and_shift(stats, text)
        with torch.autocast(image.device.type, enabled=False):
            mean = stats[..., 0].float()[..., None, None]  # (B, C, 1, 1)
            return mean + gain[..., None, None] * (image.float() - mean) + shift[..., None, None]
