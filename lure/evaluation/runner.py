"""The evaluation stage: vanilla and degradation-aware fusion tables, metrics JSON, grids, fused images.

:func:`evaluate` reads the ``evaluate`` section of the resolved params
(:class:`~lure.evaluation.config.EvaluationConfig`) and writes, under ``out_dir``:

* ``tables/vanilla_<set>.md/.csv`` — one table per clean pair set (:data:`VANILLA_METHODS` x the 13
  reference metrics + NIQE [+ pyiqa metrics]), means over the pairs;
* ``tables/degraded_<task>.md/.csv`` — one table per degraded set (LL, HZ, OE, LC, SR4, SR8, OE+LC,
  LL+LC; :data:`DEGRADED_METHODS`), with two more columns: ``PSNR_clean`` (dB, RGB, peak 255,
  capped at 100 dB) and ``SSIM_clean`` (MATLAB ``ssim`` on the grey images with
  ``DynamicRange`` 255) of each output against LURE's output on the *clean* pair — how much of
  the degradation the method removed; ``tables/degraded_<task>_psnr_clean.csv`` holds that
  ``PSNR_clean`` pair by pair;
* ``tables/degraded_paired.md/.csv`` — per degraded set, one LURE pass minus restore-then-fuse and
  task minus pseudo descriptions, pair by pair: the mean difference, a 95 % bootstrap interval
  and the pairs where LURE is at least as good (:mod:`lure.evaluation.paired`);
* ``tables/restoration_<set>.md/.csv`` — ``lure restore`` per task (``restoration_sets``);
* ``tables/summary.md`` — every table in one file; ``metrics.json`` — the DVC metrics (``vanilla`` ->
  set -> method -> metric, ``degraded`` -> task -> method -> metric, ``paired`` -> task ->
  comparison -> ``pairs/mean/low/high/at_least`` when there are degraded sets; NaN as ``null``);
* ``grids/grid_vanilla.png`` (first vanilla set) and ``grids/grid_<task>.png`` (``oe+lc`` -> ``oe_lc``);
* ``fused/<set>/<key>.png`` — LURE's fused images of each vanilla set (``save_fused``).

Conventions. Reference metrics (:func:`lure.metrics.fusion_metrics`) compare grey images (MATLAB
``rgb2gray``). In degraded tables the sources are the *degraded* inputs the method received (as
the toolbox is run on degraded test sets such as EMS) unless ``degraded_reference: clean``. NIQE
(lower is better) is computed offline from ``niqe_params`` on the RGB output; images under
96 x 192 pixels get no NIQE (``–``). Pair sets: :mod:`lure.evaluation.pair_sets`; scoring:
:mod:`lure.evaluation.scoring`; sections: :mod:`lure.evaluation.sections`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lure.evaluation.config import EvaluationConfig
from lure.evaluation.pair_sets import PairSets, resolve_path, slug
from lure.evaluation.report import Report
from lure.evaluation.scoring import Scorer
from lure.evaluation.sections import (
    Evaluation,
    degraded_section,
    detail_curve_section,
    paired_section,
    reference_models,
    restoration_section,
    vanilla_section,
)
from lure.inference import Fuser
from lure.paths import display_path
from lure.text.vocabulary import DEGRADED_EVAL_TASKS

__all__ = ["DEGRADED_TASKS", "evaluate"]

DEGRADED_TASKS = DEGRADED_EVAL_TASKS  # name -> (visible task, infrared task)


def _fuser(
    params: dict[str, Any], cfg: EvaluationConfig, checkpoint: str | Path, fuser: Fuser | None
) -> Fuser:
    """``fuser`` with the configured tiling, or the model of ``checkpoint``."""
    if fuser is None:
        backbone = (params.get("text_encoder") or {}).get("backbone")
        return Fuser.from_checkpoint(checkpoint, text_backbone=backbone, tiling=cfg.tiling)
    fuser.tiling = cfg.tiling
    return fuser


def _start(
    params: dict[str, Any],
    cfg: EvaluationConfig,
    checkpoint: str | Path,
    out_dir: Path,
    data_root: Path,
    fuser: Fuser | None,
    progress: bool,
) -> Evaluation:
    """The shared state of a run: the model, the report, the scorer, the pair sets, the reference models."""
    fuser = _fuser(params, cfg, checkpoint, fuser)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir, f"# LURE evaluation\n\ncheckpoint: `{display_path(checkpoint)}` (profile {fuser.profile})\n")
    niqe = resolve_path(cfg.niqe_params) if cfg.niqe_params else None
    scorer = Scorer(niqe, cfg.no_reference, report.notes)
    return Evaluation(
        cfg,
        fuser,
        scorer,
        report,
        PairSets(data_root, cfg.max_pairs, report.notes),
        seed=int(params.get("seed", 0)),
        references=reference_models(cfg, fuser, report.notes),
        progress=progress,
    )


def evaluate(
    params: dict[str, Any],
    checkpoint: str | Path,
    out_dir: str | Path = "results",
    data_root: str | Path = "data",
    fuser: Fuser | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the evaluation described in ``params["evaluate"]`` with the model in ``checkpoint``
    (or an already built :class:`~lure.inference.Fuser` ``fuser``) and write every output under
    ``out_dir``. Returns ``{"vanilla": {set: {method: {metric: mean}}}, "degraded": {task: ...},
    ["paired": {task: ...},] ["restoration": {set: ...},] "counts": ..., "notes": [...], "files": [...], "seconds": float}``.
    Raises ``ValueError`` (one line) for an invalid ``evaluate`` section."""
    start = time.perf_counter()
    cfg = EvaluationConfig.from_params(params)
    run = _start(params, cfg, checkpoint, Path(out_dir), Path(data_root), fuser, progress)
    results: dict[str, Any] = {"vanilla": {}, "degraded": {}, "counts": {"vanilla": {}, "degraded": {}}}

    for i, spec in enumerate(cfg.pair_sets):
        pair_set = run.pair_sets.get(spec)
        if pair_set is not None:
            grid = "grid_vanilla.png" if i == 0 else f"grid_vanilla_{pair_set.slug}.png"
            results["vanilla"][pair_set.slug] = vanilla_section(run, pair_set, grid)
            results["counts"]["vanilla"][pair_set.slug] = len(pair_set.pairs)
            curve = detail_curve_section(run, pair_set, results["vanilla"][pair_set.slug])
            if curve is not None:
                results.setdefault("detail_curve", {})[pair_set.slug] = curve

    source = run.pair_sets.get(cfg.degraded_from) if cfg.tasks else None
    if source is not None:
        for task in cfg.tasks:
            scored = degraded_section(run, source, task)
            if scored is not None:
                results["degraded"][task], results["counts"]["degraded"][task] = scored
    elif cfg.tasks:
        run.report.notes.append(f"degraded tables skipped: clean set {cfg.degraded_from} is not available")
    paired = paired_section(run)

    for spec in cfg.restoration_sets:
        scores = restoration_section(run, spec)
        if scores is not None:
            results.setdefault("restoration", {})[slug(spec)] = scores

    run.scorer.finish()
    metrics = {"vanilla": results["vanilla"], "degraded": results["degraded"]}
    if paired:
        metrics["paired"] = results["paired"] = paired
    if results.get("detail_curve"):
        metrics["detail_curve"] = results["detail_curve"]
    if results.get("restoration"):
        metrics["restoration"] = results["restoration"]
    run.report.finish(metrics)
    results.update(
        notes=run.report.notes, files=[str(f) for f in run.report.files], seconds=time.perf_counter() - start
    )
    return results
