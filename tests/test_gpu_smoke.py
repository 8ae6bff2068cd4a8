"""``benchmarks/gpu_smoke.sh``: the first-GPU-day smoke test, its figures and its CPU dry run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lure.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_smoke.py"


def _module():
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_smoke = _module()


def _throughput(**overrides) -> dict:
    t = {"stage": "stage1", "device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3", "world_size": 2,
         "per_rank_batch": 8, "global_batch": 16, "crop": 128, "precision": "bf16", "steps_timed": 295,
         "step_s_median": 0.05, "step_s_mean": 0.052, "loader_wait_s_mean": 0.002, "loader_wait_fraction": 0.04,
         "samples_per_s": 300.0, "peak_memory_bytes": 12 * 1024**3}
    return t | overrides


def test_peak_table_by_device_name():
    assert gpu_smoke.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gpu_smoke.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu_smoke.peak_tflops("NVIDIA H200") == 989.0
    assert gpu_smoke.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gpu_smoke.peak_tflops("Some Future GPU") is None and gpu_smoke.peak_tflops(None) is None


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_grouped_convolution_backward_counts_twice_the_forward(groups):
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, groups=groups)
    x = torch.rand(2, 32, 16, 16, requires_grad=True)
    forward = FlopCounterMode(display=False)
    with forward:
        y = conv(x)
    backward = FlopCounterMode(display=False,
                               custom_mapping={torch.ops.aten.convolution_backward: gpu_smoke._grouped_conv_backward_flop})
    with backward:
        y.sum().backward()
    assert backward.get_total_flops() == 2 * forward.get_total_flops()  # input and weight gradients


def test_derived_figures_from_throughput():
    flops = {"forward": 40 * 10**9, "total": 120 * 10**9}
    row = gpu_smoke.derive({"name": "2proc_stage1", "nproc": 2, "throughput": _throughput()}, flops)
    assert row["samples_per_s"] == 300.0 and row["peak_memory_bytes"] == 12 * 1024**3
    assert row["achieved_tflops"] == pytest.approx(36.0)  # 120 GFLOP x 300 samples/s
    assert row["peak_tflops_per_device"] == 989.0
    assert row["fraction_of_peak"] == pytest.approx(36.0 / (2 * 989.0))
    assert row["bound"] == "gpu" and row["loader_wait_s_per_step"] == 0.002
    slow = gpu_smoke.derive({"name": "x", "nproc": 1, "throughput": _throughput(loader_wait_fraction=0.3)}, flops)
    assert slow["bound"] == "loader"
    cpu = gpu_smoke.derive({"name": "x", "nproc": 1, "throughput": _throughput(device="cpu", device_name="cpu",
                                                                               precision="fp32",
                                                                               peak_memory_bytes=None)}, flops)
    assert cpu["bound"] == "cpu" and cpu["fraction_of_peak"] is None and cpu["peak_tflops_per_device"] is None
    failed = gpu_smoke.derive({"name": "x", "nproc": 1, "throughput": None}, flops)
    assert failed["samples_per_s"] is None and failed["bound"] is None


def test_shell_wrapper_passes_its_arguments():
    done = subprocess.run(["bash", str(REPO_ROOT / "benchmarks" / "gpu_smoke.sh"), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "--dry-run" in done.stdout and "--out" in done.stdout


@pytest.mark.slow
def test_dry_run_trains_both_stages_and_writes_the_report(tmp_path):
    out = tmp_path / "results" / "gpu_smoke.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in out.parent.iterdir()] == ["gpu_smoke.json"]  # written atomically, nothing else
    report = json.loads(out.read_text())
    assert report["dry_run"] is True and report["doctor"]["profile"] == "paper"
    assert "error" not in report and "work" not in report  # the temporary folder is removed
    assert any("torchrun" in note and "skipped" in note for note in report["notes"])
    assert report["data"]["samples"]["lol"]["train"]["stage1"] > 0
    assert report["data"]["samples"]["msrs"]["train"]["fusion"] > 0
    runs = {row["name"]: row for row in report["runs"]}
    assert set(runs) == {"1proc_stage1", "1proc_stage2"}
    for row in runs.values():
        assert row["returncode"] == 0 and not row["timed_out"]
        t = row["throughput"]
        assert t["world_size"] == 1 and t["precision"] == "fp32" and t["device"] == "cpu"
        assert row["samples_per_s"] > 0 and row["flops_per_sample"] > row["forward_flops_per_sample"] > 0
        assert row["achieved_tflops"] > 0 and row["fraction_of_peak"] is None and row["peak_memory_bytes"] is None
        assert 0 <= row["loader_wait_fraction"] <= 1 and row["bound"] in ("loader", "cpu")
