"""Can the loaders feed the paper-size model on an H100/H200-class GPU?

Supply: samples/s of one loader worker (``workers=0``: the loop runs in this process, so the rate
is per core) for the paper profile's batches (128 px crops, batch 8), on shards of simulated
paper data at the published image sizes (:mod:`data_prep.simulate`): LLVIP pairs (1280x1024,
stage 2) and RESIDE-ITS triplets (620x460, stage 1), each stored whole and as pre-cut 256 px
patches (``datasets.<name>.patches``).

Demand: training FLOPs per sample of the paper model, counted with ``torch.utils.flop_counter``
on one forward pass of each stage's objective at 128 px, plus 2x the forward FLOPs of the parts
that train (text encoder excluded: its embeddings are cached), divided into an H200's dense bf16 peak (989 TFLOP/s) at an assumed model
FLOP utilisation (``--mfu``, default 0.35).

Usage: ``python benchmarks/bench_loader_paper.py [--batches 30] [--mfu 0.35]``; writes
``benchmarks/results/loader_paper.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from data_prep import simulate  # noqa: E402
from data_prep.shards import write_parsed_split  # noqa: E402
from data_prep.sources import get_parser  # noqa: E402
from lure.config import load_params, model_config  # noqa: E402
from lure.data.loaders import fusion_loader, shard_urls, stage1_loader  # noqa: E402
from lure.evaluation.io import atomic_write_json  # noqa: E402
from lure.models.lure_model import LURE  # noqa: E402
from lure.runtime import retain_freed_memory  # noqa: E402
from lure.training.config import TrainingConfig  # noqa: E402
from lure.training.objectives import Stage1Objective, Stage2Objective  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "loader_paper.json"
H200_BF16_DENSE_TFLOPS = 989.0
CROP, BATCH = 128, 8
PATCHES = {"size": 256, "per_image": 8}


def _forward_flops(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def training_flops_per_sample() -> dict[str, float]:
    """GFLOPs of one training step per 128 px sample of the paper model: forward FLOPs counted by
    ``FlopCounterMode`` plus twice the forward FLOPs of the parts that train (the usual backward =
    2 x forward rule; the counter's own convolution-backward count treats grouped/depthwise
    convolutions as dense and overstates it about 17-fold on this network)."""
    params = load_params(profile="paper")
    config = model_config(params)
    training = TrainingConfig.from_params(params)
    model = LURE(config)
    dim = config.text_backbone_dim
    g = torch.Generator().manual_seed(0)
    vi, ir = torch.rand(1, 3, CROP, CROP, generator=g), torch.rand(1, 3, CROP, CROP, generator=g)
    t1, t2 = torch.randn(1, dim, generator=g), torch.randn(1, dim, generator=g)
    out = {}
    model.set_stage("stage1")
    s1 = Stage1Objective(model, training.stage1.loss_weights)
    forward = _forward_flops(lambda: s1(vi, ir, torch.tensor([0]), t1, t2, torch.tensor([1])))
    out["stage1"] = 3 * forward  # everything trains
    model.set_stage("stage2")
    weights = training.stage2.loss_weights
    s2 = Stage2Objective(model, type(weights)(weights.gradient_weight, 0.0, weights.intensity_weight, "none", None))
    with torch.no_grad():
        forward = _forward_flops(lambda: s2(vi, ir, t1, t2))
        c = model.project_text(torch.cat([t1, t2]))
        frozen = _forward_flops(lambda: model.encode(torch.cat([vi, ir]), c, torch.tensor([0, 1])))
    out["stage2"] = forward + 2 * (forward - frozen)  # encoders frozen: only fusion + decoder train
    return out


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loader_rate(loader, batches: int) -> dict[str, float]:
    """Samples/s over ``batches`` batches after one warm-up batch (wall and per CPU second)."""
    iterator = iter(loader)
    next(iterator)
    wall, cpu, n = time.perf_counter(), _cpu(), 0
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        n += len(batch["key"])
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {"samples": n, "samples_per_s": round(n / wall, 1), "samples_per_cpu_s": round(n / cpu, 1)}


def build(tmp: Path, source_id: str, dataset: str, fraction: float, patches: bool) -> Path:
    tree = tmp / "tree"
    if not (tree / dataset).exists():
        simulate.simulate(source_id, fraction, tree, seed=0)
    entry = {"source": dataset} | ({"patches": PATCHES} if patches else {})
    config = {"seed": 0, "samples_per_shard": 512, "min_shards": 1, "datasets": {dataset: entry}}
    parsed = get_parser(dataset)(str(simulate.tree_root(tree, source_id)))
    name = f"{dataset}-{'patches' if patches else 'whole'}"
    config["datasets"][name] = entry
    write_parsed_split(tmp / "out", name, "train", parsed, config)
    return tmp / "out" / "shards" / name / "train"


def _child(stage: str, shards: str, batches: int) -> None:
    """Measure one loader in this fresh process (one thread, as a DataLoader worker) and print JSON."""
    import json

    retain_freed_memory()
    torch.set_num_threads(1)
    urls = shard_urls(shards)
    loader = (stage1_loader(urls, crop=CROP, batch_size=BATCH, workers=0, task_weights=None, seed=0)
              if stage == "stage1" else fusion_loader(urls, crop=CROP, batch_size=BATCH, workers=0, seed=0))
    print(json.dumps(loader_rate(loader, batches)))


def _measure(stage: str, shards: Path, batches: int) -> dict:
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--child", stage, str(shards), "--batches", str(batches)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--mfu", type=float, default=0.35)
    parser.add_argument("--patch-size", type=int, default=PATCHES["size"])
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "SHARDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], args.child[1], args.batches)
    PATCHES["size"] = args.patch_size
    retain_freed_memory()
    flops = training_flops_per_sample()
    sustained = H200_BF16_DENSE_TFLOPS * args.mfu * 1e3  # GFLOP/s
    demand = {stage: round(sustained / f, 0) for stage, f in flops.items()}
    supply = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for patches in (False, True):
            kind = "patches" if patches else "whole"
            supply[f"stage2_llvip_{kind}"] = _measure("stage2", build(tmp, "llvip", "llvip", 0.002, patches),
                                                      args.batches)
            supply[f"stage1_its_{kind}"] = _measure("stage1", build(tmp, "reside-its", "reside", 0.005, patches),
                                                    args.batches)
    per_worker = {k: v["samples_per_cpu_s"] for k, v in supply.items()}
    workers_needed = {}
    for key, rate in per_worker.items():
        stage = key.split("_")[0]
        workers_needed[key] = round(demand[stage] / rate, 1)
    report = {
        "what": "loader samples/s per worker (one core) for 128 px crops, batch 8, vs the paper model's demand "
                "on one H200",
        "training_gflops_per_sample": {k: round(v, 1) for k, v in flops.items()},
        "assumed_mfu": args.mfu, "h200_bf16_dense_tflops": H200_BF16_DENSE_TFLOPS,
        "gpu_demand_samples_per_s": demand,
        "loader_per_worker": supply,
        "workers_needed": workers_needed,
        "patch_factor": {s: round(per_worker[f"{s}_patches"] / per_worker[f"{s}_whole"], 1)
                         for s in ("stage2_llvip", "stage1_its")},
        "patches": PATCHES,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load": os.getloadavg()},
    }
    atomic_write_json(RESULTS, report)
    print(report)


if __name__ == "__main__":
    main()
