"""A real (untrained) network for inference tests, built from ``params.yaml``, and the small
image folders those tests fuse (real RoadScene crops, or generated demo scenes in a user's clone)."""

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


def write_pair_crops(pairs: Path, root: Path, height: int, width: int, count: int = 3) -> Path:
    """The first ``count`` pairs of ``pairs`` (``pairs/ir``, ``pairs/vi``, equal names), centre-cropped
    to ``height x width``, written as PNG into ``root/ir`` (grey) and ``root/vi`` (RGB) with the same
    stems; returns ``root``."""
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir(parents=True)
    for name in sorted(p.name for p in (pairs / "ir").iterdir())[:count]:
        ir = Image.open(pairs / "ir" / name).convert("L")
        vi = Image.open(pairs / "vi" / name).convert("RGB")
        w, h = ir.size
        if h < height or w < width:
            raise ValueError(f"{pairs / 'ir' / name}: {w}x{h} is smaller than the {width}x{height} crop")
        box = ((w - width) // 2, (h - height) // 2, (w - width) // 2 + width, (h - height) // 2 + height)
        ir.crop(box).save(root / "ir" / f"{Path(name).stem}.png")
        vi.crop(box).save(root / "vi" / f"{Path(name).stem}.png")
    return root


def write_demo_pairs(root: Path, count: int = 5, height: int = 160, width: int = 224, seed: int = 0) -> Path:
    """``count`` generated demo scenes (:func:`data_prep.sources.demo.render_scene`, seeds ``seed..``)
    as ``root/ir/demo_<i>.png`` (grey) and ``root/vi/demo_<i>.png`` (RGB); returns ``root``."""
    from data_prep.sources.demo import render_scene

    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir(parents=True)
    for i in range(count):
        ir, vi = render_scene(seed + i, height, width)
        Image.fromarray(ir).save(root / "ir" / f"demo_{i:05d}.png")
        Image.fromarray(vi).save(root / "vi" / f"demo_{i:05d}.png")
    return root


def fit_demo_niqe_params(path: Path, scenes: int = 6, seed: int = 100) -> Path:
    """A NIQE pristine model (``mu_pris_param``, ``cov_pris_param``, ``gaussian_window``) fitted on the
    96 x 96 blocks of ``scenes`` clean generated demo scenes (192 x 384 visible Y), saved at ``path``
    in the layout of BasicSR's ``niqe_pris_params.npz``; returns ``path``. For tests without the
    shared data only: the scores are not comparable to the published model's."""
    import numpy as np
    from scipy import ndimage

    from data_prep.sources.demo import render_scene
    from lure.metrics.niqe import BLOCK_SIZE, _block_features, imresize_matlab, rgb_to_y

    x = np.arange(7) - 3.0
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()  # the 7 x 7 Gaussian (sigma 7/6) of MATLAB's niqe
    feats = []
    for i in range(scenes):
        img = np.round(rgb_to_y(render_scene(seed + i, 2 * BLOCK_SIZE, 4 * BLOCK_SIZE)[1])).astype(np.float32)
        per_scale = []
        for scale in (1, 2):  # as lure.metrics.niqe scores an image
            mu = ndimage.convolve(img, window, mode="nearest")
            sigma = np.sqrt(np.abs(ndimage.convolve(np.square(img), window, mode="nearest") - np.square(mu)))
            normalised = (img - mu) / (sigma + np.float32(1.0))
            bs, (h, w) = BLOCK_SIZE // scale, normalised.shape
            blocks = normalised.reshape(h // bs, bs, w // bs, bs).transpose(0, 2, 1, 3).reshape(-1, bs, bs)
            per_scale.append(_block_features(blocks))
            img = imresize_matlab(img / np.float32(255.0), 0.5, antialiasing=True).astype(np.float32) * np.float32(255.0)
        feats.append(np.concatenate(per_scale, axis=1))
    feats = np.concatenate(feats)
    feats = feats[~np.isnan(feats).any(axis=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, mu_pris_param=feats.mean(axis=0)[None], cov_pris_param=np.cov(feats, rowvar=False),
             gaussian_window=window)
    return path


def write_demo_shards(root: Path, samples_per_shard: int, min_shards: int) -> Path:
    """Demo shards (8 training and 4 test scenes at 64x80) under ``root``, written without Prefect."""
    from data_prep.shards import write_parsed_split
    from data_prep.sources import get_parser

    parsed = get_parser("demo")(None, train=8, test=4, height=64, width=80)
    for split in ("train", "test"):
        write_parsed_split(root, "demo", split, parsed, {"samples_per_shard": samples_per_shard,
                                                         "min_shards": min_shards})
    return root
