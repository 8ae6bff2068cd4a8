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
from lure.fileio import sha256_file
from lure.models.lure_model import LURE
from lure.text.bank import TextBank
from lure.text.vocabulary import TASK_CLASS
from lure.training.config import StageConfig, TrainingConfig
from lure.training.distributed import DistContext, barrier, setup_distributed, teardown_distributed
from lure.training.objectives import Stage1Objective, Stage2Objective
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
    """A loss became NaN or infinite; the message names the step, the batch and the last checkpoint."""


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
        self.running: dict[str, list[float]] = {}  # loss values since the last log line
        self.resumed = self._maybe_resume()
        self.wrapped = {k: DistributedDataParallel(v) if ctx.enabled else v for k, v in self.objectives.items()}

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

        seed = int(self.params["seed"]) + 1_000_003 * self.ctx.rank
        # stage-1 batches mix modalities: every sample carries statistics (unused for uncorrected ones)
        statistics = self.model.global_correction is not None
        loaders: dict[str, Any] = {}
        if "restoration" in self.objectives:
            c1 = self.config.stage1
            crop, batch_size = (c1.refine_crop, c1.refine_batch_size) if self.refining else (c1.crop, c1.batch_size)
            loaders["restoration"] = stage1_loader(
                _resolve_urls(list(c1.train_sets), self.data_root), crop=crop, batch_size=batch_size,
                workers=c1.workers, task_weights=c1.refine_sampling_weights if self.refining else c1.task_weights,
                seed=seed + (1 if self.refining else 0),
                whole_view=c1.refine_whole_view if self.refining else 0.0, whole_view_tasks=c1.refine_whole_view_tasks,
                with_statistics=statistics)
        if "fusion" in self.objectives:
            c2 = self.config.stage2
            loaders["fusion"] = fusion_loader(_resolve_urls(list(c2.train_sets), self.data_root), crop=c2.crop,
                                              batch_size=c2.batch_size, workers=c2.workers, seed=seed,
                                              degraded_fraction=c2.degraded_fraction,
                                              gamma_jitter=c2.gamma_jitter, gamma_range=c2.gamma_range,
                                              with_statistics=self._statistics_modalities())
        return {name: DataStream(loader, **self.stream_positions.get(name, {})) for name, loader in loaders.items()}

    def _restoration_inputs(self, batch: dict) -> tuple:
        modality = batch["modality"].to(self.device)
        mods = modality.tolist()
        tasks = list(batch["task"])
        return (batch["lq"].to(self.device), batch["hq"].to(self.device), modality,
                self.bank.sample(tasks, mods, self.text_generator).to(self.device),
                self.bank.sample(["pd"] * len(tasks), mods, self.text_generator).to(self.device),
                torch.tensor([TASK_CLASS[t] for t in tasks], device=self.device),
                self._optional(batch, "lq_stats"), self._optional(batch, "hq_stats"))

    def _statistics_modalities(self) -> tuple[str, ...]:
        """The images a fusion batch needs whole-image statistics of: those the model corrects."""
        if self.model.global_correction is None:
            return ()
        return tuple(self.model.config.global_correction_modalities)

    def _optional(self, batch: dict, key: str) -> torch.Tensor | None:
        return batch[key].to(self.device) if key in batch else None

    def _fusion_inputs(self, batch: dict) -> tuple:
        n = batch["vi"].shape[0]
        pd_vi = self.bank.sample(["pd"] * n, [0] * n, self.text_generator).to(self.device)
        pd_ir = self.bank.sample(["pd"] * n, [1] * n, self.text_generator).to(self.device)
        stats_vi, stats_ir = self._optional(batch, "vi_stats"), self._optional(batch, "ir_stats")
        inputs = (batch["vi"].to(self.device), batch["ir"].to(self.device), pd_vi, pd_ir)
        if "vi_task" not in batch:  # clean pairs (the paper's stage 2)
            return (*inputs, None, None, None, None, stats_vi, stats_ir)
        # degradation-aware stage 2: task descriptions of each image, then the clean targets; the
        # degraded crops' statistics come from the crops, the clean reference's from the whole images
        text_vi = self.bank.sample(list(batch["vi_task"]), [0] * n, self.text_generator).to(self.device)
        text_ir = self.bank.sample(list(batch["ir_task"]), [1] * n, self.text_generator).to(self.device)
        return (inputs[0], inputs[1], text_vi, text_ir, batch["vi_clean"].to(self.device),
                batch["ir_clean"].to(self.device), pd_vi, pd_ir, None, None, stats_vi, stats_ir)

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
        if self.stage == "stage1":
            per_task = s1.eval_samples_per_task
            counts: dict[str, int] = {}
            samples = []
            for sample in iter_stage1_samples(_resolve_urls(list(s1.eval_sets), self.data_root)):
                if counts.get(sample["task"], 0) < per_task:
                    counts[sample["task"]] = counts.get(sample["task"], 0) + 1
                    samples.append(sample)
            metrics.update(stage1_validation(self.model, samples, self.eval_bank, self.device))
        if self.stage == "stage2" or self.single_stage:
            pairs = list(itertools.islice(iter_fusion_pairs(_resolve_urls(list(s2.eval_sets), self.data_root)),
                                          s2.eval_pairs))
            metrics.update(stage2_validation(self.model, pairs, self.eval_bank, self.device))
        self.model.train()
        return metrics

    # -- checkpoints -------------------------------------------------------------------------
    def save_resume_state(self, streams: dict[str, DataStream]) -> None:
        """Write the resume state (rank 0); every rank must call this (it gathers their RNGs and
        ``streams``' positions)."""
        local = {"rng": capture_rng(self.text_generator),
                 "streams": {name: stream.position for name, stream in streams.items()}}
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
            "scheduler": self.scheduler.state_dict(), "ranks": ranks, "running": self.running,
        }, self.outputs.resume_path)

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` of any rank (so that all ranks stop at the same step)."""
        if not self.ctx.enabled:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        from dvclive import Live

        main = self.ctx.is_main
        cfg = self.cfg
        live = Live(str(self.outputs.live_dir), resume=self.resumed, save_dvc_exp=False, dvcyaml=None,
                    report=None) if main else None
        if main and not self.resumed:
            first = self.validate()
            self._log(live, first, prefix="val/", first=True)
        self.model.train()
        # at the refinement's first step the loop builds the refinement's streams itself
        at_boundary = bool(self.refine_steps) and self.step == cfg.steps
        streams = self._streams() if self.step < self.steps and not at_boundary else {}
        self._use_phase_loss_weights()  # a resumed run may start inside the refinement
        log_every, eval_every, ckpt_every = cfg.log_every, cfg.eval_every, cfg.checkpoint_every
        running = self.running
        amp = self.device.type == "cuda" and cfg.bf16
        bar = tqdm(total=self.steps, initial=self.step, desc=self.stage, disable=not (main and self.progress),
                   dynamic_ncols=True)
        with StopSignal() as stop:
            while self.step < self.steps:
                if self.refine_steps and self.step == cfg.steps:
                    if main:  # kept, so that a refinement with other settings can start from it
                        save_checkpoint(self.outputs.first_phase_path, self.model, self.params["profile"],
                                        step=self.step, stage=self.stage, fingerprint=self.fingerprint)
                    streams = self._start_refinement()
                keys: list[str] = []
                total = torch.zeros((), device=self.device)
                parts: dict[str, torch.Tensor] = {}
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                    for name, stream in streams.items():
                        batch = next(stream)
                        keys += list(batch["key"])
                        inputs = (self._restoration_inputs(batch) if name == "restoration"
                                  else self._fusion_inputs(batch))
                        loss, loss_parts = self.wrapped[name](*inputs)
                        total = total + loss
                        parts.update(loss_parts)
                if not torch.isfinite(total):
                    last = self.outputs.resume_path if self.outputs.resume_path.is_file() else "none written yet"
                    raise NonFiniteLossError(
                        f"[{self.stage}] non-finite loss ({float(total.detach())}) at step {self.step + 1}; batch keys: "
                        f"{', '.join(keys)}; last good checkpoint: {last}")
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                   cfg.grad_clip)
                self.optimizer.step()
                self.scheduler.step()
                self.step += 1
                bar.update(1)
                running.setdefault("loss", []).append(float(total.detach()))
                for k, v in parts.items():
                    running.setdefault(f"loss_{k}", []).append(float(v))
                if main and (self.step % log_every == 0 or self.step == self.steps):
                    means = {k: float(np.mean(v)) for k, v in running.items()}
                    means["lr"] = self.scheduler.get_last_lr()[0]
                    self._log(live, means, prefix="train/")
                    bar.set_postfix(loss=f"{means['loss']:.4f}")
                    running.clear()
                if main and self.step % eval_every == 0 and self.step < self.steps:
                    self._log(live, self.validate(), prefix="val/")
                stopping = self._any_rank(stop.signum is not None)
                if stopping or self.step % ckpt_every == 0:
                    self.save_resume_state(streams)
                if stopping:
                    signum = stop.signum or signal.SIGTERM  # another rank received it
                    if main:
                        tqdm.write(f"[{self.stage}] signal {signum}: checkpoint written to "
                                   f"{self.outputs.resume_path} at step {self.step}; rerun to resume")
                    bar.close()
                    raise SystemExit(128 + signum)
        bar.close()
        rank_digests = self._gather_weight_digests()
        final: dict[str, float] = {}
        self.save_resume_state(streams)
        if main:
            final = self.validate()
            self._log(live, final, prefix="val/")
            save_checkpoint(self.outputs.model_path, self.model, self.params["profile"], step=self.step,
                            stage=self.stage, fingerprint=self.fingerprint, rank_weight_sha256=rank_digests)
            live.end()
        barrier(self.ctx)
        return final

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
          device: str | None = None, progress: bool = True, refine_from: str | Path | None = None) -> dict[str, float]:
    """Run (or resume) one training stage; returns the final validation metrics (rank 0).
    ``refine_from``: a first-phase stage-1 checkpoint to start the refinement from
    (:meth:`Trainer.start_at_refinement`)."""
    ctx = setup_distributed(device)
    try:
        trainer = Trainer(stage, params, outputs or StageOutputs.default(stage), ctx, Path(data_root), progress)
        if refine_from is not None:
            if stage != "stage1":
                raise ValueError("refine_from applies to stage1 only")
            trainer.start_at_refinement(refine_from)
        return trainer.run()
    finally:
        teardown_distributed(ctx)
