"""First-GPU-day smoke test: does the ``paper`` profile train, how fast, and what bounds the step?

``benchmarks/gpu_smoke.sh [--dry-run] [--out FILE]`` (or ``python -m benchmarks.gpu_smoke``) runs,
within a wall-clock budget (``--budget-s``, default 480 s = 8 minutes, everything included):

1. ``lure doctor --profile paper --no-measure --json`` (a subprocess, so that this process never
   opens a CUDA context): the machine, the devices and the state of the real data root; recorded
   whole under ``doctor``;
2. simulated paper-layout data (:mod:`data_prep.simulate`: LOL for stage 1 at 10 % of its
   published count, MSRS for stage 2 at 50 %, at their published image sizes; training splits
   stored as the paper profile's pre-cut 192 px patches, evaluation splits cut to 8 records) written
   into shards under ``<work>/data/shards`` (``<work>``: a temporary folder, ``--work`` to choose
   it), in at least as many shards as loader workers read them;
3. a parameter file ``<work>/params.yaml``: the repository's, with the ``paper`` profile's stage
   sections overridden (model size unchanged): the simulated sets as train/eval sets, ``--steps``
   steps (default 300), no refinement, evaluation and checkpoint intervals beyond the run (only the
   initial and final validation and the final checkpoint remain; ``eval_samples_per_task`` and
   ``eval_pairs`` 2), loader ``workers`` = min(the profile's, (CPU cores - processes) / processes),
   bf16 as the profile says; stage 2's VGG16 perceptual term only when its weights are found
   (else ``perceptual_weight`` 0, said in ``notes``);
4. stage 1 then stage 2 through ``python -m pipelines.stages.train`` on one GPU (``--device cuda``),
   then, when two or more GPUs are visible, again on two through ``python -m torch.distributed.run
   --standalone --nproc_per_node=2`` (= ``torchrun``). Each run gets a timeout: an equal share of the
   budget left (minus a reserve for writing the report); on expiry it is sent SIGTERM (the trainer
   writes its resume state), then SIGKILL; a stage 2 whose stage 1 failed is skipped.

It writes one JSON (``--out``, default ``benchmarks/results/gpu_smoke.json``, atomically) with, per
run (``runs``), the trainer's ``throughput.json`` (``throughput``: step times over the steps after
the first 5) and derived figures:

* ``samples_per_s``: samples per second over all processes (a stage-1 sample is one degraded/clean
  pair of crops, a stage-2 sample one infrared/visible pair);
* ``peak_memory_bytes``: the peak allocated CUDA memory of rank 0 (``null`` on a CPU);
* ``flops_per_sample``: FLOPs of one training step per sample, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-accumulate) on one forward and one
  backward of the stage objective for one sample at the run's crop, on the CPU, with the run's
  model and losses (frozen parts have no weight gradients, so the count follows what trains).
  The counter's own formula for the backward of a grouped (depthwise) convolution counts the
  weight gradient as dense, ``groups`` times too many; it is replaced by one divided by ``groups``.
  ``forward_flops_per_sample`` is the forward part;
* ``achieved_tflops``: ``flops_per_sample * samples_per_s / 1e12`` (model FLOP/s of all processes);
* ``peak_tflops_per_device``: the device's dense bf16 tensor-core peak from :data:`BF16_DENSE_TFLOPS`
  by device name (``null`` when unknown or on a CPU), and ``fraction_of_peak`` = achieved / (peak x
  processes), ``null`` without a peak (also for fp32 runs, whose peak is another);
* ``loader_wait_s_per_step``: mean seconds a step waited for its batch; ``loader_wait_fraction``:
  waiting time / step time; ``bound``: ``"loader"`` when that fraction exceeds 0.1
  (:data:`LOADER_BOUND_FRACTION`), else the device kind (``"gpu"``, ``"cpu"``);
* ``returncode``, ``wall_s`` (seconds, start-up and validation included), ``timed_out``,
  ``log_tail`` (the last lines of its output when it failed) and the command.

``--dry-run``: the same path on a CPU in about a minute: tiny simulated sets, a tiny model, 8
steps at 32 px crops, batch 2, fp32, ``--allow-cpu``, one process, one validation sample per task
(stage 1) and one validation pair (stage 2), one intra-op thread per run; the two-process ``torchrun``
runs (gloo) only with ``--dry-run-ddp`` (they add about a minute on two cores), else recorded as
skipped. Exit status: 0 when every run that was attempted succeeded, 1 otherwise (the JSON is
written either way).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python benchmarks/gpu_smoke.py` as well as `python -m benchmarks.gpu_smoke`
    sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

OUT = REPO / "benchmarks" / "results" / "gpu_smoke.json"
PROFILE = "paper"
#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s by device name; the first matching
#: substring wins (more specific names first). Vendor data sheets.
BF16_DENSE_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.0), ("H200", 989.0), ("H100", 989.0),
    ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L4", 121.0),
)
#: A run whose steps wait for their batch longer than this fraction of the step is loader-bound.
LOADER_BOUND_FRACTION = 0.1
#: Seconds kept back from the budget for the report (and a killed run's grace period).
RESERVE_S = 15.0
TINY_MODEL = {
    "widths": [8, 16, 16, 16], "latent_channels": [4, 8, 8, 8], "base_blocks": [1, 1, 1, 1],
    "branch_blocks": [1, 1, 1, 1], "decoder_blocks": [1, 1, 1, 1], "fusion_blocks": [1, 1, 1, 1],
    "heads": 2, "text_backbone_dim": 384, "text_dim": 16,
}
#: Records kept in an evaluation split of the simulated sets.
EVAL_RECORDS = 8
#: Simulated fraction of the published image counts: (stage-1 LOL, stage-2 MSRS).
FRACTIONS = {"gpu": {"lol": 0.1, "msrs": 0.5}, "dry": {"lol": 0.01, "msrs": 0.006}}


def peak_tflops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a device by its name (:data:`BF16_DENSE_TFLOPS`), ``None`` if unknown."""
    if not device_name:
        return None
    for key, value in BF16_DENSE_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# -- FLOPs ----------------------------------------------------------------------------------------
def _grouped_conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                                output_padding, groups, output_mask, out_shape, **kwargs) -> int:
    """torch's ``convolution_backward`` count with the weight-gradient term divided by ``groups``
    (the stock formula treats a grouped convolution's weight gradient as dense)."""
    from torch.utils.flop_counter import conv_backward_flop

    args = (grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed, output_padding, groups)
    # conv_backward_flop is torch's registered (shape-wrapped) formula: the output goes in as out_val
    grad_input = conv_backward_flop(*args, [output_mask[0], False], out_val=out_shape) if output_mask[0] else 0
    grad_weight = conv_backward_flop(*args, [False, output_mask[1]], out_val=out_shape) if output_mask[1] else 0
    return int(grad_input + grad_weight // max(1, int(groups)))


def training_flops_per_sample(params: dict[str, Any], stage: str) -> dict[str, int]:
    """Forward and forward+backward FLOPs of one sample of ``stage``'s objective at its crop (CPU)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lure.config import model_config
    from lure.models.lure_model import LURE
    from lure.training.config import TrainingConfig
    from lure.training.objectives import Stage1Objective, Stage2Objective
    from lure.training.perceptual import VGG16Features

    config = TrainingConfig.from_params(params)
    torch.manual_seed(0)
    model = LURE(model_config(params))
    dim = model.config.text_backbone_dim
    crop = getattr(config, stage).crop
    g = torch.Generator().manual_seed(0)
    image = lambda: torch.rand(1, 3, crop, crop, generator=g)  # noqa: E731
    text = lambda: torch.randn(1, dim, generator=g)  # noqa: E731
    s2 = config.stage2.loss_weights
    # the VGG16 term costs the same FLOPs with random weights: count it whenever the run uses it
    vgg = VGG16Features() if s2.perceptual == "vgg" and s2.perceptual_weight > 0 else None
    if stage == "stage1":
        model.set_stage("joint" if config.stage1.single_stage else "stage1")
        objectives = [(Stage1Objective(model, config.stage1.loss_weights),
                       (image(), image(), torch.tensor([0]), text(), text(), torch.tensor([1])))]
        if config.stage1.single_stage:
            objectives.append((Stage2Objective(model, s2, vgg), (image(), image(), text(), text())))
    else:
        model.set_stage("stage2")
        objectives = [(Stage2Objective(model, s2, vgg), (image(), image(), text(), text()))]
    mapping = {torch.ops.aten.convolution_backward: _grouped_conv_backward_flop}
    forward, backward = FlopCounterMode(display=False), FlopCounterMode(display=False, custom_mapping=mapping)
    with forward:
        loss = sum(objective(*inputs)[0] for objective, inputs in objectives)
    with backward:
        loss.backward()
    return {"forward": int(forward.get_total_flops()),
            "total": int(forward.get_total_flops() + backward.get_total_flops())}


# -- data -----------------------------------------------------------------------------------------
def build_data(work: Path, fractions: dict[str, float], min_shards: int, workers: int) -> dict[str, Any]:
    """Simulated LOL and MSRS trees -> paper-layout patch shards under ``<work>/data/shards``."""
    from data_prep import simulate
    from data_prep.shards import write_parsed_split
    from data_prep.sources import get_parser

    start = time.perf_counter()
    tree, data = work / "tree", work / "data"
    ids = list(fractions)
    for sid, fraction in fractions.items():
        simulate.simulate(sid, fraction, tree, seed=0, workers=workers)
    config = simulate.flow_config(tree, ids, profile=PROFILE, samples_per_shard=512, min_shards=min_shards)
    counts: dict[str, dict] = {}
    for name, entry in config["datasets"].items():
        parser = get_parser(entry.get("source", name))
        parsed = parser(entry["root"])
        for split in parsed.splits():
            if split != "train":  # validation reads a few samples: write no more (whole images are slow)
                for records in (parsed.stage1, parsed.fusion):
                    if split in records:
                        records[split] = records[split][:EVAL_RECORDS]
            result = write_parsed_split(data, name, split, parsed, config)
            counts.setdefault(name, {})[split] = {k: v for k, v in result.items() if k != "rewritten"}
    return {"data_root": str(data), "fractions": fractions, "min_shards": min_shards, "samples": counts,
            "patches": {name: entry.get("patches") for name, entry in config["datasets"].items()},
            "seconds": round(time.perf_counter() - start, 1)}


# -- parameters -----------------------------------------------------------------------------------
def smoke_params(dry_run: bool, steps: int, workers: dict[str, int], vgg_found: bool) -> tuple[dict, list[str]]:
    """The repository's params.yaml with the paper profile's stage sections overridden; notes."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    profile = copy.deepcopy(raw["profiles"][PROFILE])
    notes: list[str] = []
    sets = {"stage1": (["lol/train"], ["lol/test"]), "stage2": (["msrs/train"], ["msrs/test"])}
    for stage, (train_sets, eval_sets) in sets.items():
        section = profile[stage]
        section.update(train_sets=train_sets, eval_sets=eval_sets, steps=steps, warmup_steps=min(10, steps),
                       log_every=max(1, min(50, steps)), eval_every=10**9, checkpoint_every=10**9,
                       workers=workers[stage])
        if stage == "stage1":  # LOL holds low-light and clean pairs only: sample its own task mix
            section.update(refine_steps=0, eval_samples_per_task=2, task_weights=None)
        else:
            section.update(eval_pairs=2)
        if dry_run:  # validation on whole images dominates a CPU run of a few steps: the least of it
            section.update(batch_size=2, crop=32, bf16=False, global_batch_size=None, compile=False,
                           **({"eval_samples_per_task": 1} if stage == "stage1" else {"eval_pairs": 1}))
    perceptual = profile["stage2"].get("perceptual", "vgg")
    if perceptual == "vgg" and float(profile["stage2"].get("perceptual_weight", 0) or 0) > 0 and not vgg_found:
        profile["stage2"]["perceptual_weight"] = 0.0
        notes.append("VGG16 weights not found: stage 2 ran without its perceptual term (perceptual_weight 0)")
    if dry_run:
        profile["model"] = dict(TINY_MODEL)
        notes.append("dry run: tiny model, 32 px crops, batch 2, fp32 on the CPU (--allow-cpu)")
    raw["profiles"][PROFILE] = profile
    raw["profile"] = PROFILE
    return raw, notes


# -- runs -----------------------------------------------------------------------------------------
def _kill(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the run's process group (the trainer saves its state), SIGKILL after ``grace_s``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_training(name: str, stage: str, nproc: int, params_file: Path, root: Path, data_root: Path, device: str,
                 allow_cpu: bool, timeout_s: float, logs: Path) -> dict[str, Any]:
    """One ``pipelines.stages.train`` run (under torchrun when ``nproc > 1``), with a timeout."""
    train = ["-m", "pipelines.stages.train", stage, "--params", str(params_file), "--profile", PROFILE,
             "--root", str(root), "--data-root", str(data_root), "--device", device, "--no-progress"]
    if allow_cpu:
        train.append("--allow-cpu")
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *train]
    else:
        command = [sys.executable, *train]
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if device == "cpu":  # a small model on few cores: one intra-op thread avoids OpenMP spin-waiting
        env.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    timed_out = False
    with open(log, "w") as handle:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        except BaseException:
            _kill(proc, grace_s=2.0)
            raise
    row: dict[str, Any] = {
        "name": name, "stage": stage, "nproc": nproc, "command": " ".join(command),
        "returncode": proc.returncode, "timed_out": timed_out, "timeout_s": round(timeout_s, 1),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    throughput = root / "checkpoints" / stage / "throughput.json"
    row["throughput"] = json.loads(throughput.read_text()) if proc.returncode == 0 and throughput.is_file() else None
    if proc.returncode != 0 or row["throughput"] is None:
        lines = log.read_text(errors="replace").splitlines()
        row["log_tail"] = lines[-25:]
        if proc.returncode == 0:
            row["error"] = f"{throughput} was not written"
    return row


def derive(row: dict[str, Any], flops: dict[str, int] | None) -> dict[str, Any]:
    """Samples/s, memory, TFLOP/s, fraction of peak, loader wait and bound of one run's throughput."""
    t = row.get("throughput")
    keys = ("samples_per_s", "peak_memory_bytes", "flops_per_sample", "forward_flops_per_sample", "achieved_tflops",
            "peak_tflops_per_device", "fraction_of_peak", "loader_wait_s_per_step", "loader_wait_fraction", "bound")
    out = dict.fromkeys(keys)
    if not t:
        return row | out
    device_kind = "gpu" if str(t.get("device", "")).startswith("cuda") else "cpu"
    out["samples_per_s"] = t["samples_per_s"]
    out["peak_memory_bytes"] = t.get("peak_memory_bytes")
    out["loader_wait_s_per_step"] = t["loader_wait_s_mean"]
    out["loader_wait_fraction"] = t["loader_wait_fraction"]
    out["bound"] = "loader" if t["loader_wait_fraction"] > LOADER_BOUND_FRACTION else device_kind
    if flops:
        out["flops_per_sample"] = flops["total"]
        out["forward_flops_per_sample"] = flops["forward"]
        out["achieved_tflops"] = flops["total"] * t["samples_per_s"] / 1e12
    peak = peak_tflops(t.get("device_name")) if device_kind == "gpu" else None
    out["peak_tflops_per_device"] = peak
    if peak and out["achieved_tflops"] is not None and t.get("precision") == "bf16":
        out["fraction_of_peak"] = out["achieved_tflops"] / (peak * int(t.get("world_size", row["nproc"])))
    return row | out


def run_doctor(timeout_s: float) -> dict[str, Any]:
    """``lure doctor --profile paper --no-measure --json`` in a subprocess (no CUDA context here)."""
    command = [sys.executable, "-m", "pipelines.preflight", "--profile", PROFILE, "--no-measure", "--json"]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1], "returncode": done.returncode}
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same path on a CPU in about a minute")
    parser.add_argument("--dry-run-ddp", action="store_true",
                        help="with --dry-run: also the two-process torchrun runs (gloo on the CPU)")
    parser.add_argument("--out", default=str(OUT), help="the JSON report (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default 300; dry run 8)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-clock budget of the whole script in seconds (default 480; dry run 240)")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (data, checkpoints, logs)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    budget = args.budget_s or (240.0 if args.dry_run else 480.0)
    steps = args.steps or (8 if args.dry_run else 300)
    deadline = start + budget

    def left() -> float:
        return deadline - time.perf_counter()

    from lure.evaluation.io import atomic_write_json
    from lure.runtime import retain_freed_memory

    retain_freed_memory()
    report: dict[str, Any] = {"what": "paper-profile training smoke test (see benchmarks/gpu_smoke.py)",
                              "dry_run": args.dry_run, "budget_s": budget, "steps": steps, "notes": []}
    doctor = run_doctor(min(60.0, max(5.0, left() / 4)))
    report["doctor"] = doctor
    gpus = len(doctor.get("devices") or [])
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and gpus == 0:
        report["notes"].append("no CUDA device visible: nothing trained (use --dry-run on a CPU)")
        atomic_write_json(args.out, report | {"runs": [], "seconds": round(time.perf_counter() - start, 1)})
        print(f"gpu_smoke: no CUDA device visible; wrote {args.out}", file=sys.stderr)
        return 1
    cores = os.cpu_count() or 1
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lure-gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    status = 0
    try:
        raw = yaml.safe_load((REPO / "params.yaml").read_text())["profiles"][PROFILE]
        wanted = {stage: int(raw[stage].get("workers", 0)) for stage in ("stage1", "stage2")}
        plan = [1] + ([2] if (gpus >= 2 and not args.dry_run) or (args.dry_run and args.dry_run_ddp) else [])
        if args.dry_run:
            workers = {1: dict.fromkeys(wanted, 0), 2: dict.fromkeys(wanted, 0)}
        else:
            workers = {n: {s: max(1, min(w, (cores - n) // n)) for s, w in wanted.items()} for n in (1, 2)}
        readers = max(n * max(workers[n].values()) for n in plan)  # every loader worker of every rank gets shards
        data = build_data(work, FRACTIONS["dry" if args.dry_run else "gpu"], min_shards=max(2, readers),
                          workers=1 if args.dry_run else max(1, cores - 1))
        report["data"] = data
        vgg_found = bool((doctor.get("vgg16") or {}).get("found"))
        runs: list[dict[str, Any]] = []
        flops: dict[str, dict[str, int]] = {}
        todo = [(n, stage) for n in plan for stage in ("stage1", "stage2")]
        if args.dry_run and not args.dry_run_ddp:
            report["notes"].append("dry run: the two-process torchrun runs (gloo) skipped; --dry-run-ddp runs them")
        elif not args.dry_run and gpus < 2:
            report["notes"].append(f"{gpus} GPU visible: the two-process torchrun runs skipped")
        for i, (nproc, stage) in enumerate(todo):
            params, notes = smoke_params(args.dry_run, steps, workers[nproc], vgg_found)
            for note in notes:
                if note not in report["notes"]:
                    report["notes"].append(note)
            params_file = work / f"params-{nproc}.yaml"
            params_file.write_text(yaml.safe_dump(params, sort_keys=False))
            if stage not in flops:
                from lure.config import load_params

                flops[stage] = training_flops_per_sample(load_params(params_file, profile=PROFILE), stage)
            name = f"{nproc}proc_{stage}"
            root = work / "runs" / f"{nproc}proc"
            if stage == "stage2" and not (root / "checkpoints" / "stage1" / "model.pt").is_file():
                runs.append({"name": name, "stage": stage, "nproc": nproc, "skipped": "stage 1 did not finish"})
                continue
            share = (left() - RESERVE_S) / (len(todo) - i)
            if share < 5:
                runs.append({"name": name, "stage": stage, "nproc": nproc, "skipped": "time budget spent"})
                status = 1
                continue
            row = run_training(name, stage, nproc, params_file, root, Path(data["data_root"]), device,
                               allow_cpu=args.dry_run, timeout_s=share, logs=work / "logs")
            row = derive(row, flops.get(stage))
            if row["returncode"] != 0 or row["throughput"] is None:
                status = 1
            runs.append(row)
            print(f"gpu_smoke: {name}: rc {row['returncode']}, {row['wall_s']} s, "
                  f"{row['samples_per_s'] or 0:.1f} samples/s, bound {row['bound']}", file=sys.stderr, flush=True)
        report["runs"] = runs
        report["workers"] = {f"{n}proc": workers[n] for n in plan}
    except Exception as error:  # noqa: BLE001 (the report says what failed; exit status 1)
        report["error"] = f"{type(error).__name__}: {error}"
        status = 1
    finally:
        report["seconds"] = round(time.perf_counter() - start, 1)
        if args.keep or args.work:
            report["work"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, report)
    print(f"gpu_smoke: wrote {args.out} ({report['seconds']} s)", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
