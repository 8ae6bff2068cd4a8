"""``lure doctor`` (also ``python -m pipelines.preflight``): is this machine ready to train a profile?

One screen (or ``--json``) for a profile of ``params.yaml`` (``--profile``, default the file's) and a
planned number of training processes (``--nproc N``, default: the visible CUDA devices, or 1):

* **torch**: version and build (``CUDA 12.4`` or ``CPU-only build``), cuDNN version; each visible
  CUDA device with its name, total and free memory (bytes in JSON, GiB on screen), compute
  capability and whether it computes in bfloat16; CPU cores (``os.cpu_count()`` and the cores this
  process may run on);
* **memory and disk**: available RAM (``MemAvailable`` of ``/proc/meminfo``, else ``os.sysconf``)
  and free space of the file system holding the data root (``--data-root``, default ``<repo>/data``);
* **data sets**: every entry of the profile's ``data.datasets`` and ``data.derived``: which splits
  have shards (``<data-root>/shards/<name>/<split>/manifest.json``), which splits the profile's
  training and evaluation use, and, when shards are missing, how they arrive: an automatic download
  by the ``build_data`` stage, a manual download (registry ``manual: true``; names the file, the page
  and the exact path to put it at), a local folder, generated (demo) or derived from other sets;
* **VGG16 weights**: needed only when ``stage2.perceptual`` is ``vgg`` and ``perceptual_weight > 0``;
  the path looked at (``stage2.vgg16_weights`` or the torch hub cache) and whether it is there;
* **batches per stage**: per-rank batch, processes, effective global batch. When the stage sets
  ``global_batch_size``, each rank takes ``global_batch_size / nproc`` samples (``null`` with a
  warning when that does not divide: the trainer refuses it); otherwise ``batch_size`` is per rank
  and the global batch is ``batch_size * nproc``. bf16 autocast is on only
  when the profile asks for it and the selected device is a GPU that computes in bf16 (the trainer
  runs fp32 on CPUs);
* **training-time estimate**: one optimiser step of each stage's real objective (forward, backward,
  gradient clipping, AdamW) on random inputs at the per-rank batch and crop, with the profile's
  model, on the selected device (``--device``, default ``cuda`` when visible), under bf16 autocast
  when the stage says so: one warm-up step, then ``--measure-steps`` (default 2) timed steps; the
  reported ``step_s`` is their mean in seconds (CUDA synchronised). Stage 1's large-crop refinement
  (``refine_steps`` at ``refine_crop``/``refine_batch_size``) is timed separately. Estimate per
  phase: ``steps * step_s`` seconds (also in hours); the total is their sum. The data loader, text
  encoder (cached embeddings), validation, checkpoints, ``torch.compile`` and the gradient
  all-reduce between ranks are not in it: with ``--nproc N`` it assumes each rank has a device like
  the measured one. ``--no-measure`` skips it; so does a GPU profile (``paper``, or a stage with
  ``require_gpu``) when no GPU is visible, unless ``--device cpu`` asks for the CPU explicitly. On
  CUDA the peak allocated memory of a step is reported too (``peak_memory_bytes``);
* **warnings**, one line each: CPU-only torch build for a GPU profile, fewer devices than
  processes, missing shards, manual downloads, missing VGG16 weights, a global batch that does not
  divide, loader workers beyond the CPU cores, a measured step that does not fit the device memory.

Exit status: 0 (warnings included); 2 with one line on stderr for a bad profile or parameter file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lure.paths import REPO_ROOT, display_path, shared_data_dir

#: Profiles meant for GPUs (besides any whose stages set ``require_gpu``): the trainer refuses
#: them on a CPU unless ``--allow-cpu`` is given.
GPU_PROFILES = ("paper",)
STAGES = ("stage1", "stage2")
GIB = 1024**3
#: Free disk below this is worth a warning (shards, checkpoints and dvclive logs).
LOW_DISK_BYTES = 5 * GIB


# -- machine ------------------------------------------------------------------------------------
def torch_report() -> dict[str, Any]:
    """torch version and build, cuDNN version, the visible CUDA devices."""
    import torch

    cuda = torch.version.cuda
    cudnn = None
    try:
        if torch.backends.cudnn.is_available():
            cudnn = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 (a broken cuDNN install is reported as absent)
        cudnn = None
    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            try:
                free, total = torch.cuda.mem_get_info(index)
            except RuntimeError:
                free, total = None, props.total_memory
            devices.append({
                "index": index, "name": props.name,
                "memory_total_bytes": int(total), "memory_free_bytes": None if free is None else int(free),
                "compute_capability": f"{props.major}.{props.minor}",
                "bf16": props.major >= 8,  # Ampere and later compute in bfloat16 natively
            })
    return {"version": torch.__version__, "cuda": cuda,
            "build": f"CUDA {cuda}" if cuda else ("ROCm " + str(torch.version.hip) if getattr(torch.version, "hip", None)
                                                  else "CPU-only build"),
            "cudnn": cudnn, "devices": devices}


def cpu_report() -> dict[str, Any]:
    """CPU cores of the machine and the ones this process may use."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {"cores": os.cpu_count(), "usable_cores": usable}


def memory_report() -> dict[str, int | None]:
    """Total and available RAM in bytes (``/proc/meminfo``; else ``os.sysconf``)."""
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024  # kB
        return {"total_bytes": fields.get("MemTotal"), "available_bytes": fields.get("MemAvailable", fields.get("MemFree"))}
    except (OSError, ValueError, IndexError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return {"total_bytes": page * os.sysconf("SC_PHYS_PAGES"), "available_bytes": page * os.sysconf("SC_AVPHYS_PAGES")}
    except (ValueError, OSError, AttributeError):
        return {"total_bytes": None, "available_bytes": None}


def disk_report(path: Path) -> dict[str, Any]:
    """Free and total bytes of the file system that holds ``path`` (its nearest existing parent)."""
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": display_path(path), "free_bytes": int(usage.free), "total_bytes": int(usage.total)}


# -- data sets ----------------------------------------------------------------------------------
def _used_splits(params: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """``{dataset: {split: [who uses it]}}`` from the stages' and the evaluation's set names."""
    used: dict[str, dict[str, list[str]]] = {}

    def add(item: Any, who: str) -> None:
        if not isinstance(item, str) or "://" in item or item.startswith("pipe:") or item.endswith(".tar"):
            return
        name, _, split = item.partition("/")
        if split:
            used.setdefault(name, {}).setdefault(split, []).append(who)

    for stage in STAGES:
        section = params.get(stage) or {}
        for key in ("train_sets", "eval_sets"):
            sets = section.get(key) or []
            for item in [sets] if isinstance(sets, str) else sets:
                add(item, f"{stage}.{key}")
    evaluate = params.get("evaluate") or {}
    for item in evaluate.get("pair_sets") or []:
        add(item, "evaluate.pair_sets")
    return used


def _resolve_root(root: str) -> Path | None:
    """A local data-set root as the build flow resolves it (``@shared/...``: the shared folder)."""
    if root.startswith("@shared"):
        base = shared_data_dir()
        return None if base is None else base / root.removeprefix("@shared").lstrip("/")
    path = Path(root).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def _provision(entry: dict[str, Any], registry: dict[str, dict], data_root: Path) -> dict[str, Any]:
    """How a data set's source arrives: ``automatic download``, ``manual download``, ``local folder``
    or ``generated``; manual archives with the file, page and path to put it at."""
    if "registry" in entry:
        ids = entry["registry"] if isinstance(entry["registry"], list) else [entry["registry"]]
        manual = []
        for sid in ids:
            source = registry.get(sid, {})
            if source.get("manual"):
                filename = source.get("filename") or sid
                put_at = (data_root / "downloads" / filename).resolve()
                manual.append({"id": sid, "file": filename, "page": source.get("page"), "put_at": str(put_at),
                               "present": put_at.is_file()})
        missing = [m for m in manual if not m["present"]]
        kind = "manual download" if missing else ("manual download (archives present)" if manual
                                                  else "automatic download")
        return {"provision": kind, "registry": ids, "manual": manual}
    if "root" in entry:
        root = _resolve_root(str(entry["root"]))
        return {"provision": "local folder", "root": entry["root"],
                "root_present": bool(root is not None and root.is_dir()), "optional": bool(entry.get("optional"))}
    return {"provision": "generated"}  # e.g. the demo source: rendered by build_data


def datasets_report(params: dict[str, Any], data_root: Path) -> list[dict[str, Any]]:
    """One row per data set and derived set of the profile (see the module docstring)."""
    from data_prep.download import load_registry

    data = params.get("data") or {}
    registry = load_registry(data.get("registry"))
    used = _used_splits(params)
    rows = []
    entries = [(name, entry, "dataset") for name, entry in (data.get("datasets") or {}).items()]
    entries += [(name, spec, "derived") for name, spec in (data.get("derived") or {}).items()]
    for name, entry, kind in entries:
        folder = data_root / "shards" / name
        built = sorted(p.parent.name for p in folder.glob("*/manifest.json")) if folder.is_dir() else []
        needed = {split: who for split, who in sorted(used.get(name, {}).items())}
        row: dict[str, Any] = {
            "name": name, "kind": kind, "source": entry.get("source") or entry.get("kind"),
            "built_splits": built, "used_splits": needed,
            "missing_splits": [s for s in needed if s not in built],
        }
        row["ready"] = bool(built) and not row["missing_splits"]
        if kind == "derived":
            sources = entry.get("from")
            row |= {"provision": "derived", "from": sources if isinstance(sources, list) else [sources]}
        else:
            row |= _provision(entry, registry, data_root)
        rows.append(row)
    return rows


# -- VGG16 --------------------------------------------------------------------------------------
def vgg_report(params: dict[str, Any]) -> dict[str, Any]:
    """Whether stage 2's perceptual term needs VGG16 weights, where they are looked for, found or not."""
    stage2 = params.get("stage2") or {}
    perceptual = stage2.get("perceptual", "vgg")  # Stage2Config's default
    weight = float(stage2.get("perceptual_weight", 0.0) or 0.0)
    configured = stage2.get("vgg16_weights")
    from lure.training.perceptual import default_vgg16_path

    path = Path(configured).expanduser() if configured else default_vgg16_path()
    return {"needed": perceptual == "vgg" and weight > 0, "perceptual": perceptual, "perceptual_weight": weight,
            "path": str(path), "found": path.is_file()}


# -- batches ------------------------------------------------------------------------------------
def stage_plan(params: dict[str, Any], stage: str, nproc: int, bf16_device: bool) -> dict[str, Any]:
    """Steps, per-rank and global batch, crop, bf16 and workers of one stage for ``nproc`` ranks
    (the trainer's typed configuration: :meth:`~lure.training.config.StageConfig.per_rank_batch`)."""
    from lure.training.config import TrainingConfig

    config = TrainingConfig.from_params(params)
    cfg = getattr(config, stage)
    try:
        per_rank: int | None = cfg.per_rank_batch(nproc)
    except ValueError:  # a global batch that does not divide: the trainer refuses it
        per_rank = None
    single_stage = config.stage1.single_stage
    steps = 0 if stage == "stage2" and single_stage else cfg.steps  # stage 2 then only re-exports
    plan = {
        "steps": steps, "per_rank_batch": per_rank, "nproc": nproc,
        "global_batch": None if per_rank is None else per_rank * nproc,
        "global_batch_size": cfg.global_batch_size, "crop": cfg.crop,
        "bf16_requested": cfg.bf16, "bf16": cfg.bf16 and bf16_device, "workers": cfg.workers,
        "require_gpu": cfg.require_gpu,
        "options": {k: getattr(cfg, k) for k in ("compile", "cudnn_benchmark", "tf32", "deterministic")},
    }
    if stage == "stage1":
        plan["single_stage"] = single_stage
        plan["refine_steps"] = cfg.refine_steps
        if cfg.refine_steps:
            plan["refine_crop"] = cfg.refine_crop
            plan["refine_per_rank_batch"] = cfg.refine_batch_size
            plan["refine_global_batch"] = cfg.refine_batch_size * nproc
    return plan


# -- step-time measurement -----------------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_step(params: dict[str, Any], stage: str, device: str, batch: int, crop: int, bf16: bool,
                 refine: bool = False, timed: int = 2, vgg_path: str | None = None) -> dict[str, Any]:
    """Seconds per optimiser step of ``stage``'s objective (see the module docstring): one warm-up
    step, then the mean of ``timed`` steps. ``vgg_path``: VGG16 weights to include the perceptual
    term (``None``: the term is left out)."""
    from dataclasses import replace

    import torch

    from lure.config import model_config
    from lure.models.lure_model import LURE
    from lure.training.config import TrainingConfig
    from lure.training.objectives import Stage1Objective, Stage2Objective

    config = TrainingConfig.from_params(params)
    dev = torch.device(device)
    torch.manual_seed(0)
    model = LURE(model_config(params)).to(dev)
    dim, classes = model.config.text_backbone_dim, model.config.num_tasks
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g).to(dev)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(dev)

    note = None
    s2_weights = config.stage2.loss_weights
    vgg = None
    fusion = stage == "stage2" or config.stage1.single_stage  # the step runs the stage-2 objective
    if fusion and s2_weights.perceptual == "vgg" and s2_weights.perceptual_weight > 0:
        if vgg_path is not None:
            from lure.training.perceptual import load_vgg16_features

            vgg = load_vgg16_features(vgg_path).to(dev)
        else:
            s2_weights = replace(s2_weights, perceptual_weight=0.0)
            note = "VGG16 perceptual term left out (weights not found)"
    objectives: list[tuple[torch.nn.Module, tuple]] = []
    if stage == "stage1":
        single = config.stage1.single_stage
        model.set_stage("joint" if single else "stage1")
        weights = config.stage1.refine_loss_weights if refine else config.stage1.loss_weights
        objectives.append((Stage1Objective(model, weights),
                           (rand(batch, 3, crop, crop), rand(batch, 3, crop, crop),
                            torch.randint(0, 2, (batch,), generator=g).to(dev), randn(batch, dim), randn(batch, dim),
                            torch.randint(0, classes, (batch,), generator=g).to(dev))))
        if single:
            objectives.append((Stage2Objective(model, s2_weights, vgg),
                               (rand(batch, 3, crop, crop), rand(batch, 3, crop, crop), randn(batch, dim),
                                randn(batch, dim))))
    else:
        model.set_stage("stage2")
        objectives.append((Stage2Objective(model, s2_weights, vgg),
                           (rand(batch, 3, crop, crop), rand(batch, 3, crop, crop), randn(batch, dim),
                            randn(batch, dim))))
    cfg = getattr(config, stage)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    model.train()

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16 and dev.type == "cuda"):
            total = sum(objective(*inputs)[0] for objective, inputs in objectives)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    step()  # warm-up: allocator, cuDNN algorithm choice, lazy initialisation
    _sync(dev)
    times = []
    for _ in range(max(1, timed)):
        start = time.perf_counter()
        step()
        _sync(dev)
        times.append(time.perf_counter() - start)
    peak = int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None
    result = {"device": str(dev), "per_rank_batch": batch, "crop": crop, "precision": "bf16" if bf16 and dev.type == "cuda"
              else "fp32", "steps_timed": len(times), "step_s": sum(times) / len(times), "peak_memory_bytes": peak}
    if note:
        result["note"] = note
    return result


def _cuda_settings(params: dict[str, Any], stage: str):
    """Apply a stage's ``tf32``/``cudnn_benchmark`` for the measurement; returns a restore function."""
    import torch

    section = params.get(stage) or {}
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    if "tf32" in section:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(section["tf32"])
    if "cudnn_benchmark" in section:
        torch.backends.cudnn.benchmark = bool(section["cudnn_benchmark"])

    def restore() -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved

    return restore


def estimate(params: dict[str, Any], plans: dict[str, dict], device: str, timed: int, vgg: dict[str, Any],
             progress: bool = False) -> dict[str, Any]:
    """Measured seconds per step and the resulting hours of each phase (see the module docstring)."""
    import torch

    phases: list[tuple[str, str, int, int, int, bool]] = []  # name, stage, steps, batch, crop, refine
    p1, p2 = plans["stage1"], plans["stage2"]
    phases.append(("stage1", "stage1", p1["steps"], p1["per_rank_batch"], p1["crop"], False))
    if p1.get("refine_steps"):
        phases.append(("stage1_refine", "stage1", p1["refine_steps"], p1["refine_per_rank_batch"], p1["refine_crop"],
                       True))
    phases.append(("stage2", "stage2", p2["steps"], p2["per_rank_batch"], p2["crop"], False))
    out: dict[str, Any] = {"measured": True, "device": device, "phases": {}}
    vgg_path = vgg["path"] if vgg["needed"] and vgg["found"] else None
    total = 0.0
    for name, stage, steps, batch, crop, refine in phases:
        row: dict[str, Any] = {"stage": stage, "steps": steps}
        if steps <= 0 or not batch:
            row |= {"step_s": 0.0 if steps <= 0 else None, "seconds": 0.0 if steps <= 0 else None,
                    "hours": 0.0 if steps <= 0 else None,
                    "skipped": "no steps" if steps <= 0 else "no valid per-rank batch (see the warnings)"}
            out["phases"][name] = row
            continue
        if progress:
            print(f"lure doctor: timing {name} (batch {batch}, crop {crop}) on {device} ...", file=sys.stderr,
                  flush=True)
        restore = _cuda_settings(params, stage) if device.startswith("cuda") else (lambda: None)
        try:
            row |= measure_step(params, stage, device, batch, crop, plans[stage]["bf16"], refine, timed, vgg_path)
        except torch.cuda.OutOfMemoryError:
            row |= {"step_s": None, "seconds": None, "hours": None,
                    "error": f"out of memory at per-rank batch {batch}, crop {crop}"}
            out["phases"][name] = row
            torch.cuda.empty_cache()
            continue
        finally:
            restore()
        row["seconds"] = steps * row["step_s"]
        row["hours"] = row["seconds"] / 3600
        total += row["seconds"]
        out["phases"][name] = row
        if device.startswith("cuda"):
            torch.cuda.empty_cache()  # each phase's peak memory on its own
    complete = all(row.get("seconds") is not None for row in out["phases"].values())
    out["total_seconds"] = total if complete else None  # a phase that could not be timed: no total
    out["total_hours"] = total / 3600 if complete else None
    out["note"] = ("optimiser steps on random inputs; data loading, validation, checkpoints, torch.compile and "
                   "the all-reduce between ranks not included")
    return out


# -- the report ---------------------------------------------------------------------------------
def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / GIB:.1f} GiB"


def doctor(profile: str | None = None, params_path: str | None = None, nproc: int | None = None,
           data_root: str | os.PathLike | None = None, device: str | None = None, measure: bool = True,
           measure_steps: int = 2, progress: bool = False) -> dict[str, Any]:
    """The whole report as a dictionary (what ``--json`` prints)."""
    from lure.config import load_params
    from lure.training.config import TrainingConfig

    params = load_params(params_path, profile=profile)
    TrainingConfig.from_params(params)  # a bad stage section fails here, with one line naming the key
    if nproc is not None and nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    tr = torch_report()
    devices = tr["devices"]
    nproc = nproc or max(1, len(devices))
    explicit_device = device is not None
    device = device or ("cuda" if devices else "cpu")
    if device.startswith("cuda") and not devices:
        raise ValueError(f"--device {device}: no CUDA device is visible ({tr['build']})")
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    if device.startswith("cuda") and index >= len(devices):
        raise ValueError(f"--device {device}: only {len(devices)} CUDA device(s) visible")
    bf16_device = device.startswith("cuda") and devices[index]["bf16"]
    root = Path(data_root) if data_root else REPO_ROOT / "data"
    cpu = cpu_report()
    report: dict[str, Any] = {
        "profile": params["profile"], "params": display_path(params_path or REPO_ROOT / "params.yaml"),
        "data_root": display_path(root), "nproc": nproc, "device": device,
        "torch": {k: v for k, v in tr.items() if k != "devices"}, "devices": devices, "cpu": cpu,
        "memory": memory_report(), "disk": disk_report(root),
        "datasets": datasets_report(params, root), "vgg16": vgg_report(params),
        "stages": {stage: stage_plan(params, stage, nproc, bf16_device) for stage in STAGES},
    }
    gpu_profile = params["profile"] in GPU_PROFILES or any(p["require_gpu"] for p in report["stages"].values())
    if not measure:
        report["estimate"] = {"measured": False, "reason": "--no-measure"}
    elif gpu_profile and device == "cpu" and not explicit_device:
        report["estimate"] = {"measured": False, "reason": f"the {params['profile']} profile is meant for GPUs and "
                              "none is visible; not timed on the CPU, --device cpu times it anyway"}
    else:
        report["estimate"] = estimate(params, report["stages"], device, measure_steps, report["vgg16"], progress)
    report["warnings"] = find_warnings(report, params)
    return report


def find_warnings(report: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """One line per problem found in ``report``."""
    out: list[str] = []
    profile, devices, nproc = report["profile"], report["devices"], report["nproc"]
    gpu_profile = profile in GPU_PROFILES or any(p.get("require_gpu") for p in report["stages"].values())
    if gpu_profile and report["torch"]["cuda"] is None:
        out.append(f"{profile} profile on a CPU-only torch build: install a CUDA build (training refuses a CPU "
                   "without --allow-cpu)")
    elif gpu_profile and not devices:
        out.append(f"{profile} profile but no CUDA device is visible (check CUDA_VISIBLE_DEVICES and the driver)")
    elif gpu_profile and report["device"] == "cpu":
        out.append(f"{profile} profile measured on the CPU (--device cpu): the estimate is not the GPU's")
    if devices and nproc > len(devices):
        out.append(f"--nproc {nproc} but only {len(devices)} CUDA device(s) visible: ranks would share devices")
    for name, plan in report["stages"].items():
        if plan["global_batch_size"] and plan["per_rank_batch"] is None:
            out.append(f"{name}: global_batch_size {plan['global_batch_size']} cannot be split over {nproc} "
                       f"processes (training refuses it): use a multiple of {nproc}")
        if plan["bf16_requested"] and not plan["bf16"] and report["device"].startswith("cuda"):
            out.append(f"{name}: bf16 requested but {report['device']} does not compute in bf16: fp32")
        cores = report["cpu"]["usable_cores"] or 1
        if plan["steps"] and plan["workers"] * nproc > cores:
            out.append(f"{name}: {plan['workers']} loader workers x {nproc} process(es) = {plan['workers'] * nproc} "
                       f"on {cores} CPU cores: the loader may bound the step")
    for row in report["datasets"]:
        if not row["missing_splits"]:
            continue  # built, or used by nothing in this profile
        if row.get("provision") == "local folder" and row.get("optional") and not row.get("root_present"):
            continue  # an optional folder (real pairs of a shared folder), skipped by build_data
        sets = ", ".join(f"{row['name']}/{s}" for s in row["missing_splits"])
        what = f"{sets} not built"
        if row.get("provision") == "manual download":
            for m in row["manual"]:
                if not m["present"]:
                    out.append(f"data set {row['name']} needs a manual download: fetch {m['file']} from {m['page']} "
                               f"and put it at {m['put_at']}")
        elif row.get("provision") == "local folder" and not row.get("root_present"):
            out.append(f"{what}: its folder {row['root']} is absent")
        elif row.get("provision") == "derived":
            out.append(f"{what}: build_data derives it from {', '.join(map(str, row['from']))} once that is built")
        else:
            out.append(f"{what}: run `dvc repro build_data` (python -m pipelines.stages.build_data --profile {profile})")
    vgg = report["vgg16"]
    if vgg["needed"] and not vgg["found"]:
        out.append(f"VGG16 weights missing: put torchvision's vgg16-397923af.pth at {vgg['path']} "
                   "(or set stage2.vgg16_weights), or set stage2.perceptual_weight to 0")
    disk = report["disk"]
    if disk["free_bytes"] < LOW_DISK_BYTES:
        out.append(f"only {_gib(disk['free_bytes'])} free at the data root {disk['path']}")
    est = report.get("estimate") or {}
    for name, row in (est.get("phases") or {}).items():
        if row.get("error"):
            out.append(f"{name}: {row['error']} on {est['device']}")
        elif row.get("peak_memory_bytes") and devices:
            dev = devices[int(est["device"].split(":")[1]) if ":" in est["device"] else 0]
            if row["peak_memory_bytes"] > 0.95 * dev["memory_total_bytes"]:
                out.append(f"{name}: a step peaks at {_gib(row['peak_memory_bytes'])} of {dev['name']}'s "
                           f"{_gib(dev['memory_total_bytes'])}")
    return out


def format_report(report: dict[str, Any]) -> str:
    """The one-screen text form of :func:`doctor`'s report."""
    lines = []
    t = report["torch"]
    cudnn = f", cuDNN {t['cudnn']}" if t["cudnn"] else ""
    lines.append(f"lure doctor: profile {report['profile']} ({report['params']}), {report['nproc']} process(es), "
                 f"device {report['device']}")
    lines.append(f"torch {t['version']} ({t['build']}{cudnn})")
    for d in report["devices"]:
        lines.append(f"  cuda:{d['index']} {d['name']}: {_gib(d['memory_total_bytes'])} total, "
                     f"{_gib(d['memory_free_bytes'])} free, compute capability {d['compute_capability']}, "
                     f"bf16 {'yes' if d['bf16'] else 'no'}")
    if not report["devices"]:
        lines.append("  no CUDA device visible")
    cpu, mem, disk = report["cpu"], report["memory"], report["disk"]
    lines.append(f"CPU {cpu['cores']} cores ({cpu['usable_cores']} usable); RAM {_gib(mem['available_bytes'])} available "
                 f"of {_gib(mem['total_bytes'])}; disk {_gib(disk['free_bytes'])} free at {disk['path']}")
    lines.append("data sets (shards under <data root>/shards):")
    for row in report["datasets"]:
        built = ", ".join(row["built_splits"]) or "none"
        state = "ready" if row["ready"] else f"missing {', '.join(row['missing_splits']) or 'shards'}"
        how = row.get("provision", "")
        if how == "derived":
            how = f"derived from {', '.join(map(str, row['from']))}"
        elif how == "local folder":
            how = f"local folder {row['root']}{'' if row['root_present'] else ' (absent)'}"
        elif how.startswith("manual download"):
            files = [m["file"] + ("" if not m["present"] else " (present)") for m in row["manual"]]
            how = f"{how}: {', '.join(files)} -> {display_path(Path(row['manual'][0]['put_at']).parent)}/"
        lines.append(f"  {row['name']:<16} {state:<22} built: {built:<16} {how}")
    vgg = report["vgg16"]
    lines.append(f"VGG16 weights: {'needed' if vgg['needed'] else 'not needed'} (stage2.perceptual {vgg['perceptual']}, "
                 f"weight {vgg['perceptual_weight']:g}); {display_path(vgg['path'])} "
                 f"{'found' if vgg['found'] else 'not found'}")
    lines.append("batches:")
    for name, p in report["stages"].items():
        configured = f" (global_batch_size {p['global_batch_size']})" if p["global_batch_size"] else ""
        batch = "?" if p["per_rank_batch"] is None else p["per_rank_batch"]
        total = "?" if p["global_batch"] is None else p["global_batch"]
        lines.append(f"  {name}: {p['steps']} steps, per-rank batch {batch} x {p['nproc']} process(es) "
                     f"= global {total}{configured}, crop {p['crop']}, "
                     f"bf16 {'on' if p['bf16'] else 'off'}, {p['workers']} loader workers")
        if p.get("refine_steps"):
            lines.append(f"  stage1 refinement: {p['refine_steps']} steps, per-rank batch {p['refine_per_rank_batch']} "
                         f"= global {p['refine_global_batch']}, crop {p['refine_crop']}")
    est = report["estimate"]
    if not est.get("measured"):
        lines.append(f"estimate: not measured ({est.get('reason')})")
    else:
        lines.append(f"estimate on {est['device']} (1 warm-up + timed optimiser steps, random inputs):")
        for name, row in est["phases"].items():
            if row.get("error") or row.get("skipped"):
                lines.append(f"  {name}: {row.get('error') or row.get('skipped')}")
                continue
            peak = f", peak {_gib(row['peak_memory_bytes'])}" if row.get("peak_memory_bytes") else ""
            note = f" ({row['note']})" if row.get("note") else ""
            lines.append(f"  {name}: {row['step_s']:.3f} s/step ({row['precision']}{peak}) x {row['steps']} steps "
                         f"= {row['hours']:.2f} h{note}")
        total = "unknown (a phase could not be timed)" if est["total_hours"] is None else f"{est['total_hours']:.2f} h"
        lines.append(f"  total {total} per run ({est['note']})")
    if report["warnings"]:
        lines.append("warnings:")
        lines += [f"  ! {w}" for w in report["warnings"]]
    else:
        lines.append("no warnings")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------
def _cmd_doctor(args: argparse.Namespace) -> int:
    report = doctor(args.profile, args.params, args.nproc, args.data_root, args.device, measure=not args.no_measure,
                    measure_steps=args.measure_steps, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def add_doctor_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lure doctor`` on the ``lure`` command's sub-parsers."""
    parser = subparsers.add_parser("doctor", help="check this machine, the data and the batches for a profile; "
                                   "estimate the training time")
    parser.add_argument("--profile", default=None, help="profile in params.yaml (default: its `profile` key)")
    parser.add_argument("--params", default=None, help="path to params.yaml (default: the repository's)")
    parser.add_argument("--nproc", type=int, default=None,
                        help="planned training processes (default: visible CUDA devices, or 1)")
    parser.add_argument("--data-root", default=None, help="data folder holding shards/ and downloads/ "
                        "(default: <repo>/data)")
    parser.add_argument("--device", default=None, help="device to time the steps on (default: cuda when visible)")
    parser.add_argument("--no-measure", action="store_true", help="skip timing the training steps")
    parser.add_argument("--measure-steps", type=int, default=2, help="timed steps per phase after one warm-up")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_cmd_doctor)
    return parser
