"""Loader benchmark: samples/s of the shard loader vs. the same pairs read from loose PNG files,
with the same decode and augmentation (paired 128 px crop + flips), at 0 and 2 workers.

Usage: ``python benchmarks/bench_loader.py [--pairs 64] [--batches 12]``; writes
``benchmarks/results/loader.json``. Data: demo scenes at 256x320 (built in a temp folder).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset, get_worker_info  # noqa: E402

from data_prep import shards  # noqa: E402
from data_prep.sources import demo  # noqa: E402
from data_prep.sources.base import load_image  # noqa: E402
from lure.data.augment import apply_pair, paired_crop_flip  # noqa: E402
from lure.data.loaders import fusion_loader, shard_urls  # noqa: E402
from lure.evaluation.io import atomic_write_json  # noqa: E402
from lure.image_io import chw_tensor, decode_image, to_grey, to_rgb  # noqa: E402
from lure.text.vocabulary import INFRARED, VISIBLE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "loader.json"


class LooseFiles(IterableDataset):
    """The same pairs from loose ``ir/*.png``, ``vi/*.png`` files: same decode and augmentation."""

    def __init__(self, root: Path, crop: int, seed: int) -> None:
        self.names = sorted(p.name for p in (root / "ir").iterdir())
        self.root, self.crop, self.seed = root, crop, seed

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, wid])
        transform = paired_crop_flip(self.crop, seed=int(rng.integers(2**31)), second="ir")
        mine = self.names[wid::nw]
        for i in rng.permutation(len(mine)):
            ir = to_grey(decode_image((self.root / "ir" / mine[i]).read_bytes()))
            vi = to_rgb(decode_image((self.root / "vi" / mine[i]).read_bytes()))
            vi, ir = apply_pair(transform, vi, ir, "ir")
            yield {"ir": chw_tensor(ir), "vi": chw_tensor(vi), "key": mine[i]}


def _rate(loader, batches: int) -> float:
    seen, start, done = 0, None, 0
    while done < batches:
        for batch in loader:
            if start is None:  # exclude worker start-up and the first batch
                start = time.perf_counter()
            else:
                seen += batch["ir"].shape[0]
                done += 1
            if done >= batches:
                break
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=160)
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {"crop": args.crop, "batch_size": args.batch_size, "pairs": args.pairs, "image": "320x256 demo",
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "samples_per_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parsed = demo.parse(train=args.pairs, test=0, height=256, width=320, seed=0,
                            tasks={"visible": [], "infrared": []})
        shards.write_parsed_split(tmp, "bench", "train", parsed, {"samples_per_shard": args.pairs // 4, "min_shards": 4})
        for r in parsed.fusion["train"]:
            for name, modality in (("ir", INFRARED), ("vi", VISIBLE)):
                (tmp / "loose" / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(load_image(getattr(r, name), modality)).save(tmp / "loose" / name / f"{r.key}.png",
                                                                             compress_level=shards.PNG_COMPRESS_LEVEL)
        urls = shard_urls(tmp / "shards/bench/train", "fusion")
        for workers in (0, 2):
            shard_rate = _rate(fusion_loader(urls, args.crop, args.batch_size, workers, seed=0), args.batches)
            loose = DataLoader(LooseFiles(tmp / "loose", args.crop, 0), batch_size=args.batch_size, num_workers=workers)
            loose_rate = _rate(loose, args.batches)
            results["samples_per_s"][f"workers_{workers}"] = {"shards": round(shard_rate, 1),
                                                              "loose_files": round(loose_rate, 1)}
            print(f"workers={workers}: shards {shard_rate:.1f} samples/s, loose files {loose_rate:.1f} samples/s")
    atomic_write_json(RESULTS, results)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
