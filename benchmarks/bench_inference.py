"""Inference benchmark on this CPU (or GPU when visible): writes ``benchmarks/results/inference.json``.

Measured:

* ``latency``: ms per 640 x 480 pair through :meth:`lure.inference.Fuser.fuse` (whole-image pass,
  colour composition included, text embeddings cached) for each profile; median of ``repeats``
  timed runs after ``warmup`` untimed ones. Weights are seeded random: speed does not depend on them.
* ``flop_efficiency``: forward FLOPs of one 640 x 480 pair (``torch.utils.flop_counter``, 2 per
  multiply-accumulate) / median forward time = achieved GFLOP/s, divided by the GFLOP/s of a large
  ``torch.matmul`` (square, float32) timed in the same process.
* ``folder``: images/s of ``lure fuse --ir-dir --vi-dir --out-dir`` (demo profile) on 640 x 480
  pairs (MSRS pairs from ``../shared/data/msrs`` when present, else seeded random images),
  wall time of the whole command (model loading included) and steady-state per pair.
* ``peak_rss``: peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) of a fresh
  subprocess that loads the paper-profile model and fuses one 1280 x 1024 pair (LLVIP 190001 when
  present), once per tiling mode (``auto`` = the default, which tiles this size; ``off``).

Usage: ``python benchmarks/bench_inference.py [--profiles demo paper] [--paper-repeats 1]
[--rss-modes auto off] [--skip-rss] [--skip-folder]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lure.evaluation.io import atomic_write_json  # noqa: E402
from lure.paths import shared_data_dir  # noqa: E402
from lure.runtime import retain_freed_memory  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "inference.json"


def seeded_model(profile: str, seed: int = 0):
    from lure.config import load_params, model_config
    from lure.models.lure_model import LURE

    torch.manual_seed(seed)
    model = LURE(model_config(load_params(profile=profile)))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # residual scales non-zero, as in a trained model (same cost either way)
        for name, p in model.named_parameters():
            if "zero_conv" in name or name.endswith((".beta", ".gamma")):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model.eval()


def pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A real pair of that size from ../shared/data when available, else seeded random images."""
    from PIL import Image

    data = shared_data_dir()
    candidates = {(480, 640): ("msrs/ir", "msrs/vi"), (1024, 1280): ("llvip/test/ir", "llvip/test/vi")}
    if data is not None and (height, width) in candidates:
        ir_dir, vi_dir = (data / c for c in candidates[(height, width)])
        name = sorted(p.name for p in ir_dir.iterdir())[0]
        ir = np.asarray(Image.open(ir_dir / name).convert("L"))
        vi = np.asarray(Image.open(vi_dir / name).convert("RGB"))
        if ir.shape == (height, width):
            return ir, vi, f"{ir_dir.relative_to(data)}/{name}"
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, (height, width), dtype=np.uint8),
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "random",
    )


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def bench_profile(profile: str, encoder, repeats: int, warmup: int) -> dict:
    from lure.inference import Fuser
    from lure.info import forward_flops

    model = seeded_model(profile)
    fuser = Fuser(model, encoder, device=None)
    ir, vi, source = pair(480, 640)
    fuser.text_embedding("pd", 0), fuser.text_embedding("pd", 1)
    for _ in range(warmup):
        fuser.fuse(ir, vi, tile="off")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fuser.fuse(ir, vi, tile="off")
        times.append(time.perf_counter() - start)
    flops = forward_flops(model.cpu(), 480, 640)
    model.to(fuser.device)
    seconds = statistics.median(times)
    return {
        "profile": profile,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "input": source,
        "repeats": repeats,
        "warmup": warmup,
        "ms_per_pair_median": seconds * 1000,
        "ms_all": [t * 1000 for t in times],
        "forward_gflop": flops / 1e9,
        "achieved_gflops_per_s": flops / seconds / 1e9,
    }


def bench_folder(encoder, pairs: int) -> dict:
    from PIL import Image

    from lure.checkpoint import save_checkpoint
    from lure.cli import main

    data = shared_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "demo.pt"
        save_checkpoint(ckpt, seeded_model("demo"), "demo")
        (tmp / "ir").mkdir()
        (tmp / "vi").mkdir()
        names = []
        if data is not None and (data / "msrs" / "ir").is_dir():
            names = sorted(p.name for p in (data / "msrs" / "ir").iterdir())[:pairs]
            for name in names:
                (tmp / "ir" / name).symlink_to(data / "msrs" / "ir" / name)
                (tmp / "vi" / name).symlink_to(data / "msrs" / "vi" / name)
        if not names:
            rng = np.random.default_rng(0)
            for i in range(pairs):
                Image.fromarray(rng.integers(0, 256, (480, 640), dtype=np.uint8)).save(
                    tmp / "ir" / f"{i}.png"
                )
                Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(
                    tmp / "vi" / f"{i}.png"
                )
            names = [f"{i}.png" for i in range(pairs)]
        args = [
            "fuse",
            "--ir-dir",
            str(tmp / "ir"),
            "--vi-dir",
            str(tmp / "vi"),
            "--out-dir",
            str(tmp / "out"),
            "--checkpoint",
            str(ckpt),
            "--no-progress",
        ]
        start = time.perf_counter()
        rc = main(args)
        first = time.perf_counter() - start
        start = time.perf_counter()
        main(args)
        second = time.perf_counter() - start
    n = len(names)
    return {
        "profile": "demo",
        "pairs": n,
        "size": "640x480",
        "exit_code": rc,
        "seconds_cold": first,
        "images_per_s_cold": n / first,
        "seconds_warm": second,
        "images_per_s_warm": n / second,
    }


def rss_child(profile: str, tile: str) -> None:
    """Subprocess body: load, fuse one 1280 x 1024 pair, print JSON with the peak RSS."""
    from lure.inference import Fuser
    from lure.text.sentence_encoder import load_sentence_encoder

    ir, vi, source = pair(1024, 1280)
    fuser = Fuser(seeded_model(profile), load_sentence_encoder(), device="cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    fuser.fuse(ir, vi, tile=tile)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "profile": profile,
                "tile": tile,
                "input": source,
                "tiled": fuser.tiling.active(1024, 1280) if tile == "auto" else tile == "on",
                "tile_size": fuser.tiling.tile,
                "overlap": fuser.tiling.overlap,
                "seconds": seconds,
                "peak_rss_mib_before_fuse": before / 1024,
                "peak_rss_mib": peak / 1024,
            }
        )
    )


def bench_rss(profile: str, modes: list[str], timeout: int) -> list[dict]:
    results = []
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, __file__, "--rss-child", profile, "--rss-tile", mode],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        if proc.returncode != 0:
            results.append({"profile": profile, "tile": mode, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"peak RSS ({profile}, tile {mode}): {results[-1]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="+", default=["demo", "real", "paper"])
    parser.add_argument("--demo-repeats", type=int, default=5)
    parser.add_argument("--paper-repeats", type=int, default=1)
    parser.add_argument("--folder-pairs", type=int, default=5)
    parser.add_argument("--rss-modes", nargs="+", default=["auto", "off"])
    parser.add_argument("--rss-timeout", type=int, default=7200)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rss-tile", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    retain_freed_memory()
    if args.rss_child:
        rss_child(args.rss_child, args.rss_tile)
        return 0

    from lure.text.sentence_encoder import load_sentence_encoder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = load_sentence_encoder(device=device)
    report: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": device,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    report["matmul_gflops_per_s_before"] = matmul_gflops()
    report["latency"] = {}
    for profile in args.profiles:
        repeats = args.paper_repeats if profile == "paper" else args.demo_repeats
        warmup = 0 if profile == "paper" else 1
        report["latency"][profile] = bench_profile(profile, encoder, repeats, warmup)
        print(
            f"latency {profile}: {report['latency'][profile]['ms_per_pair_median']:.0f} ms per 640x480 pair",
            flush=True,
        )
    report["matmul_gflops_per_s_after"] = matmul_gflops()
    matmul = max(report["matmul_gflops_per_s_before"], report["matmul_gflops_per_s_after"])
    report["flop_efficiency"] = {p: r["achieved_gflops_per_s"] / matmul for p, r in report["latency"].items()}
    if not args.skip_folder:
        report["folder"] = bench_folder(encoder, args.folder_pairs)
        print(f"folder mode: {report['folder']['images_per_s_warm']:.3f} images/s", flush=True)
    if not args.skip_rss:
        report["peak_rss"] = bench_rss("paper", args.rss_modes, args.rss_timeout)
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
