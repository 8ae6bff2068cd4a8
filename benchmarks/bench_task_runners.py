"""Shard building with the thread runner against a local Dask cluster of worker processes.

Builds the same folder of infrared/visible pairs with ``data.task_runner: threads`` (2 threads) and
``dask`` (2 worker processes, 1 thread each), checks that both write the same bytes, and records
the wall times. Data: the RoadScene pairs of ``../shared/data`` when present, else generated
640x480 demo scenes.

Usage: ``python benchmarks/bench_task_runners.py [--pairs 96] [--workers 2]``; writes
``benchmarks/results/task_runners.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from data_prep.sources.demo import render_scene  # noqa: E402
from lure.evaluation.io import atomic_write_json  # noqa: E402
from lure.image_io import list_images, write_image  # noqa: E402
from lure.paths import shared_data_dir  # noqa: E402
from pipelines.flows.build_datasets import build_datasets  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "task_runners.json"


def _pairs(root: Path, count: int) -> str:
    """A folder ``root/{ir,vi}`` of ``count`` pairs; returns what it holds."""
    shared = shared_data_dir()
    (root / "ir").mkdir(parents=True)
    (root / "vi").mkdir(parents=True)
    if shared and (shared / "roadscene" / "ir").is_dir():
        stems = list(list_images(shared / "roadscene" / "ir"))[:count]
        for side in ("ir", "vi"):
            files = list_images(shared / "roadscene" / side)
            for stem in stems:
                shutil.copyfile(files[stem], root / side / files[stem].name)
        return f"RoadScene ({len(stems)} real pairs)"
    for i in range(count):
        ir, vi = render_scene(i, height=480, width=640)
        write_image(root / "ir" / f"{i:04d}.png", ir)
        write_image(root / "vi" / f"{i:04d}.png", vi)
    return f"generated 640x480 scenes ({count})"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = _pairs(tmp / "src", args.pairs)
        base = {"seed": 0, "samples_per_shard": 16, "min_shards": 2,
                "datasets": {"pairs": {"source": "folder", "root": str(tmp / "src"), "split": "train"}},
                "degraded_eval": {"datasets": ["pairs"], "split": "train", "tasks": ["ll+lc"]}}
        runs = {
            "threads": base | {"task_runner": "threads", "task_runner_options": {"max_workers": args.workers}},
            "dask": base | {"task_runner": "dask", "task_runner_options": {"cluster_kwargs": {
                "n_workers": args.workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}}},
        }
        results = {}
        for name, config in runs.items():
            start = time.perf_counter()
            build_datasets(config, out_dir=str(tmp / name))
            results[name] = {"wall_s": round(time.perf_counter() - start, 2)}
        same = _files(tmp / "threads" / "shards") == _files(tmp / "dask" / "shards")
    report = {
        "what": "build one folder data set (+ its ll+lc degraded set) into shards: thread runner vs local "
                "Dask cluster of worker processes (wall time includes starting the cluster)",
        "data": data, "workers": args.workers, "runs": results, "same_bytes": same,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    atomic_write_json(RESULTS, report)
    print(report)
    if not same:
        raise SystemExit("thread and Dask builds differ")


if __name__ == "__main__":
    main()
