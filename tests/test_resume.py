"""Exact resume: the loaders' batches depend on (seed, epoch, position) only, and a training
stage stopped by a signal at any step and rerun ends with the weights and metrics of the
uninterrupted run."""

from __future__ import annotations

import copy
import hashlib
import os
import signal
from pathlib import Path

import pytest
import torch

from lure.checkpoint import read_checkpoint
from lure.data.loaders import fusion_loader, shard_urls, stage1_loader
from lure.training import trainer as trainer_module
from lure.training.trainer import StageOutputs, train
from tests.model_helpers import write_demo_shards
from tests.test_training import tiny_params


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Demo shards: 8 training scenes in 2 shards per kind, 4 test scenes."""
    return write_demo_shards(tmp_path_factory.mktemp("data"), samples_per_shard=24, min_shards=2)


def _same(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        x["key"] == y["key"] and all(torch.equal(x[k], y[k]) for k in x if isinstance(x[k], torch.Tensor))
        for x, y in zip(a, b))


def test_batches_depend_on_seed_epoch_and_position_only(shards):
    train_dir = shards / "shards/demo/train"
    # one process and at most one worker; split streams (workers > 1, world_size > 1): tests/test_loader_split.py
    fusion = [fusion_loader(train_dir, crop=24, batch_size=3, workers=w, seed=5) for w in (0, 1)]
    epoch = list(fusion[0].iterate(2))
    assert [len(b["key"]) for b in epoch] == [3, 3, 2]  # 8 pairs: full batches but the last
    assert _same(epoch, list(fusion[1].iterate(2)))  # one worker process reads the in-process batches
    assert _same(epoch[1:], list(fusion[1].iterate(2, 1))) and _same(epoch[2:], list(fusion[0].iterate(2, 2)))
    assert list(fusion[0].iterate(2, 3)) == []
    stream = trainer_module.DataStream(fusion[1], epoch=2, batch=3)  # stopped at an epoch's end
    assert _same([next(stream)], list(fusion[0].iterate(3))[:1]) and stream.position == {"epoch": 3, "batch": 1}
    assert not _same(epoch, list(fusion[0].iterate(3)))  # another epoch, another order

    urls = shard_urls(train_dir, "stage1")
    restoration = [stage1_loader(urls, 24, 4, w, {"ll": 1.0, "lc": 2.0, "pd": 1.0}, seed=1, epoch_length=5)
                   for w in (0, 1)]
    batches = list(restoration[0].iterate(0))
    assert len(batches) == 5
    assert _same(batches, list(restoration[1].iterate(0)))
    assert _same(batches[3:], list(restoration[1].iterate(0, 3)))


def _weights_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for tensor in read_checkpoint(path)["model"].values():
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _logged(root: Path, stage: str) -> dict[str, str]:
    """Every DVCLive series of a run (training losses, learning rate, validation), as written."""
    plots = root / "dvclive" / stage / "plots" / "metrics"
    return {str(p.relative_to(plots)): p.read_text() for p in sorted(plots.rglob("*.tsv"))}


def _stop_at(monkeypatch, method: str, step: int) -> None:
    """Send this process SIGTERM while the trainer computes step ``step`` (the trainer's handler
    turns it into a resume state written after that step and SystemExit)."""
    original = getattr(trainer_module.Trainer, method)

    def inputs(self, batch):
        if self.step + 1 == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(trainer_module.Trainer, method, inputs)


def _run_interrupted(monkeypatch, stage: str, params: dict, root: Path, data: Path, method: str, step: int) -> dict:
    outputs = StageOutputs.default(stage, root)
    with monkeypatch.context() as patch:
        _stop_at(patch, method, step)
        with pytest.raises(SystemExit) as stopped:
            train(stage, params, outputs, data_root=data, progress=False)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert read_checkpoint(outputs.resume_path)["step"] == step and not outputs.model_path.exists()
    return train(stage, params, outputs, data_root=data, progress=False)


@pytest.mark.slow
def test_stopped_and_resumed_runs_equal_the_uninterrupted_run(shards, tmp_path, monkeypatch, capsys):
    """Stage 1 (in-process loader) stopped at step 7 of 12 and stage 2 (one loader worker, 4
    batches per epoch) stopped at step 6 of 10 (mid-epoch, after an epoch boundary), with
    validation and checkpoints in between, end bit-identical to the uninterrupted runs: weights,
    final metrics and every logged series."""
    params = tiny_params(**{"stage1.steps": 12, "stage1.eval_every": 4, "stage1.log_every": 3,
                            "stage1.checkpoint_every": 5, "stage2.steps": 10, "stage2.eval_every": 3,
                            "stage2.log_every": 3, "stage2.checkpoint_every": 5, "stage2.workers": 1})
    data = shards
    base = {stage: train(stage, params, StageOutputs.default(stage, tmp_path / "a"), data_root=data, progress=False)
            for stage in ("stage1", "stage2")}

    resumed = _run_interrupted(monkeypatch, "stage1", params, tmp_path / "b", data, "_restoration_inputs", 7)
    assert "resuming from" in capsys.readouterr().out
    assert resumed == base["stage1"]
    assert _weights_sha256(tmp_path / "b/checkpoints/stage1/model.pt") == \
        _weights_sha256(tmp_path / "a/checkpoints/stage1/model.pt")
    assert _logged(tmp_path / "b", "stage1") == _logged(tmp_path / "a", "stage1")

    assert _run_interrupted(monkeypatch, "stage2", params, tmp_path / "b", data, "_fusion_inputs", 6) == base["stage2"]
    assert _weights_sha256(tmp_path / "b/checkpoints/stage2/model.pt") == \
        _weights_sha256(tmp_path / "a/checkpoints/stage2/model.pt")
    assert _logged(tmp_path / "b", "stage2") == _logged(tmp_path / "a", "stage2")


def test_validation_leaves_every_rng_as_it_found_it(shards, tmp_path, capsys):
    """(And a resume state of the previous format is named and ignored.)"""
    import random

    import numpy as np

    from lure.checkpoint import atomic_torch_save

    params = tiny_params(**{"stage1.steps": 0})
    outputs = StageOutputs.default("stage1", tmp_path)
    atomic_torch_save({"format": "lure-resume-1", "step": 3}, outputs.resume_path)
    trainer = trainer_module.Trainer("stage1", params, outputs, trainer_module.setup_distributed("cpu"), shards,
                                     progress=False)
    assert not trainer.resumed and "written by an older version (lure-resume-1)" in capsys.readouterr().out
    before = copy.deepcopy(trainer_module.capture_rng(trainer.text_generator))
    torch.rand(3), np.random.rand(2), random.random(), torch.rand(2, generator=trainer.text_generator)
    after_draws = [torch.rand(3), np.random.rand(2), random.random(), torch.rand(2, generator=trainer.text_generator)]
    trainer_module.restore_rng(before, trainer.text_generator)
    trainer.validate()
    torch.rand(3), np.random.rand(2), random.random(), torch.rand(2, generator=trainer.text_generator)
    again = [torch.rand(3), np.random.rand(2), random.random(), torch.rand(2, generator=trainer.text_generator)]
    assert torch.equal(after_draws[0], again[0]) and np.array_equal(after_draws[1], again[1])
    assert after_draws[2] == again[2] and torch.equal(after_draws[3], again[3])
