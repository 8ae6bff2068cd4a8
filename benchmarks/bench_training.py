"""Training throughput (samples/s) of both profiles on this machine, 128 px crops.

Runs the real stage objectives (forward + backward + AdamW step) on random crops so the
number measures the model, not the loader (see bench_loader.py for that). Writes
``benchmarks/results/training.json``.

    python benchmarks/bench_training.py [--profiles demo paper] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from lure.config import load_params, model_config
from lure.evaluation.io import atomic_write_json
from lure.models.lure_model import LURE
from lure.runtime import retain_freed_memory
from lure.training.config import TrainingConfig
from lure.training.objectives import Stage1Objective, Stage2Objective

OUT = Path(__file__).resolve().parent / "results" / "training.json"


def throughput(profile: str, stage: str, batch: int, crop: int, steps: int) -> dict:
    params = load_params(profile=profile)
    torch.manual_seed(0)
    model = LURE(model_config(params))
    model.set_stage(stage)
    config = TrainingConfig.from_params(params)
    if stage == "stage1":
        objective = Stage1Objective(model, config.stage1.loss_weights)
        dim = model.config.text_backbone_dim
        inputs = (torch.rand(batch, 3, crop, crop), torch.rand(batch, 3, crop, crop), torch.randint(0, 2, (batch,)),
                  torch.randn(batch, dim), torch.randn(batch, dim), torch.randint(0, 7, (batch,)))
    else:
        objective = Stage2Objective(model, replace(config.stage2.loss_weights, perceptual_weight=0.0))
        dim = model.config.text_backbone_dim
        inputs = (torch.rand(batch, 3, crop, crop), torch.rand(batch, 3, crop, crop), torch.randn(batch, dim),
                  torch.randn(batch, dim))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss, _ = objective(*inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    return {"profile": profile, "stage": stage, "batch": batch, "crop": crop, "steps": steps,
            "seconds_per_step": elapsed / steps, "samples_per_s": batch * steps / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["demo", "paper"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args()
    retain_freed_memory()
    rows = []
    for profile in args.profiles:
        batch = 4 if profile == "demo" else 2
        steps = args.steps if profile == "demo" else max(1, args.steps // 2)
        for stage in ("stage1", "stage2"):
            row = throughput(profile, stage, batch, args.crop, steps)
            print(json.dumps(row))
            rows.append(row)
    atomic_write_json(OUT, {"machine": {"cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                                        "platform": platform.platform(), "torch": torch.__version__},
                            "results": rows})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
