"""Two-stage training of LURE (docs/paper-map.md#training): the loop, checkpoints, resume, logging.

One entry point, :func:`train`, runs either stage from the resolved ``params.yaml``:

* ``stage1``: restoration triplets ``(x, y, m)`` + task texts; everything but the fusion
  module trains (or everything, on restoration and fusion batches at once, when
  ``stage1.single_stage`` is set: the paper's "single stage" ablation);
* ``stage2``: clean fusion pairs encoded with the pseudo-degradation texts; only the fusion
  module trains, starting from the stage-1 weights.

Resume states are written atomically every ``checkpoint_every`` steps, at the end, and on
SIGTERM/SIGINT; a rerun with the same parameters resumes exactly (what the state holds:
:mod:`lure.training.resume`). DVCLive logs losses, learning rate and validation figures under
``dvclive/<stage>``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import signal
import statistics
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lure.checkpoint import RESUME_FORMAT, atomic_torch_save, load_model, read_checkpoint, save_checkpoint
from lure.config import model_config
from lure.fileio import atomic_write_text, sha256_file
from lure.models.lure_model import LURE
from lure.text.bank import TextBank
from lure.text.vocabulary import TASK_CLASS
from lure.training.config import StageConfig, TrainingConfig
from lure.training.distributed import (
    CUDA_INSTALL_HINT,
    DistContext,
    any_rank_flags,
    barrier,
    configure_backends,
    describe_torch_build,
    setup_distributed,
    teardown_distributed,
)
from lure.training.objectives import CombinedObjective, Stage1Objective, Stage2Objective, sample_detail_level
from lure.training.resume import (
    DataStream,
    StageOutputs,
    StopSignal,
    _sets_digest,
    capture_rng,
    code_digest,
    fingerprint,
    restore_rng,
)
from lure.training.validation import stage1_validation, stage2_validation

STAGES = ("stage1", "stage2")


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite (on any rank: all ranks raise it at the same step); the message
    names the step, the batch and the resume state written with the last good step's weights."""


#: Steps left out of the throughput figures at the start of a run (allocator, autotuning, compile).
THROUGHPUT_WARMUP_STEPS = 5


def cosine_with_warmup(total_steps: int, warmup: int, lr: float, lr_min: float):
    """LambdaLR factor: linear warm-up, then cosine decay from ``lr`` to ``lr_min``."""
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return (lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * progress))) / lr
    return factor


#: Added to ``seed`` for the RNGs and data streams of stage 1's refinement phase.
REFINE_SEED_OFFSET = 7919


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resolve_urls(sets: list[str], data_root: Path) -> list[str]:
    """Shard URLs of named sets (``<dataset>/<split>`` under ``data/shards``) or literal URLs."""
    from lure.data.loaders import shard_urls

    urls: list[str] = []
    for item in sets:
        if "://" in item or item.startswith("pipe:") or item.endswith(".tar"):
            urls.append(item)
        else:
            urls.extend(shard_urls(data_root / "shards" / item))
    if not urls:
        raise FileNotFoundError(f"no shards found for {sets} under {data_root / 'shards'}: run the build_data stage")
    return urls


def _manifest_tasks(sets: list[str], data_root: Path) -> set[str] | None:
    """The stage-1 tasks the named sets' manifests list (``None`` when a set is a literal URL or has
    no manifest: then nothing is known about the tasks and a reader must scan everything)."""
    tasks: set[str] = set()
    for item in sets:
        manifest = data_root / "shards" / item / "manifest.json"
        if not manifest.is_file():
            return None
        per_task = json.loads(manifest.read_text()).get("stage1", {}).get("per_task", {})
        tasks |= {key.split("/")[0] for key in per_task}
    return tasks


def _task_texts(split: str) -> dict[str, list[str]]:
    from lure.text.canonical import load_task_texts

    return {key: splits[split] for key, splits in load_task_texts().items()}


class Trainer:
    """Holds the model, objectives, optimiser and data streams of one stage run."""

    def __init__(self, stage: str, params: dict[str, Any], outputs: StageOutputs, ctx: DistContext,
                 data_root: Path, progress: bool = True) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage, self.params, self.outputs, self.ctx = stage, params, outputs, ctx
        self.config = TrainingConfig.from_params(params)
        self.cfg: StageConfig = getattr(self.config, stage)
        self.single_stage = self.config.stage1.single_stage
        self.data_root, self.progress = data_root, progress
        self.device = ctx.device
        _seed_everything(int(params["seed"]) + ctx.rank)

        from lure.text.sentence_encoder import load_sentence_encoder

        te = params.get("text_encoder", {})
        encoder = load_sentence_encoder(te.get("backbone"), max_length=int(te.get("max_length", 64)))
        train_texts, heldout_texts = _task_texts("train"), _task_texts("heldout")
        self.bank = TextBank(encoder, train_texts)
        self.eval_bank = TextBank(encoder, heldout_texts)
        self.fingerprint = fingerprint(params, stage, self._input_digests(train_texts, heldout_texts))
        self.model = self._build_model().to(self.device)
        if self.cfg.compile:  # in place: the state_dict keys stay those of the plain model
            for module in (self.model.encoder, self.model.decoder, self.model.fusion):
                module.compile()
        self.objectives = self._build_objectives()
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        cfg = self.cfg
        self.steps = 0 if (stage == "stage2" and self.single_stage) else cfg.steps
        self.refine_steps = cfg.refine_steps if stage == "stage1" else 0
        self.steps += self.refine_steps
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor())
        self.step = 0
        self.text_generator = torch.Generator().manual_seed(int(params["seed"]) * 1000 + ctx.rank)
        self.stream_positions: dict[str, dict[str, int]] = {}
        # loss values since the last log line: floats from a resume state, else detached tensors on
        # the device (read at the log step, so that logging costs no synchronisation per step)
        self.running: dict[str, list[float | torch.Tensor]] = {}
        self.resumed = self._maybe_resume()
        # one module for the stage's objectives (the single-stage ablation has two): one DDP wrapper
        self.objective = CombinedObjective(self.objectives)
        self.wrapped = (DistributedDataParallel(self.objective) if ctx.enabled and self.objectives
                        else self.objective)
        self.step_times: list[tuple[float, float, int]] = []  # (step s, loader wait s, samples) per step

    # -- construction --------------------------------------------------------------------
    def _input_digests(self, *texts: dict[str, list[str]]) -> dict[str, str]:
        """Digests of what besides ``params`` decides the run (see :func:`fingerprint`)."""
        sets = [*self.cfg.train_sets, *self.cfg.eval_sets]
        if self.stage == "stage1" and self.single_stage:
            sets += [*self.config.stage2.train_sets, *self.config.stage2.eval_sets]
        inputs = {"code": code_digest(), "data": _sets_digest(sets, self.data_root),
                  "texts": hashlib.sha256(json.dumps(texts, sort_keys=True).encode()).hexdigest()}
        if self.stage == "stage2" and self.outputs.stage1_model_path.is_file():
            inputs["stage1_model"] = sha256_file(self.outputs.stage1_model_path)
        return inputs

    def _build_model(self) -> LURE:
        config = model_config(self.params)
        if self.stage == "stage1":
            model = LURE(config)
            model.set_stage("joint" if self.single_stage else "stage1")
            return model
        model, _ = load_model(self.outputs.stage1_model_path, expected=config)
        model.set_stage("stage2")
        return model

    def _build_objectives(self) -> dict[str, torch.nn.Module]:
        s1, s2 = self.config.stage1, self.config.stage2
        objectives: dict[str, torch.nn.Module] = {}
        if self.stage == "stage1":
            objectives["restoration"] = Stage1Objective(self.model, s1.loss_weights)
        if self.stage == "stage2" or self.single_stage:
            vgg = None
            if s2.perceptual_weight > 0 and s2.perceptual == "vgg":
                from lure.training.perceptual import load_vgg16_features

                vgg = load_vgg16_features(s2.vgg16_weights).to(self.device)
            if self.stage == "stage1" or not self.single_stage:
                objectives["fusion"] = Stage2Objective(self.model, s2.loss_weights, vgg)
        return objectives

    def _maybe_resume(self) -> bool:
        path = self.outputs.resume_path
        if not path.is_file():
            return False
        state = read_checkpoint(path, map_location="cpu")
        if state.get("format") != RESUME_FORMAT:
            tqdm.write(f"[{self.stage}] ignoring {path}: it was written by an older version ({state.get('format')})")
            return False
        if state.get("fingerprint") != self.fingerprint:
            tqdm.write(f"[{self.stage}] ignoring {path}: it was written with other parameters, code, data or texts")
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        ranks = state["ranks"]
        if len(ranks) != self.ctx.world_size:
            tqdm.write(f"[{self.stage}] {path} was written by {len(ranks)} process(es), this run has "
                       f"{self.ctx.world_size}: the data positions resume, the run is not an exact continuation")
        mine = ranks[self.ctx.rank] if self.ctx.rank < len(ranks) else ranks[0]
        if self.ctx.rank < len(ranks):
            restore_rng(mine["rng"], self.text_generator)
        self.stream_positions = {k: dict(v) for k, v in mine["streams"].items()}
        self.running = {k: list(v) for k, v in state["running"].items()}
        tqdm.write(f"[{self.stage}] resuming from {path} at step {self.step}/{self.steps}")
        return True

    def _lr_factor(self):
        """LambdaLR factor over the whole run: warm-up and cosine decay, then (stage 1 with
        ``refine_steps``) a second warm-up and cosine decay from ``refine_lr``."""
        cfg = self.cfg
        if not self.refine_steps:
            return cosine_with_warmup(max(1, self.steps), cfg.warmup_steps, cfg.lr, cfg.lr_min)
        first = cosine_with_warmup(max(1, cfg.steps), cfg.warmup_steps, cfg.lr, cfg.lr_min)
        refine = cosine_with_warmup(self.refine_steps, cfg.refine_warmup_steps, cfg.refine_lr, cfg.lr_min)
        scale, boundary = cfg.refine_lr / cfg.lr, cfg.steps

        def factor(step: int) -> float:
            return first(step) if step < boundary else scale * refine(step - boundary)
        return factor

    @property
    def refining(self) -> bool:
        """Whether the run is in stage 1's large-crop refinement (from step ``stage1.steps`` on)."""
        return bool(self.refine_steps) and self.step >= self.cfg.steps

    def _use_phase_loss_weights(self) -> None:
        """Give the restoration objective the loss weights of the current phase (the refinement
        may weigh ``L_unified`` differently: ``stage1.refine_unified_weight``)."""
        if "restoration" in self.objectives:
            s1 = self.config.stage1
            self.objectives["restoration"].weights = s1.refine_loss_weights if self.refining else s1.loss_weights

    def _start_refinement(self) -> dict[str, DataStream]:
        """Enter the refinement: fresh optimiser moments, RNG states and data streams (positions
        0), so that the phase is a function of the weights the first phase left and the seed."""
        self.optimizer.state.clear()
        seed = int(self.params["seed"]) + REFINE_SEED_OFFSET
        _seed_everything(seed + self.ctx.rank)
        self.text_generator.manual_seed(seed * 1000 + self.ctx.rank)
        self.stream_positions = {}
        self._use_phase_loss_weights()
        if self.ctx.is_main:
            tqdm.write(f"[{self.stage}] step {self.step}: refining on {self.cfg.refine_crop}-px crops "
                       f"(batch {self.cfg.refine_batch_size}) for {self.refine_steps} steps")
        return self._streams()

    def start_at_refinement(self, checkpoint: str | Path) -> None:
        """Begin at the refinement with the weights of a finished first phase: a stage-1
        ``model.pt`` of ``stage1.steps`` steps and the same model configuration. The refinement
        depends on nothing else, so the result equals that of one uninterrupted run. A resume
        state already inside the refinement (a killed refinement) is resumed instead."""
        if not self.refine_steps:
            raise ValueError("stage1.refine_steps is 0: there is no refinement to start")
        if self.resumed:
            if self.step > self.cfg.steps:
                return
            raise ValueError(f"{self.outputs.resume_path} holds a run of the first phase to resume; "
                             "remove it to start at the refinement")
        model, payload = load_model(checkpoint, expected=model_config(self.params))
        if payload.get("step") != self.cfg.steps:
            raise ValueError(f"{checkpoint} holds {payload.get('step')} steps; the refinement starts after "
                             f"stage1.steps = {self.cfg.steps}")
        self.model.load_state_dict(model.state_dict())
        self.step = self.cfg.steps
        self.scheduler.last_epoch = self.step - 1
        with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": intended here
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()  # the learning rate of step `steps`

    # -- data ------------------------------------------------------------------------------
    def _streams(self) -> dict[str, DataStream]:
        """One stream per objective, seeded per rank, at the positions of the resume state (if any)."""
        from lure.data.loaders import fusion_loader, stage1_loader

        # one seed for all ranks: the loaders give each rank (and worker) its own shards
        seed = int(self.params["seed"])
        split = {"rank": self.ctx.rank, "world_size": self.ctx.world_size, "pin_memory": self.device.type == "cuda"}
        # stage-1 batches mix modalities: every sample carries statistics (unused for uncorrected ones)
        statistics = self.model.global_correction is not None
        loaders: dict[str, Any] = {}
        if "restoration" in self.objectives:
            c1 = self.config.stage1
            crop, batch_size = ((c1.refine_crop, c1.refine_batch_size) if self.refining
                                else (c1.crop, c1.per_rank_batch(self.ctx.world_size)))
            loaders["restoration"] = stage1_loader(
                _resolve_urls(list(c1.train_sets), self.data_root), crop=crop, batch_size=batch_size,
                workers=c1.workers, task_weights=c1.refine_sampling_weights if self.refining else c1.task_weights,
                seed=seed + (1 if self.refining else 0),
                whole_view=c1.refine_whole_view if self.refining else 0.0, whole_view_tasks=c1.refine_whole_view_tasks,
                with_statistics=statistics, **split)
        if "fusion" in self.objectives:
            c2 = self.config.stage2
            loaders["fusion"] = fusion_loader(_resolve_urls(list(c2.train_sets), self.data_root), crop=c2.crop,
                                              batch_size=c2.per_rank_batch(self.ctx.world_size),
                                              workers=c2.workers, seed=seed,
                                              degraded_fraction=c2.degraded_fraction,
                                              gamma_jitter=c2.gamma_jitter, gamma_range=c2.gamma_range,
                                              with_statistics=self._statistics_modalities(), **split)
        return {name: DataStream(loader, **self.stream_positions.get(name, {})) for name, loader in loaders.items()}

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A host tensor on the training device (asynchronous from the loader's pinned memory)."""
        return tensor.to(self.device, non_blocking=True)

    def _restoration_inputs(self, batch: dict) -> tuple:
        mods = batch["modality"].tolist()  # a host tensor: no device synchronisation
        tasks = list(batch["task"])
        task_class = torch.tensor([TASK_CLASS[t] for t in tasks])
        return (self._to_device(batch["lq"]), self._to_device(batch["hq"]), self._to_device(batch["modality"]),
                self._to_device(self.bank.sample(tasks, mods, self.text_generator)),
                self._to_device(self.bank.sample(["pd"] * len(tasks), mods, self.text_generator)),
                self._to_device(task_class), self._optional(batch, "lq_stats"), self._optional(batch, "hq_stats"))

    def _statistics_modalities(self) -> tuple[str, ...]:
        """The images a fusion batch needs whole-image statistics of: those the model corrects."""
        if self.model.global_correction is None:
            return ()
        return tuple(self.model.config.global_correction_modalities)

    def _optional(self, batch: dict, key: str) -> torch.Tensor | None:
        return self._to_device(batch[key]) if key in batch else None

    def _detail_level(self) -> float | None:
        """This step's detail level (:func:`sample_detail_level`); ``None`` for a model without
        detail control."""
        if self.model.detail_conditioning is None:
            return None
        return sample_detail_level(int(self.params["seed"]), self.step, self.config.stage2.detail_endpoints)

    def _fusion_inputs(self, batch: dict) -> tuple:
        n = batch["vi"].shape[0]
        detail = self._detail_level()
        pd_vi = self._to_device(self.bank.sample(["pd"] * n, [0] * n, self.text_generator))
        pd_ir = self._to_device(self.bank.sample(["pd"] * n, [1] * n, self.text_generator))
        stats_vi, stats_ir = self._optional(batch, "vi_stats"), self._optional(batch, "ir_stats")
        inputs = (self._to_device(batch["vi"]), self._to_device(batch["ir"]), pd_vi, pd_ir)
        if "vi_task" not in batch:  # clean pairs (the paper's stage 2)
            return (*inputs, None, None, None, None, stats_vi, stats_ir, None, None, detail)
        # degradation-aware stage 2: task descriptions of each image, then the clean targets; the
        # degraded crops' statistics come from the crops, the clean reference's from the whole images
        text_vi = self._to_device(self.bank.sample(list(batch["vi_task"]), [0] * n, self.text_generator))
        text_ir = self._to_device(self.bank.sample(list(batch["ir_task"]), [1] * n, self.text_generator))
        return (inputs[0], inputs[1], text_vi, text_ir, self._to_device(batch["vi_clean"]),
                self._to_device(batch["ir_clean"]), pd_vi, pd_ir, None, None, stats_vi, stats_ir, detail)

    # -- validation ------------------------------------------------------------------------
    @contextmanager
    def _rng_untouched(self) -> Iterator[None]:
        """Leave every RNG as it was (validation must not shift the training streams)."""
        state = capture_rng(self.text_generator)
        try:
            yield
        finally:
            restore_rng(state, self.text_generator)

    def validate(self) -> dict[str, float]:
        """Validation metrics of the current weights; every RNG is left as it was."""
        with self._rng_untouched():
            return self._validate()

    def _validate(self) -> dict[str, float]:
        from lure.data.loaders import iter_fusion_pairs, iter_stage1_samples

        s1, s2 = self.config.stage1, self.config.stage2
        metrics: dict[str, float] = {}
        if self.stage == "stage1":  # the first samples of each task, without reading the whole split
            samples = list(iter_stage1_samples(_resolve_urls(list(s1.eval_sets), self.data_root),
                                               per_task=s1.eval_samples_per_task,
                                               tasks=_manifest_tasks(list(s1.eval_sets), self.data_root)))
            metrics.update(stage1_validation(self.model, samples, self.eval_bank, self.device))
        if self.stage == "stage2" or self.single_stage:
            pairs = list(itertools.islice(iter_fusion_pairs(_resolve_urls(list(s2.eval_sets), self.data_root)),
                                          s2.eval_pairs))
            metrics.update(stage2_validation(self.model, pairs, self.eval_bank, self.device))
        self.model.train()
        return metrics

    # -- checkpoints -------------------------------------------------------------------------
    def save_resume_state(self, positions: dict[str, dict[str, int]]) -> None:
        """Write the resume state (rank 0) with the data streams at ``positions``; every rank must
        call this (it gathers their RNGs and stream positions)."""
        local = {"rng": capture_rng(self.text_generator), "streams": positions}
        ranks = [local]
        if self.ctx.enabled:
            import torch.distributed as dist

            gathered: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(gathered, local)
            ranks = gathered
        if not self.ctx.is_main:
            return
        atomic_torch_save({
            "format": RESUME_FORMAT, "fingerprint": self.fingerprint, "step": self.step,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "ranks": ranks, "running": self._running_values(),
        }, self.outputs.resume_path)

    def _running_values(self) -> dict[str, list[float]]:
        """The loss values awaiting the next log line as floats (one device read per key; values
        from a resume state are floats already)."""
        out: dict[str, list[float]] = {}
        for key, values in self.running.items():
            tensors = [v for v in values if isinstance(v, torch.Tensor)]
            read = iter(torch.stack(tensors).tolist() if tensors else [])
            out[key] = [next(read) if isinstance(v, torch.Tensor) else float(v) for v in values]
        return out

    def _record_losses(self, total: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """Keep this step's loss values on the device until the next log line."""
        self.running.setdefault("loss", []).append(total.detach())
        for k, v in parts.items():
            self.running.setdefault(f"loss_{k}", []).append(v.detach())

    # -- the loop --------------------------------------------------------------------------------
    def describe(self) -> str:
        """One line: device, processes, torch build, precision, global batch, validation bound and
        the collective timeout (printed by rank 0 at the start of a run)."""
        ctx, cfg = self.ctx, self.cfg
        device = str(ctx.device)
        if ctx.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(ctx.device)})"
        per_rank = self._batch_size()
        precision = ("bf16 autocast, losses in float32" if self._amp() else
                     "float32" + (" (bf16 autocast runs on GPUs only)" if cfg.bf16 and ctx.device.type != "cuda" else ""))
        parts = [f"device {device}", describe_torch_build(), f"precision {precision}",
                 f"global batch {per_rank * ctx.world_size} = {per_rank} per process x {ctx.world_size}"]
        if ctx.enabled:
            parts.append(f"{ctx.backend} process group, collective timeout {ctx.timeout_s:.0f} s")
        parts.append(f"validation on rank 0 only: {self._validation_bound()}")
        if cfg.deterministic:
            parts.append("deterministic algorithms")
        if cfg.compile:
            parts.append("torch.compile")
        return f"[{self.stage}] " + "; ".join(parts)

    def _batch_size(self) -> int:
        """The per-process batch of the stage's main stream at the current phase."""
        if self.stage == "stage1" and self.refining:
            return self.cfg.refine_batch_size
        return self.cfg.per_rank_batch(self.ctx.world_size)

    def _validation_bound(self) -> str:
        s1, s2 = self.config.stage1, self.config.stage2
        bounds = []
        if self.stage == "stage1":
            bounds.append(f"{s1.eval_samples_per_task} stage-1 samples per task")
        if self.stage == "stage2" or self.single_stage:
            bounds.append(f"{s2.eval_pairs} fusion pairs")
        return " and ".join(bounds)

    def _amp(self) -> bool:
        return self.device.type == "cuda" and self.cfg.bf16

    def _timed_validation(self) -> dict[str, float]:
        """:meth:`validate`, warning when it takes over half the process-group timeout (the other
        ranks wait for rank 0 in their next collective meanwhile)."""
        start = time.perf_counter()
        metrics = self.validate()
        took = time.perf_counter() - start
        if self.ctx.enabled and self.ctx.timeout_s and took > 0.5 * self.ctx.timeout_s:
            tqdm.write(f"[{self.stage}] warning: validation took {took:.0f} s, over half the collective timeout "
                       f"({self.ctx.timeout_s:.0f} s): lower eval_samples_per_task/eval_pairs or raise dist_timeout_s")
        return metrics

    def run(self) -> dict[str, float]:
        from dvclive import Live

        main = self.ctx.is_main
        cfg = self.cfg
        if main:
            tqdm.write(self.describe())
        live = Live(str(self.outputs.live_dir), resume=self.resumed, save_dvc_exp=False, dvcyaml=None,
                    report=None) if main else None
        if main and not self.resumed:
            first = self._timed_validation()
            self._log(live, first, prefix="val/", first=True)
        self.model.train()
        # at the refinement's first step the loop builds the refinement's streams itself
        at_boundary = bool(self.refine_steps) and self.step == cfg.steps
        streams = self._streams() if self.step < self.steps and not at_boundary else {}
        self._use_phase_loss_weights()  # a resumed run may start inside the refinement
        bar = tqdm(total=self.steps, initial=self.step, desc=self.stage, disable=not (main and self.progress),
                   dynamic_ncols=True)
        last_end = time.perf_counter()
        with StopSignal() as stop:
            while self.step < self.steps:
                if self.refine_steps and self.step == cfg.steps:
                    if main:  # kept, so that a refinement with other settings can start from it
                        save_checkpoint(self.outputs.first_phase_path, self.model, self.params["profile"],
                                        step=self.step, stage=self.stage, fingerprint=self.fingerprint)
                    streams = self._start_refinement()
                    last_end = time.perf_counter()
                stopping = self._train_step(streams, stop, bar, live, last_end)
                last_end = time.perf_counter()
                if stopping:
                    signum = stop.signum or signal.SIGTERM  # another rank received it
                    if main:
                        self._write_throughput()  # a run stopped by its time limit reports too
                        tqdm.write(f"[{self.stage}] signal {signum}: checkpoint written to "
                                   f"{self.outputs.resume_path} at step {self.step}; rerun to resume")
                    bar.close()
                    raise SystemExit(128 + signum)
        bar.close()
        rank_digests = self._gather_weight_digests()
        final: dict[str, float] = {}
        self.save_resume_state(self._positions(streams))
        if main:
            self._write_throughput()
            final = self.validate()
            self._log(live, final, prefix="val/")
            save_checkpoint(self.outputs.model_path, self.model, self.params["profile"], step=self.step,
                            stage=self.stage, fingerprint=self.fingerprint, rank_weight_sha256=rank_digests)
            live.end()
        barrier(self.ctx)
        return final

    @staticmethod
    def _positions(streams: dict[str, DataStream]) -> dict[str, dict[str, int]]:
        return {name: stream.position for name, stream in streams.items()}

    def _train_step(self, streams: dict[str, DataStream], stop: StopSignal, bar: tqdm, live: Any,
                    step_start: float) -> bool:
        """One optimiser step; returns whether the run must stop (a signal on any rank).

        Its one host synchronisation: the ranks agree on ``[loss not finite, stop signal]`` before
        the backward pass. A non-finite loss on any rank makes every rank write the resume state of
        the last good step (whose resume skips the offending batch) and raise
        :class:`NonFiniteLossError` together, instead of one rank stopping while the others wait in
        the gradient all-reduce."""
        main, cfg = self.ctx.is_main, self.cfg
        batches = {name: next(stream) for name, stream in streams.items()}
        loaded = time.perf_counter()
        inputs = {name: self._restoration_inputs(batch) if name == "restoration" else self._fusion_inputs(batch)
                  for name, batch in batches.items()}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._amp()):
            total, parts = self.wrapped(inputs)
        flags = torch.zeros(2, device=self.device)
        flags[0] = (~torch.isfinite(total.detach())).float()
        flags[1] = float(stop.signum is not None)
        non_finite, stopping = any_rank_flags(self.ctx, flags)
        if non_finite:
            self._stop_non_finite(total, batches, streams)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        bar.update(1)
        self._record_losses(total, parts)
        samples = sum(len(batch["key"]) for batch in batches.values()) * self.ctx.world_size
        self.step_times.append((time.perf_counter() - step_start, loaded - step_start, samples))
        if self.step % cfg.log_every == 0 or self.step == self.steps:
            means = {k: float(np.mean(v)) for k, v in self._running_values().items()}
            self.running.clear()  # on every rank: only rank 0 logs, but every rank reads
            if main:
                means["lr"] = self.scheduler.get_last_lr()[0]
                self._log(live, means, prefix="train/")
                bar.set_postfix(loss=f"{means['loss']:.4f}")
        if main and self.step % cfg.eval_every == 0 and self.step < self.steps:
            self._log(live, self._timed_validation(), prefix="val/")
        if stopping or self.step % cfg.checkpoint_every == 0:
            self.save_resume_state(self._positions(streams))
        return stopping

    def _stop_non_finite(self, total: torch.Tensor, batches: dict[str, dict], streams: dict[str, DataStream]) -> None:
        """Write the resume state of the last good step (the streams past the offending batch) on
        every rank together and raise :class:`NonFiniteLossError` with one line."""
        self.save_resume_state(self._positions(streams))
        keys = [key for batch in batches.values() for key in batch["key"]]
        value = float(total.detach())
        where = f"{value} on rank {self.ctx.rank}" if not math.isfinite(value) else "on another rank"
        raise NonFiniteLossError(
            f"[{self.stage}] non-finite loss ({where}) at step {self.step + 1}; batch keys: {', '.join(keys)}; "
            f"last good checkpoint: {self.outputs.resume_path} (step {self.step}; a rerun resumes after this batch)")

    def _write_throughput(self) -> None:
        """``<checkpoint_dir>/throughput.json``: step time, loader wait, samples/s and peak memory over
        the run's steps after the first :data:`THROUGHPUT_WARMUP_STEPS` (rank 0's view)."""
        timed = self.step_times[THROUGHPUT_WARMUP_STEPS:] or self.step_times
        if not timed:
            return
        steps, waits, samples = (list(column) for column in zip(*timed))
        cuda, batch = self.device.type == "cuda", self._batch_size()
        report = {
            "stage": self.stage, "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if cuda else "cpu",
            "world_size": self.ctx.world_size, "per_rank_batch": batch, "global_batch": batch * self.ctx.world_size,
            "crop": self.cfg.refine_crop if self.stage == "stage1" and self.refining else self.cfg.crop,
            "precision": "bf16" if self._amp() else "fp32", "steps_timed": len(steps),
            "step_s_median": statistics.median(steps), "step_s_mean": statistics.fmean(steps),
            "loader_wait_s_mean": statistics.fmean(waits), "loader_wait_fraction": sum(waits) / sum(steps),
            "samples_per_s": sum(samples) / sum(steps),
            "peak_memory_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else None,
        }
        atomic_write_text(self.outputs.checkpoint_dir / "throughput.json", json.dumps(report, indent=2) + "\n")

    def _gather_weight_digests(self) -> list[str]:
        """sha256 of every rank's parameters (one entry per rank; identical under correct DDP)."""
        digest = hashlib.sha256()
        for tensor in self.model.state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        if not self.ctx.enabled:
            return [digest.hexdigest()]
        import torch.distributed as dist

        gathered: list[str | None] = [None] * self.ctx.world_size
        dist.all_gather_object(gathered, digest.hexdigest())
        return [str(d) for d in gathered]

    def _log(self, live, metrics: dict[str, float], prefix: str, first: bool = False) -> None:
        if live is None:
            return
        live.step = self.step
        for k, v in metrics.items():
            if isinstance(v, float) and not math.isfinite(v):
                continue
            live.log_metric(f"{prefix}{k}", v)
            if first:
                live.log_metric(f"initial/{k}", v, plot=False)
        live.make_summary()


def train(stage: str, params: dict[str, Any], outputs: StageOutputs | None = None, data_root: str | Path = "data",
          device: str | None = None, progress: bool = True, refine_from: str | Path | None = None,
          allow_cpu: bool = False) -> dict[str, float]:
    """Run (or resume) one training stage; returns the final validation metrics (rank 0).
    ``device``: ``cpu``, ``cuda`` or ``None`` (a GPU when visible; under ``torchrun`` each process
    takes ``cuda:LOCAL_RANK``: :func:`~lure.training.distributed.resolve_device`).
    ``refine_from``: a first-phase stage-1 checkpoint to start the refinement from
    (:meth:`Trainer.start_at_refinement`). ``allow_cpu``: train on a CPU although the stage says
    ``require_gpu`` (ValueError otherwise, naming how to install a CUDA build of torch)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    cfg: StageConfig = getattr(TrainingConfig.from_params(params), stage)
    ctx = setup_distributed(device, timeout_s=cfg.dist_timeout_s)
    try:
        if cfg.require_gpu and ctx.device.type != "cuda" and not allow_cpu:
            raise ValueError(f"the {params.get('profile')} profile's {stage} is meant for GPUs (require_gpu) and "
                             f"this run would train on the CPU with {describe_torch_build()}: install a CUDA "
                             f"build ({CUDA_INSTALL_HINT}) or pass --allow-cpu")
        configure_backends(ctx.device, cfg.cudnn_benchmark, cfg.tf32, cfg.deterministic)
        trainer = Trainer(stage, params, outputs or StageOutputs.default(stage), ctx, Path(data_root), progress)
        if refine_from is not None:
            if stage != "stage1":
                raise ValueError("refine_from applies to stage1 only")
            trainer.start_at_refinement(refine_from)
        return trainer.run()
    finally:
        teardown_distributed(ctx)
