"""``lure doctor`` / ``python -m pipelines.preflight``: the machine, data, batch and time report."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
import yaml

import lure.doctor as doctor_module
from lure.cli import main
from lure.paths import REPO_ROOT
from lure.training.config import Stage1Config

CPU_ONLY = {"version": "2.13.0+cpu", "cuda": None, "build": "CPU-only build", "cudnn": None, "devices": []}
ONE_H100 = {"version": "2.13.0+cu128", "cuda": "12.8", "build": "CUDA 12.8", "cudnn": 91000,
            "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 85 * 1024**3,
                         "memory_free_bytes": 84 * 1024**3, "compute_capability": "9.0", "bf16": True}]}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _manifest(root, dataset: str, split: str) -> None:
    path = root / "shards" / dataset / split
    path.mkdir(parents=True)
    (path / "manifest.json").write_text("{}")


def test_demo_json_with_measurement_has_every_field(capsys, tmp_path):
    _manifest(tmp_path, "demo", "train")
    code, out, _ = _run(capsys, "--profile", "demo", "--json", "--data-root", str(tmp_path), "--device", "cpu",
                        "--measure-steps", "1")
    assert code == 0
    report = json.loads(out)
    assert report["profile"] == "demo" and report["device"] == "cpu" and report["nproc"] >= 1
    torch_info = report["torch"]
    assert torch_info["version"]
    assert torch_info["build"] == "CPU-only build" or torch_info["build"].startswith(("CUDA ", "ROCm "))
    for device in report["devices"]:
        assert device["memory_total_bytes"] > 0 and device["name"] and "." in device["compute_capability"]
    assert report["cpu"]["cores"] >= 1 and report["cpu"]["usable_cores"] >= 1
    assert report["memory"]["available_bytes"] > 0 and report["memory"]["total_bytes"] >= report["memory"]["available_bytes"]
    assert report["disk"]["free_bytes"] > 0
    datasets = {row["name"]: row for row in report["datasets"]}
    assert set(datasets) == {"demo", "roadscene", "msrs"}
    demo = datasets["demo"]
    assert demo["provision"] == "generated" and demo["built_splits"] == ["train"]
    assert demo["missing_splits"] == ["test"] and not demo["ready"]
    assert report["vgg16"]["needed"] is False  # demo: perceptual_weight 0
    nproc = report["nproc"]
    for stage, steps in (("stage1", 800), ("stage2", 150)):
        plan = report["stages"][stage]
        assert plan["steps"] == steps and plan["per_rank_batch"] == 4 and plan["global_batch"] == 4 * nproc
        assert plan["crop"] == 64 and plan["bf16"] is False  # fp32 on a CPU
    estimate = report["estimate"]
    assert estimate["measured"] and set(estimate["phases"]) == {"stage1", "stage2"}
    total = 0.0
    for row in estimate["phases"].values():
        assert row["step_s"] > 0 and row["precision"] == "fp32" and row["steps_timed"] == 1
        assert row["seconds"] == pytest.approx(row["steps"] * row["step_s"])
        assert row["hours"] == pytest.approx(row["seconds"] / 3600)
        assert row["peak_memory_bytes"] is None  # CPU
        total += row["seconds"]
    assert estimate["total_seconds"] == pytest.approx(total)
    assert estimate["total_hours"] == pytest.approx(total / 3600)
    assert any("demo/test not built" in w for w in report["warnings"])


def test_paper_without_measurement_on_a_cpu_only_build(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_module, "torch_report", lambda: dict(CPU_ONLY))
    code, out, _ = _run(capsys, "--profile", "paper", "--no-measure", "--nproc", "8", "--json",
                        "--data-root", str(tmp_path))
    assert code == 0
    report = json.loads(out)
    assert report["nproc"] == 8 and report["estimate"] == {"measured": False, "reason": "--no-measure"}
    for stage in ("stage1", "stage2"):
        plan = report["stages"][stage]
        assert plan["per_rank_batch"] == 8 and plan["nproc"] == 8 and plan["global_batch"] == 64
        assert plan["bf16_requested"] and not plan["bf16"]
    warnings = report["warnings"]
    assert warnings[0].startswith("paper profile on a CPU-only torch build: install a CUDA build")
    put_at = (tmp_path / "downloads" / "LOLdataset.zip").resolve()
    assert any(w.startswith("data set lol needs a manual download") and str(put_at) in w for w in warnings)
    assert any(w.startswith("msrs/test, msrs/train not built: run `dvc repro build_data`") for w in warnings)
    vgg = report["vgg16"]
    assert vgg["needed"] is True
    assert vgg["found"] or any(w.startswith("VGG16 weights missing") for w in warnings)
    assert all("\n" not in w for w in warnings)


def test_paper_is_not_timed_on_a_cpu_unless_asked(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_module, "torch_report", lambda: dict(CPU_ONLY))
    code, out, _ = _run(capsys, "--profile", "paper", "--json", "--data-root", str(tmp_path))
    assert code == 0
    estimate = json.loads(out)["estimate"]
    assert not estimate["measured"] and "--device cpu times it anyway" in estimate["reason"]


def test_paper_on_one_gpu_planned_for_eight(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_module, "torch_report", lambda: json.loads(json.dumps(ONE_H100)))
    code, out, _ = _run(capsys, "--profile", "paper", "--no-measure", "--nproc", "8", "--json",
                        "--data-root", str(tmp_path))
    assert code == 0
    report = json.loads(out)
    assert report["device"] == "cuda" and report["stages"]["stage1"]["bf16"] is True
    assert not any("CPU-only" in w for w in report["warnings"])
    assert any(w.startswith("--nproc 8 but only 1 CUDA device(s) visible") for w in report["warnings"])


@pytest.mark.skipif("global_batch_size" not in {f.name for f in fields(Stage1Config)},
                    reason="the trainer's global_batch_size key has not landed in lure/training/config.py yet")
def test_global_batch_size_sets_the_per_rank_batch(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor_module, "torch_report", lambda: dict(CPU_ONLY))
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["profiles"]["paper"]["stage1"]["global_batch_size"] = 64
    raw["profiles"]["paper"]["stage2"]["global_batch_size"] = 60
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    code, out, _ = _run(capsys, "--params", str(params), "--profile", "paper", "--no-measure", "--nproc", "8",
                        "--json", "--data-root", str(tmp_path))
    assert code == 0
    report = json.loads(out)
    s1, s2 = report["stages"]["stage1"], report["stages"]["stage2"]
    assert (s1["per_rank_batch"], s1["global_batch"]) == (8, 64)
    assert (s2["per_rank_batch"], s2["global_batch"]) == (None, None)
    assert any(w.startswith("stage2: global_batch_size 60 cannot be split over 8 processes") for w in report["warnings"])


def test_human_screen_prints(capsys, tmp_path):
    code, out, _ = _run(capsys, "--profile", "demo", "--no-measure", "--data-root", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("lure doctor: profile demo")
    assert any(line.startswith("torch ") for line in lines)
    assert any(line.strip().startswith("demo ") for line in lines)
    assert any(line.startswith("  stage1: 800 steps, per-rank batch 4") for line in lines)
    assert "estimate: not measured (--no-measure)" in lines
    assert "warnings:" in lines


def test_preflight_is_lure_doctor(capsys, tmp_path):
    from pipelines.preflight import main as preflight

    assert preflight(["--profile", "demo", "--no-measure", "--json", "--data-root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["profile"] == "demo"


def test_bad_profile_exits_2_with_one_line(capsys):
    code, out, err = _run(capsys, "--profile", "no-such-profile", "--no-measure")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("lure doctor: error: unknown profile 'no-such-profile'")
