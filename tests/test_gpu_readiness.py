"""The multi-GPU training path, emulated on the CPU: device selection, resume on fewer GPUs, the
GPU-only refusal, the global batch, one DDP wrapper, one host synchronisation per step, and a
non-finite loss on one of two gloo processes stopping both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lure.checkpoint import read_checkpoint
from lure.paths import REPO_ROOT
from lure.training import resume
from lure.training.config import Stage1Config
from lure.training.distributed import (
    configure_backends,
    resolve_device,
    setup_distributed,
    teardown_distributed,
)
from lure.training.objectives import CombinedObjective
from lure.training.trainer import StageOutputs, Trainer, train
from tests.model_helpers import write_demo_shards
from tests.test_training import _train_cmd, _write_params, tiny_params


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """Demo shards in 2 shards per split (two ranks can each read their own)."""
    return write_demo_shards(tmp_path_factory.mktemp("data"), samples_per_shard=4, min_shards=2)


# -- 5. one rule for the device ----------------------------------------------------------------
@pytest.mark.parametrize("requested, world, local_rank, expected", [
    (None, 1, 0, "cuda:0"), (None, 8, 5, "cuda:5"), ("cuda", 8, 3, "cuda:3"), ("auto", 2, 1, "cuda:1"),
    ("cuda:1", 1, 0, "cuda:1"), ("cpu", 8, 3, "cpu"),
])
def test_device_follows_local_rank_under_torchrun(requested, world, local_rank, expected):
    assert resolve_device(requested, world, local_rank, cuda_available=True, device_count=8) == torch.device(expected)


def test_device_resolution_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"--device cuda:0 would put all 8 torchrun processes on one GPU"):
        resolve_device("cuda:0", 8, 3, cuda_available=True, device_count=8)
    with pytest.raises(ValueError, match=r"GPU 4 is wanted \(LOCAL_RANK 4\) but only 4 GPU\(s\) are visible"):
        resolve_device(None, 8, 4, cuda_available=True, device_count=4)
    with pytest.raises(ValueError, match=r"--device cuda: torch .* sees no CUDA device.*install a CUDA build"):
        resolve_device("cuda", 1, 0, cuda_available=False, device_count=0)
    assert resolve_device(None, 2, 1, cuda_available=False, device_count=0) == torch.device("cpu")


# -- 2. resume on fewer GPUs ------------------------------------------------------------------------
class FakeCuda:
    """One visible GPU: ``set_rng_state`` fails for another index, as torch does."""

    def __init__(self) -> None:
        self.restored: list[tuple[torch.Tensor, int]] = []

    def set_rng_state(self, state: torch.Tensor, device: int | str = "cuda") -> None:
        index = device if isinstance(device, int) else (torch.device(device).index or 0)
        if index >= 1:
            raise IndexError(f"CUDA device {index} does not exist (1 visible)")
        self.restored.append((state, index))


@pytest.mark.parametrize("saved_with", ["older version, 4 GPUs", "this version, rank 0 of 4"])
def test_resume_state_saved_with_more_gpus_restores_on_one(monkeypatch, saved_with):
    generator = torch.Generator().manual_seed(3)
    state = resume.capture_rng(generator)  # a CPU run: no CUDA state
    assert state["cuda"] is None
    per_gpu = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]
    state["cuda"] = per_gpu if saved_with.startswith("older") else per_gpu[0]
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", fake.set_rng_state)
    resume.restore_rng(state, torch.Generator())
    assert len(fake.restored) == 1 and torch.equal(fake.restored[0][0], per_gpu[0])


def test_saved_cuda_state_of_a_missing_device_is_skipped():
    assert resume.saved_cuda_rng([torch.zeros(2)], 3) is None
    assert resume.saved_cuda_rng(None, 0) is None


# -- 6. no silent CPU fallback ------------------------------------------------------------------------
def test_gpu_profile_refuses_the_cpu_unless_allowed(demo_data, tmp_path, capsys):
    params = tiny_params(**{"stage1.require_gpu": True, "stage1.steps": 1})
    with pytest.raises(ValueError, match=r"is meant for GPUs .* CPU-only build|is meant for GPUs .*install a CUDA"):
        train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    assert not (tmp_path / "checkpoints").exists()
    train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False,
          allow_cpu=True)
    out = capsys.readouterr().out
    assert "[stage1] device cpu; torch " in out and "precision float32 (bf16 autocast runs on GPUs only)" in out
    assert "global batch 2 = 2 per process x 1" in out and "validation on rank 0 only: 1 stage-1 samples" in out
    throughput = __import__("json").loads((tmp_path / "checkpoints/stage1/throughput.json").read_text())
    assert throughput["steps_timed"] == 1 and throughput["samples_per_s"] > 0
    assert throughput["precision"] == "fp32" and throughput["peak_memory_bytes"] is None


def test_paper_profile_requires_a_gpu():
    from lure.config import load_params
    from lure.training.config import TrainingConfig

    config = TrainingConfig.from_params(load_params(profile="paper"))
    assert config.stage1.require_gpu and config.stage2.require_gpu


# -- 8. the global batch ------------------------------------------------------------------------------
def test_global_batch_is_split_over_the_processes():
    base = dict(train_sets=["a"], eval_sets=["b"], steps=1, batch_size=8, crop=64, lr=1e-3,
                task_gradient_weight=0.1, unified_weight=0.1, recon_weight=1, text_weight=0.1)
    assert Stage1Config.from_dict(base).per_rank_batch(8) == 8  # per process when no global batch is set
    config = Stage1Config.from_dict({**base, "global_batch_size": 64})
    assert config.per_rank_batch(8) == 8 and config.per_rank_batch(2) == 32
    with pytest.raises(ValueError, match=r"global_batch_size 64 cannot be split over 3 processes"):
        config.per_rank_batch(3)


# -- 9. deterministic mode ------------------------------------------------------------------------------
def test_deterministic_mode_switches_torch_to_deterministic_algorithms():
    try:
        configure_backends(torch.device("cpu"), cudnn_benchmark=True, tf32=True, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)


# -- 10. one DDP wrapper for the single-stage ablation -----------------------------------------------------
def test_single_stage_ablation_has_one_objective_module(demo_data, tmp_path):
    params = tiny_params(**{"stage1.single_stage": True})
    ctx = setup_distributed("cpu")
    try:
        trainer = Trainer("stage1", params, StageOutputs.default("stage1", tmp_path), ctx, demo_data, False)
        assert isinstance(trainer.wrapped, CombinedObjective)
        assert list(trainer.wrapped.objectives) == ["restoration", "fusion"]
        shared = {id(p) for p in trainer.wrapped.parameters()}
        assert shared == {id(p) for p in trainer.model.parameters()}  # one model, counted once
    finally:
        teardown_distributed(ctx)


# -- the hot loop: one host synchronisation per step --------------------------------------------------------
def test_a_training_step_reads_the_device_once(demo_data, tmp_path, monkeypatch):
    """Between two log lines a step reads a device value once (the ranks' agreement on a finite loss
    and a stop signal). Float and bool tensors are what would live on a GPU (host metadata is int64);
    AdamW's step counters are host tensors on GPUs too (torch.optim ``_get_value``) and not counted."""
    import traceback

    params = tiny_params(**{"stage1.steps": 6, "stage1.log_every": 100, "stage1.checkpoint_every": 100})
    reads: list[str] = []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            caller = traceback.extract_stack(limit=2)[0]
            optimizer_step = caller.name == "_get_value" and caller.filename.endswith("optim/optimizer.py")
            if (self.is_floating_point() or self.dtype == torch.bool) and not optimizer_step:
                reads.append(f"{name} in {caller.name}")
            return original(self, *args, **kwargs)
        return method

    ctx = setup_distributed("cpu")
    try:
        trainer = Trainer("stage1", params, StageOutputs.default("stage1", tmp_path), ctx, demo_data, False)
        streams = trainer._streams()
        from tqdm import tqdm

        from lure.training.resume import StopSignal

        bar = tqdm(disable=True)
        trainer._train_step(streams, StopSignal(), bar, None, 0.0)  # warm-up (first calls)
        for name in ("item", "tolist", "__float__", "__bool__", "__int__", "numpy", "cpu"):
            monkeypatch.setattr(torch.Tensor, name, counting(name))
        for _ in range(3):
            trainer._train_step(streams, StopSignal(), bar, None, 0.0)
    finally:
        monkeypatch.undo()
        teardown_distributed(ctx)
    assert reads == ["tolist in any_rank_flags"] * 3, reads


# -- 3. a non-finite loss on one rank stops every rank ---------------------------------------------------------
@pytest.mark.slow
def test_non_finite_loss_on_one_gloo_rank_stops_both(demo_data, tmp_path):
    params = tiny_params(**{"stage1.steps": 8, "stage1.checkpoint_every": 100})
    params_file = _write_params(tmp_path / "params.yaml", params)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO_ROOT / "tests/fault_injection.py"), "--nan-rank", "1", "--nan-step", "3", "--",
           *_train_cmd(params_file, tmp_path / "run", demo_data)[3:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    lines = [line for line in output.splitlines() if line.startswith("train stage1: error: [stage1] non-finite loss")]
    assert len(lines) == 2, output[-4000:]  # one line on each rank
    assert any("on rank 1" in line for line in lines) and any("on another rank" in line for line in lines)
    assert all("at step 3;" in line for line in lines)
    saved = read_checkpoint(tmp_path / "run/checkpoints/stage1/resume/last.pt")
    assert saved["step"] == 2 and len(saved["ranks"]) == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


# -- 4. bounded validation ------------------------------------------------------------------------------------
def test_stage1_validation_reads_the_first_samples_per_task_only(demo_data):
    from lure.data.loaders import iter_stage1_samples
    from lure.training.trainer import _manifest_tasks

    split = demo_data / "shards/demo/test"
    full = list(iter_stage1_samples(split))
    expected, counts = [], {}
    for sample in full:  # the selection the trainer made before: the first sample of each task
        if counts.get(sample["task"], 0) < 1:
            counts[sample["task"]] = 1
            expected.append(sample["key"])
    tasks = _manifest_tasks(["demo/test"], demo_data)
    assert tasks == {s["task"] for s in full}
    bounded = [s["key"] for s in iter_stage1_samples(split, per_task=1, tasks=tasks)]
    assert bounded == expected
    # the reading stops once every listed task has its samples
    assert [s["key"] for s in iter_stage1_samples(split, per_task=1, tasks={full[0]["task"]})] == [full[0]["key"]]
    assert _manifest_tasks(["nonexistent/test"], demo_data) is None
