"""Time the thirteen reference metrics (and NIQE) on one 640 x 480 IR/VI/fused triple.

Uses the MSRS pair ``00537D`` from ``../shared/data`` when present (fused = pixel mean),
otherwise a seeded synthetic triple. Reports the median over ``--runs`` repetitions of wall
time and process CPU time, for ``fusion_metrics`` (all thirteen together, shared statistics)
and for each metric function alone. Writes ``benchmarks/results/metrics.json`` atomically.

    python benchmarks/bench_metrics.py [--runs 15] [--out benchmarks/results/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lure.evaluation.io import atomic_write_json
from lure.metrics import niqe as niqe_module
from lure.metrics import reference as ref
from lure.paths import REPO_ROOT, shared_data_dir

PER_METRIC: dict[str, Callable[..., float]] = {
    "EN": lambda f, a, b: ref.entropy(f),
    "SD": lambda f, a, b: ref.standard_deviation(f),
    "SF": lambda f, a, b: ref.spatial_frequency(f),
    "AG": lambda f, a, b: ref.average_gradient(f),
    "MSE": ref.mean_squared_error,
    "PSNR": ref.psnr,
    "CC": ref.correlation_coefficient,
    "SCD": ref.scd,
    "MI": ref.mutual_information,
    "SSIM": ref.ssim,
    "MS_SSIM": ref.ms_ssim,
    "Qabf": ref.qabf,
    "VIF": ref.vif,
}


def load_triple() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(fused, ir, vi, source description), 480 x 640 uint8 grey."""
    data = shared_data_dir()
    if data is not None:
        ir_path, vi_path = data / "msrs" / "ir" / "00537D.png", data / "msrs" / "vi" / "00537D.png"
        if ir_path.is_file() and vi_path.is_file():
            from PIL import Image

            def grey(path: Path) -> np.ndarray:
                with Image.open(path) as image:
                    if image.mode == "L":
                        return np.asarray(image)
                    return ref.rgb2gray_matlab(np.asarray(image.convert("RGB")))

            ir, vi = grey(ir_path), grey(vi_path)
            if ir.shape == (480, 640) and vi.shape == (480, 640):
                fused = ((ir.astype(np.uint16) + vi) // 2).astype(np.uint8)
                return fused, ir, vi, "MSRS 00537D (fused = pixel mean)"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:480, 0:640]
    base = 128 + 60 * np.sin(xx / 37.0) + 50 * np.cos(yy / 23.0)
    ir = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    vi = np.clip(255 - 0.8 * base + rng.normal(0, 15, base.shape), 0, 255).astype(np.uint8)
    fused = ((ir.astype(np.uint16) + vi) // 2).astype(np.uint8)
    return fused, ir, vi, "synthetic seeded triple (../shared/data absent)"


def time_call(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()  # warm-up (imports, caches)
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {
        "median_wall_ms": round(1000 * statistics.median(wall), 2),
        "min_wall_ms": round(1000 * min(wall), 2),
        "median_cpu_ms": round(1000 * statistics.median(cpu), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "metrics.json")
    args = parser.parse_args()

    fused, ir, vi, source = load_triple()
    results: dict[str, object] = {
        "image": {"height": int(fused.shape[0]), "width": int(fused.shape[1]), "source": source},
        "runs": args.runs,
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
    }
    results["fusion_metrics_all13"] = time_call(lambda: ref.fusion_metrics(fused, ir, vi), args.runs)
    results["values"] = {k: round(v, 6) for k, v in ref.fusion_metrics(fused, ir, vi).items()}
    per_metric = {}
    for name, fn in tqdm(PER_METRIC.items(), desc="per metric", leave=False):
        per_metric[name] = time_call(lambda fn=fn: fn(fused, ir, vi), args.runs)
    results["per_metric_alone"] = per_metric
    results["sum_of_per_metric_median_wall_ms"] = round(
        sum(v["median_wall_ms"] for v in per_metric.values()), 2
    )

    params_path = niqe_module.default_niqe_params_path()
    if params_path is not None and params_path.is_file():
        params = niqe_module.load_niqe_params(params_path)
        rgb = np.repeat(fused[:, :, None], 3, axis=2)
        results["niqe_640x480"] = time_call(
            lambda: niqe_module.calculate_niqe(rgb, params), max(3, args.runs // 3)
        )
    else:
        results["niqe_640x480"] = "skipped: niqe_pris_params.npz not found in ../shared/data/niqe"

    atomic_write_json(args.out, results)
    print(json.dumps({k: results[k] for k in ("image", "fusion_metrics_all13", "niqe_640x480")}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
