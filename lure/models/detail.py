"""Detail conditioning of the fusion module: one scalar per image, 0 = faithful, 1 = crisp.

Stage 2 trains the fusion module loss-conditionally ("You Only Train Once", Dosovitskiy &
Djolonga 2020): each batch draws a detail level ``d`` in [0, 1], the loss weights are those of
``d`` (:class:`lure.training.objectives.Stage2Objective`), and the fusion module reads ``d``
through a FiLM of each scale's merged features. At inference ``d`` is the user's control
(``lure fuse --detail``).

The FiLM layers start at zero, so a freshly built conditioning leaves the fusion module exactly
as it was for every ``d``.
"""

from __future__ import annotations

import torch
from torch import nn


class DetailConditioning(nn.Module):
    """``d (B,) in [0, 1]`` -> per scale ``(gamma, beta)``, each ``(B, C_i, 1, 1)``.

    A shared embedding (``1 -> hidden``, SiLU) and one zero-initialised linear layer per scale;
    the fusion module applies ``h * (1 + gamma) + beta`` to its merged features ``h``."""

    def __init__(self, channels: tuple[int, ...], hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(1, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        self.film = nn.ModuleList(nn.Linear(hidden, 2 * c) for c in channels)
        for layer in self.film:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, detail: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        e = self.embed(detail.reshape(-1, 1).to(self.film[0].weight.dtype))  # (B, hidden)
        out = []
        for layer in self.film:
            gamma, beta = layer(e).chunk(2, dim=1)  # (B, C) each
            out.append((gamma[:, :, None, None], beta[:, :, None, None]))
        return out


def detail_tensor(detail: float | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """``detail`` as a float ``(batch,)`` tensor on ``device``. A Python number outside [0, 1] is
    refused; a tensor is taken as it is (checking it would synchronise a GPU every step)."""
    if not isinstance(detail, torch.Tensor) and not 0.0 <= float(detail) <= 1.0:
        raise ValueError(f"detail must lie in [0, 1] (0 faithful, 1 crisp), got {detail}")
    d = torch.as_tensor(detail, dtype=torch.float32, device=device).reshape(-1)
    if d.numel() == 1:
        d = d.expand(batch)
    if d.numel() != batch:
        raise ValueError(f"detail needs one value or one per image ({batch}), got {d.numel()}")
    return d
