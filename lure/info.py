"""Parameter counts, forward FLOPs and CPU latency of a LURE configuration."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lure.models.config import LUREConfig
from lure.models.lure_model import LURE


def fusion_inputs(config: LUREConfig, height: int = 480, width: int = 640, batch: int = 1,
                  seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random visible RGB, infrared (1 channel) and two text embeddings of the right sizes."""
    g = torch.Generator().manual_seed(seed)
    vi = torch.rand(batch, 3, height, width, generator=g)
    ir = torch.rand(batch, 1, height, width, generator=g)
    t_vi = torch.randn(batch, config.text_backbone_dim, generator=g)
    t_ir = torch.randn(batch, config.text_backbone_dim, generator=g)
    return vi, ir, t_vi, t_ir


def forward_flops(model: LURE, height: int = 480, width: int = 640) -> int:
    """FLOPs (``torch.utils.flop_counter``: 2 per multiply-accumulate) of one fusion forward
    pass on a ``height x width`` pair, text backbone excluded (its embeddings are cached)."""
    inputs = fusion_inputs(model.config, height, width)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops())


def forward_latency(model: LURE, height: int = 480, width: int = 640, repeats: int = 3) -> float:
    """Median wall time in seconds of one fusion forward pass (after one warm-up)."""
    inputs = fusion_inputs(model.config, height, width)
    times = []
    with torch.inference_mode():
        model(*inputs)
        for _ in range(repeats):
            start = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def model_info(config: LUREConfig, latency: bool = False, height: int = 480, width: int = 640) -> dict[str, Any]:
    """Counts per part, GFLOPs of one ``height x width`` pair, optionally the CPU latency."""
    torch.manual_seed(0)
    model = LURE(config).eval()
    info: dict[str, Any] = {
        "parameters": model.part_parameters(),
        "input": {"height": height, "width": width, "pairs": 1},
        "gflops": forward_flops(model, height, width) / 1e9,
    }
    if latency:
        info["latency_s"] = forward_latency(model, height, width)
        info["threads"] = torch.get_num_threads()
    return info
