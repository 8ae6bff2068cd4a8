"""Two-stage training (docs/paper-map.md#training): the real model, real demo shards, real loops."""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from data_prep.shards import write_parsed_split
from data_prep.sources import get_parser
from lure.checkpoint import read_checkpoint
from lure.config import load_params
from lure.paths import REPO_ROOT
from lure.training.trainer import NonFiniteLossError, StageOutputs, train
from tests.model_helpers import write_demo_shards

TINY_MODEL = {
    "widths": [8, 16, 16, 16], "latent_channels": [4, 8, 8, 8], "base_blocks": [1, 1, 1, 1],
    "branch_blocks": [1, 1, 1, 1], "decoder_blocks": [1, 1, 1, 1], "fusion_blocks": [1, 1, 1, 1],
    "heads": 2, "text_backbone_dim": 384, "text_dim": 16,
}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """Small demo shards (train + test splits) written without Prefect."""
    return write_demo_shards(tmp_path_factory.mktemp("data"), samples_per_shard=64, min_shards=1)


def tiny_params(**overrides) -> dict:
    params = copy.deepcopy(load_params(profile="demo"))
    params["model"] = dict(TINY_MODEL)
    for section in ("stage1", "stage2"):
        params[section].update(batch_size=2, crop=32, log_every=2, eval_every=1000, checkpoint_every=5,
                               warmup_steps=0, lr=2e-4)  # the paper's rate: these tests check mechanics, not speed
    params["stage1"]["eval_samples_per_task"] = 1
    params["stage2"]["eval_pairs"] = 2
    params["stage1"]["steps"] = 6
    params["stage2"]["steps"] = 4
    for key, value in overrides.items():
        section, name = key.split(".")
        params[section][name] = value
    return params


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_two_stage_training_end_to_end(demo_data, tmp_path):
    params = tiny_params()
    metrics1 = train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    assert {"psnr_ll", "psnr_input_ll", "psnr_pd", "latent_cosine"} <= set(metrics1)
    stage1 = read_checkpoint(tmp_path / "checkpoints/stage1/model.pt")
    assert stage1["step"] == 6 and stage1["profile"] == "demo"
    live = json.loads((tmp_path / "dvclive/stage1/metrics.json").read_text())
    assert "initial" in live and "latent_cosine" in live["initial"] and "train" in live
    loss_rows = read_tsv(tmp_path / "dvclive/stage1/plots/metrics/train/loss.tsv")
    assert [int(r["step"]) for r in loss_rows] == [2, 4, 6]
    assert all(float(r["loss"]) > 0 for r in loss_rows)

    metrics2 = train("stage2", params, StageOutputs.default("stage2", tmp_path), data_root=demo_data, progress=False)
    assert {"fused_AG", "rule_AG", "fused_SF"} <= set(metrics2)
    stage2 = read_checkpoint(tmp_path / "checkpoints/stage2/model.pt")
    changed = {k for k in stage1["model"] if not torch.equal(stage1["model"][k], stage2["model"][k])}
    assert changed, "stage 2 changed nothing"
    assert all(k.startswith("fusion.") for k in changed), sorted(changed)[:5]
    assert any("zero_conv" in k for k in changed)


def test_degradation_aware_stage2_trains_on_degraded_pairs(demo_data, tmp_path):
    """stage2.degraded_fraction/consistency_weight: the fusion module trains on degraded pairs with
    their task texts and logs the consistency term; nothing outside the fusion module changes."""
    params = tiny_params(**{"stage2.degraded_fraction": 1.0, "stage2.consistency_weight": 1.0})
    train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    train("stage2", params, StageOutputs.default("stage2", tmp_path), data_root=demo_data, progress=False)
    rows = read_tsv(tmp_path / "dvclive/stage2/plots/metrics/train/loss_consistency.tsv")
    assert [int(r["step"]) for r in rows] == [2, 4] and all(float(r["loss_consistency"]) > 0 for r in rows)
    stage1 = read_checkpoint(tmp_path / "checkpoints/stage1/model.pt")
    stage2 = read_checkpoint(tmp_path / "checkpoints/stage2/model.pt")
    changed = {k for k in stage1["model"] if not torch.equal(stage1["model"][k], stage2["model"][k])}
    assert changed and all(k.startswith("fusion.") for k in changed), sorted(changed)[:5]


def test_stage2_gamma_jitter_reaches_the_training_batches(demo_data, tmp_path):
    """stage2.gamma_jitter/gamma_range: the stage-2 trainer's fusion batches are the plain ones
    raised to the drawn power (here always 2), the same pairs, crops and flips."""
    from lure.training.distributed import setup_distributed, teardown_distributed
    from lure.training.trainer import Trainer

    train("stage1", tiny_params(), StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    batches = {}
    for jitter in (0.0, 1.0):
        params = tiny_params(**{"stage2.gamma_jitter": jitter, "stage2.gamma_range": [2.0, 2.0]})
        ctx = setup_distributed("cpu")
        try:
            trainer = Trainer("stage2", params, StageOutputs.default("stage2", tmp_path), ctx, demo_data, False)
            batches[jitter] = next(trainer._streams()["fusion"])
        finally:
            teardown_distributed(ctx)
    plain, squared = batches[0.0], batches[1.0]
    assert plain["key"] == squared["key"]
    for name in ("ir", "vi"):
        assert torch.equal(squared[name], torch.round(255.0 * plain[name].double() ** 2).float() / 255.0), name


def test_global_correction_trains_in_stage1_on_whole_image_statistics(demo_data, tmp_path):
    """model.global_correction: the loaders hand the objectives the whole images' statistics,
    stage 1 trains the correction (it leaves the identity), stage 2 leaves it as stage 1 did."""
    from lure.config import model_config
    from lure.models.global_correction import STATS_PER_CHANNEL
    from lure.training.distributed import setup_distributed, teardown_distributed
    from lure.training.trainer import Trainer

    params = tiny_params()
    params["model"]["global_correction"] = True
    assert model_config(params).global_correction
    ctx = setup_distributed("cpu")
    try:
        trainer = Trainer("stage1", params, StageOutputs.default("stage1", tmp_path / "probe"), ctx, demo_data, False)
        batch = next(trainer._streams()["restoration"])
        inputs = trainer._restoration_inputs(batch)
        assert inputs[-2].shape == (2, 3, STATS_PER_CHANNEL) and inputs[-1].shape == (2, 3, STATS_PER_CHANNEL)
    finally:
        teardown_distributed(ctx)
    train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    train("stage2", params, StageOutputs.default("stage2", tmp_path), data_root=demo_data, progress=False)
    stage1 = read_checkpoint(tmp_path / "checkpoints/stage1/model.pt")["model"]
    stage2 = read_checkpoint(tmp_path / "checkpoints/stage2/model.pt")["model"]
    last = [k for k in stage1 if k.startswith("global_correction.mlp.2.")]
    assert len(last) == 2 and all(stage1[k].abs().sum() > 0 for k in last)  # zero at init, trained
    assert all(torch.equal(stage1[k], stage2[k]) for k in stage1 if k.startswith("global_correction."))


def test_same_seed_same_metrics(demo_data, tmp_path):
    params = tiny_params(**{"stage1.steps": 4})
    runs = []
    for name in ("a", "b"):
        metrics = train("stage1", params, StageOutputs.default("stage1", tmp_path / name), data_root=demo_data,
                        progress=False)
        runs.append({k: round(v, 4) for k, v in metrics.items()})
    assert runs[0] == runs[1]


def test_refine_unified_weight_weighs_the_refinement_only(demo_data, tmp_path):
    """stage1.refine_unified_weight replaces unified_weight in the refinement; None keeps it, and
    the first phase never sees it."""
    base = {"stage1.steps": 4, "stage1.refine_steps": 2, "stage1.refine_crop": 32, "stage1.checkpoint_every": 100}
    first = tiny_params(**{**base, "stage1.refine_steps": 0})
    train("stage1", first, StageOutputs.default("stage1", tmp_path / "first"), data_root=demo_data, progress=False)
    ckpt = tmp_path / "first/checkpoints/stage1/model.pt"
    weights = {}
    for name, value in (("none", None), ("same", first["stage1"]["unified_weight"]), ("heavy", 50.0)):
        params = tiny_params(**base, **{"stage1.refine_unified_weight": value})
        train("stage1", params, StageOutputs.default("stage1", tmp_path / name), data_root=demo_data, progress=False,
              refine_from=ckpt)
        weights[name] = read_checkpoint(tmp_path / name / "checkpoints/stage1/model.pt")["model"]

    def equal(a: dict, b: dict) -> bool:
        return all(torch.equal(v, b[k]) for k, v in a.items())

    assert equal(weights["none"], weights["same"])
    assert not equal(weights["none"], weights["heavy"])
    # a whole run with the heavy refinement weight: its first phase logs the same losses
    heavy = tiny_params(**base, **{"stage1.refine_unified_weight": 50.0})
    train("stage1", heavy, StageOutputs.default("stage1", tmp_path / "whole"), data_root=demo_data, progress=False)
    logged = [read_tsv(tmp_path / run / "dvclive/stage1/plots/metrics/train/loss.tsv") for run in ("first", "whole")]
    assert [r for r in logged[1] if int(r["step"]) <= 4] == logged[0]
    assert equal(read_checkpoint(tmp_path / "whole/checkpoints/stage1/model.pt")["model"], weights["heavy"])


def test_refine_task_weights_draw_the_refinement_samples_only(demo_data, tmp_path):
    """stage1.refine_task_weights replaces task_weights in the refinement (the real profile weighs
    haze up there); the first phase keeps task_weights."""
    from lure.training.config import Stage1Config
    from lure.training.distributed import setup_distributed, teardown_distributed
    from lure.training.trainer import Trainer

    base = {"stage1.steps": 2, "stage1.refine_steps": 2, "stage1.refine_crop": 32, "stage1.checkpoint_every": 100,
            "stage1.task_weights": {"ll": 1.0}, "stage1.refine_task_weights": {"hz": 1.0, "lc": 1.0}}
    params = tiny_params(**base)
    first = tiny_params(**{**base, "stage1.refine_steps": 0})
    train("stage1", first, StageOutputs.default("stage1", tmp_path / "first"), data_root=demo_data, progress=False)
    ctx = setup_distributed("cpu")
    try:
        trainer = Trainer("stage1", params, StageOutputs.default("stage1", tmp_path / "probe"), ctx, demo_data, False)
        first_tasks = {t for _ in range(3) for t in next(trainer._streams()["restoration"])["task"]}
        trainer.start_at_refinement(tmp_path / "first/checkpoints/stage1/model.pt")
        stream = trainer._streams()["restoration"]
        refine_tasks = [t for _ in range(8) for t in next(stream)["task"]]
    finally:
        teardown_distributed(ctx)
    assert first_tasks == {"ll"}
    assert set(refine_tasks) == {"hz", "lc"}
    unset = tiny_params(**{**base, "stage1.refine_task_weights": None})
    assert Stage1Config.from_params(unset).refine_sampling_weights == {"ll": 1.0}


def test_refinement_on_larger_crops_depends_only_on_the_first_phase_weights(demo_data, tmp_path):
    """stage1.refine_steps: after ``steps`` steps, more steps on larger crops in smaller batches
    with a warm restart of the learning rate. The phase starts afresh (optimiser, RNGs, stream), so
    starting it from the first phase's saved weights gives the weights of one uninterrupted run."""
    refine = {"stage1.steps": 4, "stage1.refine_steps": 4, "stage1.refine_crop": 48, "stage1.refine_batch_size": 1,
              "stage1.refine_lr": 1e-4, "stage1.refine_warmup_steps": 2, "stage1.checkpoint_every": 100}
    params = tiny_params(**refine)
    train("stage1", params, StageOutputs.default("stage1", tmp_path / "full"), data_root=demo_data, progress=False)
    full = read_checkpoint(tmp_path / "full/checkpoints/stage1/model.pt")
    assert full["step"] == 8
    lr = {int(r["step"]): float(r["lr"]) for r in read_tsv(tmp_path / "full/dvclive/stage1/plots/metrics/train/lr.tsv")}
    # (the rate logged at a step is the next step's) the first cosine is half way, the refinement
    # warms up over 2 steps to refine_lr and decays to lr_min
    assert lr[2] == pytest.approx(0.5 * (2e-4 + params["stage1"]["lr_min"]))
    assert (lr[4], lr[6], lr[8]) == pytest.approx((0.5e-4, 1e-4, params["stage1"]["lr_min"]))

    first = tiny_params(**{**refine, "stage1.refine_steps": 0})
    train("stage1", first, StageOutputs.default("stage1", tmp_path / "first"), data_root=demo_data, progress=False)
    first_ckpt = tmp_path / "first/checkpoints/stage1/model.pt"
    first_weights = read_checkpoint(first_ckpt)["model"]
    assert not all(torch.equal(v, full["model"][k]) for k, v in first_weights.items())
    # the full run kept its first phase's weights beside its resume state: the same weights
    kept = read_checkpoint(tmp_path / "full/checkpoints/stage1/resume/first_phase.pt")
    assert kept["step"] == 4 and all(torch.equal(v, kept["model"][k]) for k, v in first_weights.items())
    train("stage1", params, StageOutputs.default("stage1", tmp_path / "second"), data_root=demo_data, progress=False,
          refine_from=first_ckpt)
    second = read_checkpoint(tmp_path / "second/checkpoints/stage1/model.pt")
    assert second["step"] == 8
    assert all(torch.equal(v, second["model"][k]) for k, v in full["model"].items())
    # the same command again resumes from the refinement's own state instead of starting over
    train("stage1", params, StageOutputs.default("stage1", tmp_path / "second"), data_root=demo_data, progress=False,
          refine_from=first_ckpt)
    again = read_checkpoint(tmp_path / "second/checkpoints/stage1/model.pt")["model"]
    assert all(torch.equal(v, again[k]) for k, v in full["model"].items())
    # the batches: 2 crops of 32 px in the first phase, 1 of 48 px in the refinement
    from lure.training.distributed import setup_distributed
    from lure.training.trainer import Trainer

    peek = Trainer("stage1", params, StageOutputs.default("stage1", tmp_path / "peek"), setup_distributed("cpu"),
                   demo_data, progress=False)
    assert next(peek._streams()["restoration"])["lq"].shape[::2] == (2, 32)
    peek.start_at_refinement(first_ckpt)
    assert next(peek._streams()["restoration"])["lq"].shape[::2] == (1, 48)
    # refine_whole_view: the refinement's photometric samples show the whole image (downscaled);
    # the first phase and the refinement's super-resolution samples are untouched
    whole = tiny_params(**refine, **{"stage1.refine_whole_view": 1.0})

    def batches(run_params: dict, name: str, refining: bool, n: int = 8) -> list[dict]:
        trainer = Trainer("stage1", run_params, StageOutputs.default("stage1", tmp_path / name),
                          setup_distributed("cpu"), demo_data, progress=False)
        if refining:
            trainer.start_at_refinement(first_ckpt)
        stream = trainer._streams()["restoration"]
        return [next(stream) for _ in range(n)]

    assert all(torch.equal(a["lq"], b["lq"]) for a, b in zip(batches(params, "p0", False), batches(whole, "w0", False)))
    plain, views = batches(params, "p1", True), batches(whole, "w1", True)
    assert {a["task"][0] in ("sr4", "sr8") for a in plain} == {True, False}  # both kinds are drawn
    for a, b in zip(plain, views):
        assert a["key"] == b["key"] and b["lq"].shape == a["lq"].shape
        assert torch.equal(a["hq"], b["hq"]) == (a["task"][0] in ("sr4", "sr8"))
    with pytest.raises(ValueError, match="refinement starts after stage1.steps = 4"):
        train("stage1", params, StageOutputs.default("stage1", tmp_path / "third"), data_root=demo_data,
              progress=False, refine_from=tmp_path / "full/checkpoints/stage1/model.pt")


def test_code_digest_follows_the_training_code_only(tmp_path):
    import shutil

    from lure.training.resume import code_digest

    repo = Path(__file__).resolve().parents[1]
    for package in ("lure", "data_prep", "pipelines"):
        shutil.copytree(repo / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    original = code_digest(tmp_path)
    assert original == code_digest()
    (tmp_path / "lure" / "evaluation" / "grid.py").write_text("# evaluation code does not change training\n")
    assert code_digest(tmp_path) == original
    for edited in ("lure/training/losses.py", "lure/color.py", "lure/image_io.py", "lure/checkpoint.py"):
        path = tmp_path / edited
        text = path.read_text()
        path.write_text(text + "\n# an edit\n")
        assert code_digest(tmp_path) != original, edited
        path.write_text(text)
    assert code_digest(tmp_path) == original


def test_rerun_resumes_only_when_code_data_and_params_are_unchanged(demo_data, tmp_path, capsys):
    """A finished stage rerun by DVC (because a dependency changed) must not resume its old state:
    it would return the old weights as the new result."""
    import shutil

    params = tiny_params(**{"stage1.steps": 4})
    outputs = StageOutputs.default("stage1", tmp_path / "run")
    train("stage1", params, outputs, data_root=demo_data, progress=False)
    first = read_checkpoint(outputs.model_path)["model"]
    capsys.readouterr()
    train("stage1", params, outputs, data_root=demo_data, progress=False)  # nothing changed
    assert f"resuming from {outputs.resume_path} at step 4/4" in capsys.readouterr().out
    resumed = read_checkpoint(outputs.model_path)["model"]
    assert all(torch.equal(v, resumed[k]) for k, v in first.items())

    changed = tmp_path / "data"
    shutil.copytree(demo_data, changed)
    other_scenes = get_parser("demo")(None, train=8, test=4, height=64, width=80, seed=7)
    write_parsed_split(changed, "demo", "train", other_scenes, {"samples_per_shard": 64, "min_shards": 1})
    train("stage1", params, outputs, data_root=changed, progress=False)
    out = capsys.readouterr().out
    assert "ignoring" in out and "resuming" not in out
    retrained = read_checkpoint(outputs.model_path)
    assert retrained["step"] == 4
    assert not all(torch.equal(v, retrained["model"][k]) for k, v in first.items())  # new weights


def test_single_stage_ablation_trains_fusion_in_stage1(demo_data, tmp_path):
    params = tiny_params(**{"stage1.steps": 3, "stage1.single_stage": True})
    metrics = train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    assert "fused_AG" in metrics and "psnr_ll" in metrics
    state = read_checkpoint(tmp_path / "checkpoints/stage1/model.pt")["model"]
    zero_convs = [v for k, v in state.items() if "zero_conv.weight" in k]
    assert any(v.abs().sum() > 0 for v in zero_convs)  # the fusion branch trained
    # stage 2 then only re-exports the jointly trained model
    metrics2 = train("stage2", params, StageOutputs.default("stage2", tmp_path), data_root=demo_data, progress=False)
    assert "fused_AG" in metrics2
    exported = read_checkpoint(tmp_path / "checkpoints/stage2/model.pt")
    assert exported["step"] == 0
    assert all(torch.equal(state[k], exported["model"][k]) for k in state)


def test_non_finite_loss_stops_with_step_keys_and_checkpoint(demo_data, tmp_path):
    params = tiny_params(**{"stage1.lr": 1e12, "stage1.grad_clip": 0, "stage1.steps": 30,
                            "stage1.checkpoint_every": 1})
    with pytest.raises(NonFiniteLossError) as info:
        train("stage1", params, StageOutputs.default("stage1", tmp_path), data_root=demo_data, progress=False)
    message = str(info.value)
    assert "non-finite loss" in message and "at step" in message
    assert "batch keys: " in message
    assert "last good checkpoint: " in message and "resume/last.pt" in message
    step = int(message.split("at step ")[1].split(";")[0])
    saved = read_checkpoint(tmp_path / "checkpoints/stage1/resume/last.pt")
    assert saved["step"] == step - 1
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


def _write_params(path: Path, params: dict) -> Path:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    profile = {k: params[k] for k in ("model", "data", "stage1", "stage2")}
    raw["profiles"]["demo"].update(profile)
    path.write_text(yaml.safe_dump(raw))
    return path


def _train_cmd(params_file: Path, root: Path, data: Path, stage: str = "stage1") -> list[str]:
    return [sys.executable, "-m", "pipelines.stages.train", stage, "--params", str(params_file),
            "--root", str(root), "--data-root", str(data), "--no-progress", "--device", "cpu"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(demo_data, tmp_path):
    """A run killed by SIGTERM at whatever step it has reached and resumed in a new process ends
    with the weights, metrics and logs of an uninterrupted run."""
    params = tiny_params(**{"stage1.steps": 24, "stage1.checkpoint_every": 4, "stage1.log_every": 2,
                            "stage1.eval_every": 10})
    params_file = _write_params(tmp_path / "params.yaml", params)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    resume = tmp_path / "run/checkpoints/stage1/resume/last.pt"
    proc = subprocess.Popen(_train_cmd(params_file, tmp_path / "run", demo_data), cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if resume.is_file() and read_checkpoint(resume)["step"] >= 8:
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.stdout.read()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    killed_at = read_checkpoint(resume)["step"]
    assert 8 <= killed_at < 24 and "rerun to resume" in out
    assert not (tmp_path / "run/checkpoints/stage1/model.pt").exists()

    done = subprocess.run(_train_cmd(params_file, tmp_path / "run", demo_data), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming from {resume} at step {killed_at}/24" in done.stdout + done.stderr
    final = read_checkpoint(tmp_path / "run/checkpoints/stage1/model.pt")
    assert final["step"] == 24
    rows = read_tsv(tmp_path / "run/dvclive/stage1/plots/metrics/train/loss.tsv")
    steps = [int(r["step"]) for r in rows]
    assert steps[-1] == 24 and steps == sorted(set(steps))

    uninterrupted = tmp_path / "uninterrupted"
    train("stage1", params, StageOutputs.default("stage1", uninterrupted), data_root=demo_data, progress=False)
    expected = read_checkpoint(uninterrupted / "checkpoints/stage1/model.pt")["model"]
    assert all(torch.equal(v, final["model"][k]) for k, v in expected.items())
    live = [json.loads((r / "dvclive/stage1/metrics.json").read_text()) for r in (tmp_path / "run", uninterrupted)]
    assert live[0] == live[1]  # final validation, last losses and learning rate
    assert rows == read_tsv(uninterrupted / "dvclive/stage1/plots/metrics/train/loss.tsv")


@pytest.mark.slow
@pytest.mark.parametrize("single_stage", [False, True])
def test_ddp_two_cpu_processes_hold_identical_weights(demo_data, tmp_path, single_stage):
    """Two gloo processes (one DDP wrapper, also for the single-stage ablation's two objectives)."""
    params = tiny_params(**{"stage1.steps": 3, "stage1.single_stage": single_stage})
    params_file = _write_params(tmp_path / "params.yaml", params)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           *_train_cmd(params_file, tmp_path / "run", demo_data)[1:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    digests = read_checkpoint(tmp_path / "run/checkpoints/stage1/model.pt")["rank_weight_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]


@pytest.mark.slow
def test_degradation_aware_ablation_writes_its_table(demo_data, tmp_path):
    """`python -m pipelines.ablate_degradation_aware` on the demo model: every variant trains, every
    degraded set is scored three ways, and on low light the task texts beat pseudo texts."""
    from pipelines import ablate_degradation_aware as ablation

    variants = ["clean pairs (paper)", "50 % degraded + consistency 1"]
    rc = ablation.main(["--profile", "demo", "--stage1", str(REPO_ROOT / "weights/lure-demo.pt"), "--steps", "2",
                        "--pairs", "2", "--variants", *variants, "--root", str(tmp_path / "runs"),
                        "--data-root", str(demo_data), "--out", str(tmp_path / "ablation")])
    assert rc == 0 and (tmp_path / "ablation.md").is_file() and (tmp_path / "ablation.csv").is_file()
    results = json.loads((tmp_path / "ablation.json").read_text())["results"]
    tasks = load_params(profile="demo")["evaluate"]["tasks"]
    for name in variants:
        assert set(results[name]) == set(tasks)
        for values in results[name].values():
            assert set(values) == set(ablation.METHODS) and all(5 < v < 100 for v in values.values())
    assert results[variants[0]]["ll"]["one pass"] > results[variants[0]]["ll"]["pd texts"] + 1.0
    assert ablation.main(["--stage1", "x.pt", "--variants", "nonsense"]) == 2
