"""A real (untrained) network for inference tests, built from ``params.yaml``, and the small
real-image folders those tests fuse."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from lure.checkpoint import save_checkpoint
from lure.config import load_params, model_config
from lure.models.lure_model import LURE


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


def save_seeded_demo_checkpoint(folder: Path) -> Path:
    """:func:`seeded_demo_model` saved as ``folder/demo.pt`` (a checkpoint as the trainer writes it)."""
    path = folder / "demo.pt"
    save_checkpoint(path, seeded_demo_model(), "demo")
    return path


def write_roadscene_crops(shared_data: Path, root: Path, height: int, width: int, count: int = 3) -> Path:
    """The first ``count`` RoadScene pairs, centre-cropped to ``height x width``, written as PNG
    into ``root/ir`` (grey) and ``root/vi`` (RGB) with the same names; returns ``root``."""
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir(parents=True)
    for name in sorted(p.name for p in (shared_data / "roadscene" / "ir").iterdir())[:count]:
        ir = Image.open(shared_data / "roadscene" / "ir" / name).convert("L")
        vi = Image.open(shared_data / "roadscene" / "vi" / name).convert("RGB")
        w, h = ir.size
        box = ((w - width) // 2, (h - height) // 2, (w - width) // 2 + width, (h - height) // 2 + height)
        ir.crop(box).save(root / "ir" / f"{Path(name).stem}.png")
        vi.crop(box).save(root / "vi" / f"{Path(name).stem}.png")
    return root
