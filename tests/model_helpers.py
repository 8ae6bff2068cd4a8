"""A real (untrained) network for inference tests, built from ``params.yaml``."""

from __future__ import annotations

import torch

from lure.config import load_params, model_config
from lure.models import LURE


def seeded_demo_model(seed: int = 0) -> LURE:
    """The real demo-profile network, seeded, with every zero-initialised residual scale randomised:
    the fusion zero-convs (so the learned branch contributes) and the NAFBlock ``beta``/``gamma``
    (so the blocks, and their global channel attention, are not identities)."""
    torch.manual_seed(seed)
    model = LURE(model_config(load_params(profile="demo")))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "zero_conv" in name or name.endswith((".beta", ".gamma")):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model
