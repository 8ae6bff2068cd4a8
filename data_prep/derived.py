"""Derived data sets, built from parsed sources with the seeded degradations.

* :func:`super_resolution_set` (LLVIP-SR): stage-1 infrared triplets ``sr4``/``sr8`` — ``lq`` is the
  bicubic ×4/×8 down-then-up infrared image, ``hq`` the original high-resolution infrared image
  (InstructIR practice; the paper also builds its SR test set on M3FD the same way).
* :func:`restoration_set`: stage-1 triplets of every task from the clean images of fusion pairs —
  visible ``pd``/``ll``/``hz``/``oe`` and infrared ``pd``/``lc``/``sr4``/``sr8`` — with the seeded
  degradations, ``variants`` differently seeded degraded copies per image and task (the real-image
  substitute for the paper's restoration data sets, ours).
* :func:`haze_set` (M3FD-haze, evaluation only): fusion pairs whose visible image is hazy. The paper
  hand-picks real hazy M3FD scenes; give their names in ``names`` to use exactly those scenes as
  they are, otherwise every scene gets synthetic haze (``degrade(vi, "hz")``) with the clean image
  kept as ``vi_clean``.
* :func:`degraded_sets` builds the degraded evaluation sets of any clean pair set: each single task
  (LL, HZ, OE, LC, SR4, SR8) and the combinations OE+LC and LL+LC, keeping the clean images
  (``ir_clean``, ``vi_clean``) and the tasks (``vi_task``, ``ir_task``).

Lazy images are ``functools.partial`` objects of module-level functions, so records pickle (Dask/Ray).
"""

from __future__ import annotations

import hashlib
from functools import partial

import numpy as np

from data_prep.degradations import degrade, degrade_pair
from data_prep.seeding import sample_seed as _sample_seed
from data_prep.sources.base import FusionRecord, ImageRef, ParsedSource, Stage1Record, load_image
from lure.text.vocabulary import DEGRADED_EVAL_TASKS, INFRARED, VISIBLE


def _degraded(ref: ImageRef, modality: int, task: str, seed: int) -> np.ndarray:
    return degrade(load_image(ref, modality), task, seed)


def _pair_part(ir: ImageRef, vi: ImageRef, vi_task: str, ir_task: str, seed: int, which: int) -> np.ndarray:
    return degrade_pair(load_image(ir, INFRARED), load_image(vi, VISIBLE), vi_task, ir_task, seed)[which]


def super_resolution_set(parsed: ParsedSource, factors: tuple[int, ...] = (4, 8), seed: int = 0,
                         emit_pd: bool = False, name: str = "llvip-sr") -> ParsedSource:
    """Stage-1 ``sr<f>`` infrared triplets from every fusion pair of ``parsed`` (splits kept)."""
    out = ParsedSource(version=f"{name} from {parsed.version}; bicubic x{list(factors)} down-up",
                       skipped=list(parsed.skipped))
    for split, records in parsed.fusion.items():
        for r in records:
            for f in factors:
                task = f"sr{int(f)}"
                lq = partial(_degraded, r.ir, INFRARED, task, _sample_seed(seed, r.key, task))
                out.add_stage1(split, Stage1Record(f"{r.key}_{task}", task, INFRARED, lq, r.ir, name, r.name))
            if emit_pd:
                out.add_stage1(split, Stage1Record(f"{r.key}_pd", "pd", INFRARED, r.ir, r.ir, name, r.name))
    out.fingerprint = hashlib.sha256(f"{parsed.fingerprint}:{name}:{factors}:{seed}:{emit_pd}".encode()).hexdigest()
    return out


def restoration_set(parsed: ParsedSource, tasks: dict[str, list[str]] | None = None, variants: int = 1,
                    seed: int = 0, name: str = "restoration") -> ParsedSource:
    """Stage-1 triplets from the clean images of every fusion pair of ``parsed`` (splits kept).

    ``tasks``: ``{"visible": [...], "infrared": [...]}`` (default: every task of each modality,
    ``pd`` included). Each degraded task gets ``variants`` copies with different seeds
    (``pd`` one); keys are ``<pair key>_<vi|ir>_<task>[_<variant>]``."""
    from lure.text.vocabulary import MODALITY_TASKS

    wanted = {VISIBLE: list((tasks or {}).get("visible", MODALITY_TASKS[VISIBLE])),
              INFRARED: list((tasks or {}).get("infrared", MODALITY_TASKS[INFRARED]))}
    if int(variants) < 1:
        raise ValueError(f"derived set {name}: variants must be >= 1, got {variants}")
    out = ParsedSource(version=f"{name} from {parsed.version}; seeded degradations x{variants}",
                       skipped=list(parsed.skipped))
    for split, records in parsed.fusion.items():
        for r in records:
            for modality, ref, tag in ((VISIBLE, r.vi, "vi"), (INFRARED, r.ir, "ir")):
                for task in wanted[modality]:
                    if task == "pd":
                        out.add_stage1(split, Stage1Record(f"{r.key}_{tag}_pd", "pd", modality, ref, ref, name, r.name))
                        continue
                    for v in range(int(variants)):
                        key = f"{r.key}_{tag}_{task}" + (f"_{v}" if variants > 1 else "")
                        lq = partial(_degraded, ref, modality, task, _sample_seed(seed, key, task))
                        out.add_stage1(split, Stage1Record(key, task, modality, lq, ref, name, r.name))
    payload = f"{parsed.fingerprint}:{name}:{sorted((k, v) for k, v in wanted.items())}:{variants}:{seed}"
    out.fingerprint = hashlib.sha256(payload.encode()).hexdigest()
    return out


def haze_set(parsed: ParsedSource, seed: int = 0, names: list[str] | None = None, split: str = "test",
             name: str = "m3fd-haze") -> ParsedSource:
    """Hazy-visible fusion pairs from ``parsed``'s ``split`` (all splits when it is absent)."""
    out = ParsedSource(version=f"{name} from {parsed.version}", skipped=list(parsed.skipped))
    records = parsed.fusion.get(split) or [r for rs in parsed.fusion.values() for r in rs]
    wanted = {n.rsplit(".", 1)[0] for n in names} if names else None
    for r in records:
        stem = r.name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if wanted is not None:
            if stem in wanted:
                out.add_fusion("test", FusionRecord(r.key, r.ir, r.vi, name, r.name,
                                                    {"vi_task": "hz", "ir_task": "pd", "hazy": "real"}))
            continue
        vi = partial(_degraded, r.vi, VISIBLE, "hz", _sample_seed(seed, r.key, "hz"))
        out.add_fusion("test", FusionRecord(r.key, r.ir, vi, name, r.name,
                                            {"vi_clean": r.vi, "vi_task": "hz", "ir_task": "pd", "hazy": "synthetic"}))
    if wanted is not None:
        found = {r.name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for r in records}
        out.skipped += [f"{name}: hazy scene {n!r} not found in {parsed.version}" for n in sorted(wanted - found)]
    out.fingerprint = hashlib.sha256(f"{parsed.fingerprint}:{name}:{seed}:{sorted(wanted or [])}".encode()).hexdigest()
    return out


def degraded_records(records: list[FusionRecord], task_name: str, seed: int = 0) -> list[FusionRecord]:
    """Degraded copies of clean fusion ``records`` for evaluation set ``task_name`` (a key of
    :data:`DEGRADED_EVAL_TASKS`, e.g. ``"oe+lc"``); keys are kept so methods compare per scene."""
    if task_name not in DEGRADED_EVAL_TASKS:
        raise ValueError(f"unknown degraded set {task_name!r}; known: {', '.join(DEGRADED_EVAL_TASKS)}")
    vi_task, ir_task = DEGRADED_EVAL_TASKS[task_name]
    out = []
    for r in records:
        s = _sample_seed(seed, r.key, task_name)
        ir = partial(_pair_part, r.ir, r.vi, vi_task, ir_task, s, 0)
        vi = partial(_pair_part, r.ir, r.vi, vi_task, ir_task, s, 1)
        out.append(FusionRecord(r.key, ir, vi, r.source, r.name,
                                {"ir_clean": r.ir, "vi_clean": r.vi, "vi_task": vi_task, "ir_task": ir_task}))
    return out


def degraded_sets(parsed: ParsedSource, split: str = "test", tasks: list[str] | None = None,
                  seed: int = 0) -> ParsedSource:
    """A :class:`ParsedSource` whose fusion "splits" are the degraded evaluation sets (one per task)
    built from the clean fusion pairs of ``parsed``'s ``split``."""
    records = parsed.fusion.get(split, [])
    out = ParsedSource(version=f"degraded from {parsed.version}", skipped=[])
    if not records:
        out.skipped.append(f"no clean fusion pairs in split {split!r}; degraded sets not built")
    for task_name in tasks or list(DEGRADED_EVAL_TASKS):
        recs = degraded_records(records, task_name, seed)
        if recs:
            out.fusion[task_name] = recs
    out.fingerprint = hashlib.sha256(f"{parsed.fingerprint}:degraded:{split}:{tasks}:{seed}".encode()).hexdigest()
    return out
