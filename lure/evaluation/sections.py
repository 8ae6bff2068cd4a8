"""The sections of the evaluation stage: vanilla fusion, degradation-aware fusion, restoration.

Each section scores one set and adds its table (and grid) to the run's :class:`Report`:

* :func:`vanilla_section` — a clean pair set, :data:`VANILLA_METHODS` plus the reference models
  (rows ``model:<name>``) and other methods' precomputed fused images (rows ``fused:<name>``,
  :mod:`lure.evaluation.reference_fusions`), against the infrared and visible inputs, with the
  rows' mean ranks over three metric families; writes
  ``tables/vanilla_<set>``, the grid and ``fused/<set>/<key>.png`` (LURE's outputs);
* :func:`degraded_section` — one degraded task, :data:`DEGRADED_METHODS`, against the degraded
  inputs (or the clean pair: ``degraded_reference: clean``) and LURE's output on the clean pair;
  writes ``tables/degraded_<task>``, ``grids/grid_<task>.png`` (``oe+lc`` -> ``oe_lc``)
  and the per-pair ``PSNR_clean`` of every method to ``tables/degraded_<task>_psnr_clean.csv``;
* :func:`paired_section` — after the degraded sets: one LURE pass against restore-then-fuse and
  task against pseudo descriptions, pair by pair (:mod:`lure.evaluation.paired`); writes
  ``tables/degraded_paired``;
* :func:`restoration_section` — ``lure restore`` on the stage-1 samples of a shard set, against
  the clean image; writes ``tables/restoration_<set>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lure.evaluation.baselines import (
    DEGRADED_METHODS,
    GRID_LABELS,
    METHOD_LABELS,
    VANILLA_METHODS,
    run_method,
)
from lure.evaluation.config import EvaluationConfig
from lure.evaluation.pair_sets import PairSet, PairSets, degraded_samples, resolve_path, slug
from lure.evaluation.paired import (
    COMPARISONS,
    CONFIDENCE,
    paired_csv,
    paired_difference,
    paired_markdown,
    per_pair_csv,
)
from lure.evaluation.reference_fusions import PREFIX, reference_fusions
from lure.evaluation.report import Report, Table
from lure.evaluation.scoring import ScoredSet, Scorer, method_runners, score_degraded, score_pairs
from lure.evaluation.tables import RANK_GROUPS, rank_columns
from lure.image_io import write_image
from lure.inference import Fuser
from lure.text.vocabulary import DEGRADED_EVAL_TASKS, TaskPlan

__all__ = [
    "Evaluation",
    "degraded_section",
    "degraded_table",
    "method_labels",
    "paired_section",
    "detail_curve_section",
    "reference_models",
    "restoration_section",
    "vanilla_section",
    "vanilla_table",
]


def reference_models(cfg: EvaluationConfig, fuser: Fuser, notes: list[str]) -> dict[str, Fuser]:
    """``model:<name>`` -> the model of each ``reference_checkpoints`` entry (sharing ``fuser``'s
    text encoder and tiling); a missing file adds a note and is skipped."""
    references = {}
    for name, path in cfg.reference_checkpoints.items():
        resolved = resolve_path(path)
        if not resolved.is_file():
            notes.append(f"reference model {name}: {path} not found; skipped")
            continue
        references[f"model:{name}"] = Fuser.from_checkpoint(
            resolved, encoder=fuser.encoder, tiling=cfg.tiling
        )
    return references


def method_labels(cfg: EvaluationConfig) -> dict[str, str]:
    """Method -> row label of the tables, reference models included."""
    return {
        **METHOD_LABELS,
        **{f"model:{name}": f"{name} model ({path})" for name, path in cfg.reference_checkpoints.items()},
        **{f"{PREFIX}{name}": f"{name} (precomputed)" for name in cfg.reference_fusions},
    }


@dataclass
class Evaluation:
    """What the sections of one run share: the config, the model and its reference models, the
    scorer, the report, the pair sets, the data seed, LURE's outputs on clean pairs
    (``(set spec, key)`` -> uint8 image, reused as the ``PSNR_clean`` reference) and the scored
    degraded sets (task -> per-pair scores, for :func:`paired_section`)."""

    cfg: EvaluationConfig
    fuser: Fuser
    scorer: Scorer
    report: Report
    pair_sets: PairSets
    seed: int = 0
    references: dict[str, Fuser] = field(default_factory=dict)
    progress: bool = False
    clean_outputs: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    degraded_scores: dict[str, ScoredSet] = field(default_factory=dict)

    @property
    def data_root(self) -> Path:
        return self.pair_sets.data_root

    def clean_output(self, spec: str, key: str, ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
        """LURE's output on the clean pair ``key`` of ``spec`` (computed once)."""
        if (spec, key) not in self.clean_outputs:
            self.clean_outputs[(spec, key)] = run_method("lure", self.fuser, ir, vi)
        return self.clean_outputs[(spec, key)]


# ----------------------------------------------------------------------------- vanilla
def vanilla_table(pair_set: PairSet, scored: ScoredSet, columns: list[str], labels: dict[str, str]) -> Table:
    """The table ``vanilla_<set>`` of a scored clean pair set, with the rows' mean ranks over the
    metric families of :data:`~lure.evaluation.tables.RANK_GROUPS` as the last columns."""
    rows = rank_columns(scored.rows())
    ranks = [c for c in RANK_GROUPS if any(c in r for r in rows.values())]
    groups = "; ".join(f"{c}: {', '.join(RANK_GROUPS[c])}" for c in ranks)
    return Table(
        f"vanilla_{pair_set.slug}",
        f"Vanilla fusion — {pair_set.spec} ({len(pair_set.pairs)} pairs)",
        rows,
        [*columns, *ranks],
        labels,
        scored.counts(),
        [
            "means over images; reference metrics against the infrared and visible inputs "
            "(grey, MATLAB rgb2gray), toolbox conventions (PSNR near 60 dB by design)",
            *([f"mean rank among the rows (1 = best) over {groups}"] if ranks else []),
        ],
    )


def vanilla_section(run: Evaluation, pair_set: PairSet, grid_name: str) -> dict[str, dict[str, float]]:
    """Score ``pair_set`` with the vanilla methods and the reference models, write its table, its
    fused images and the grid ``grids/<grid_name>``; returns method -> metric -> mean."""
    cfg = run.cfg

    def keep(n: int, key: str, outputs: dict[str, np.ndarray]) -> None:
        run.clean_outputs[(pair_set.spec, key)] = outputs["lure"]
        if cfg.save_fused:
            path = run.report.out_dir / "fused" / pair_set.slug / f"{slug(key) or n}.png"
            run.report.files.append(write_image(path, outputs["lure"]))

    methods = method_runners(run.fuser, VANILLA_METHODS, run.references)
    precomputed = reference_fusions(cfg.reference_fusions, pair_set, run.report.notes)
    scored = score_pairs(
        pair_set.pairs,
        methods,
        run.scorer,
        cfg.grid.pairs,
        keep,
        f"vanilla {pair_set.slug}" if run.progress else None,
        precomputed,
    )
    table = vanilla_table(pair_set, scored, run.scorer.columns(False), method_labels(cfg))
    run.report.add_table(table)
    if scored.grid_rows:
        labels = ["IR", "VI", *[GRID_LABELS[m] for m in VANILLA_METHODS], *run.references,
                  *[m[len(PREFIX):] for m in precomputed]]
        run.report.add_grid(
            grid_name,
            scored.grid_rows,
            labels,
            f"vanilla fusion - {pair_set.spec}",
            cfg.grid.crop,
            cfg.grid.focus,
        )
    return dict(table.rows)


# ----------------------------------------------------------------------------- detail curve
def detail_label(level: float) -> str:
    return f"detail={level:.2f}"


@dataclass(frozen=True)
class _KeptOutputs:
    """LURE's outputs on a clean set kept by :func:`vanilla_section`, as a precomputed row."""

    outputs: dict[tuple[str, str], np.ndarray]
    spec: str

    def image(self, key: str, size: tuple[int, int]) -> np.ndarray:
        return self.outputs[(self.spec, key)]


def detail_curve_section(run: Evaluation, pair_set: PairSet,
                         vanilla_rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]] | None:
    """LURE at each level of ``evaluate.detail_curve`` on ``pair_set`` (pseudo descriptions), scored
    like the vanilla rows; each level's three mean ranks are those it gets when it takes LURE's place
    among ``vanilla_rows`` (the default level's are the vanilla table's). Writes
    ``detail_curve_<set>`` and the grid ``grid_detail_<set>.png`` (the faithful end, the default, the
    crisp end and the published methods' fusions, crops at 1:1); ``None`` when there is no curve
    or the model has no detail control."""
    cfg, fuser = run.cfg, run.fuser
    if not cfg.detail_curve or not fuser.has_detail_control:
        return None

    def at(level: float) -> Any:
        return lambda ir, vi, vi_task, ir_task: fuser.fuse(ir, vi, TaskPlan(), detail=level)

    default = fuser.detail_default
    levels = sorted({*cfg.detail_curve, default})
    methods = {detail_label(v): at(v) for v in levels if v != default}
    published = reference_fusions(cfg.reference_fusions, pair_set, [])
    precomputed = {detail_label(default): _KeptOutputs(run.clean_outputs, pair_set.spec), **published}
    scored = score_pairs(pair_set.pairs, methods, run.scorer, cfg.grid.pairs, None,
                         f"detail {pair_set.slug}" if run.progress else None, precomputed)
    measured = scored.rows()
    others = {m: {k: v for k, v in r.items() if k not in RANK_GROUPS} for m, r in vanilla_rows.items() if m != "lure"}
    rows: dict[str, dict[str, float]] = {}
    for level in levels:
        ranked = rank_columns({**others, "lure": measured[detail_label(level)]})
        rows[detail_label(level)] = {"detail": level, **ranked["lure"]}
    ranks = [c for c in RANK_GROUPS if any(c in r for r in rows.values())]
    run.report.add_table(Table(
        f"detail_curve_{pair_set.slug}",
        f"Detail control — {pair_set.spec} ({len(pair_set.pairs)} pairs)",
        rows, ["detail", *run.scorer.columns(False), *ranks],
        {detail_label(default): f"{detail_label(default)} (default)"}, None,
        ["LURE (pseudo descriptions) at each detail level, 0 faithful .. 1 crisp (`lure fuse --detail`)",
         "each level's ranks: its mean rank among the vanilla table's rows when it takes LURE's place"]))
    if scored.grid_rows:
        order = [*methods, *precomputed]  # the columns of each grid row after IR and VI
        shown = [detail_label(v) for v in (min(levels), default, max(levels))]
        shown = [*dict.fromkeys(shown), *published]
        grid_rows = [[r[0], r[1], *(r[2 + order.index(name)] for name in shown)] for r in scored.grid_rows]
        labels = ["IR", "VI", *(f"d={float(n.split('=')[1]):g}" for n in shown if n not in published),
                  *(n[len(PREFIX):] for n in published)]
        run.report.add_grid(f"grid_detail_{pair_set.slug}.png", grid_rows, labels,
                            f"detail control - {pair_set.spec} (crops at 1:1)", cfg.grid.crop, cfg.grid.focus)
    return rows


# ----------------------------------------------------------------------------- degraded
def degraded_table(
    task: str, source: PairSet, origin: str, scored: ScoredSet, columns: list[str], against_clean: bool
) -> Table:
    """The table ``degraded_<task>`` of a scored degraded set made from ``source`` (``origin``:
    where its pairs came from)."""
    vi_task, ir_task = DEGRADED_EVAL_TASKS[task]
    n_pairs = len(next(iter(scored.per_image.values()), []))
    return Table(
        f"degraded_{slug(task)}",
        f"Degradation-aware fusion — {task.upper()} (visible {vi_task}, infrared {ir_task}; "
        f"{n_pairs} pairs of {source.spec})",
        scored.rows(),
        columns,
        METHOD_LABELS,
        scored.counts(),
        [
            f"degraded pairs {origin}",
            "reference metrics against the "
            + ("clean" if against_clean else "degraded")
            + " source images; PSNR_clean / SSIM_clean: output against LURE's output on the clean pair",
        ],
    )


def degraded_section(
    run: Evaluation, source: PairSet, task: str
) -> tuple[dict[str, dict[str, float]], int] | None:
    """Score the degraded set ``task`` of ``source``, write its table and grid; returns
    ``(method -> metric -> mean, pairs)``, or ``None`` (with a note) when it has no pairs."""
    cfg = run.cfg
    samples, origin = degraded_samples(source, task, run.data_root, run.seed, cfg.degraded_max_pairs)
    if not samples:
        run.report.notes.append(f"degraded set {task}: no pairs; skipped")
        return None
    against_clean = cfg.degraded_reference == "clean"
    scored = score_degraded(
        samples,
        method_runners(run.fuser, DEGRADED_METHODS),
        run.scorer,
        lambda s: run.clean_output(source.spec, s["key"], s["ir_clean"], s["vi_clean"]),
        against_clean,
        cfg.grid.pairs,
        f"degraded {task}" if run.progress else None,
    )
    table = degraded_table(task, source, origin, scored, run.scorer.columns(True), against_clean)
    run.report.add_table(table)
    run.degraded_scores[task] = scored
    run.report.add_csv(
        f"degraded_{slug(task)}_psnr_clean",
        per_pair_csv(scored.keys, {m: scored.column(m, "PSNR_clean") for m in scored.per_image}),
    )
    if scored.grid_rows:  # grid.pairs 0: no grid
        vi_task, ir_task = DEGRADED_EVAL_TASKS[task]
        run.report.add_grid(
            f"grid_{slug(task)}.png",
            scored.grid_rows,
            ["IR", "VI", *[GRID_LABELS[m] for m in DEGRADED_METHODS]],
            f"{task.upper()}: visible {vi_task}, infrared {ir_task}",
            cfg.grid.crop,
            cfg.grid.focus,
        )
    return dict(table.rows), len(samples)


def paired_section(run: Evaluation) -> dict[str, dict[str, dict[str, float | int]]]:
    """Compare, pair by pair, LURE's ``PSNR_clean`` with restore-then-fuse's and with LURE's on
    pseudo descriptions on every degraded set scored so far; write ``tables/degraded_paired``.
    Returns set -> comparison name (:data:`~lure.evaluation.paired.COMPARISONS`) -> the
    difference's fields (``pairs``, ``mean``, ``low``, ``high``, ``at_least``); ``{}`` without
    degraded sets."""
    results = {}
    for task, scored in run.degraded_scores.items():
        results[task] = {
            name: paired_difference(
                scored.column(method, "PSNR_clean"), scored.column(baseline, "PSNR_clean"), seed=run.seed
            )
            for name, method, baseline, _ in COMPARISONS
            if method in scored.per_image and baseline in scored.per_image
        }
    if not results:
        return {}
    notes = [
        "PSNR_clean (dB) differences pair by pair, against LURE's output on the clean pair; "
        f"interval: {round(CONFIDENCE * 100)} % percentile bootstrap of the mean difference "
        f"(seed {run.seed}); pairs ≥: pairs where LURE with the task descriptions is at least as good",
        "per-pair values: tables/degraded_<set>_psnr_clean.csv",
    ]
    run.report.add_text_table(
        "degraded_paired",
        paired_markdown(results, "Degraded sets, pair by pair — one pass and task descriptions", notes),
        paired_csv(results),
    )
    return {task: {name: d.as_dict() for name, d in row.items()} for task, row in results.items()}


# ----------------------------------------------------------------------------- restoration
def restoration_section(run: Evaluation, spec: str) -> dict[str, Any] | None:
    """Score ``lure restore`` on the stage-1 samples of shard set ``spec`` (at most
    ``restoration_per_task`` per task) and write ``tables/restoration_<set>``; returns
    ``{task: {method: {"PSNR", "SSIM", "images"}}}``, or ``None`` (with a note) when absent/empty."""
    from lure.data.loaders import iter_stage1_samples
    from lure.evaluation.restoration import METHOD_LABELS as RESTORE_LABELS
    from lure.evaluation.restoration import restoration_table, score_restoration, take_per_task

    per_task, notes = run.cfg.restoration_per_task, run.report.notes
    split_dir = run.data_root / "shards" / spec
    if not (split_dir / "manifest.json").is_file():
        notes.append(f"restoration set {spec}: not found (build it first); skipped")
        return None
    scores = score_restoration(run.fuser, take_per_task(iter_stage1_samples(split_dir), per_task))
    if not scores:
        notes.append(f"restoration set {spec}: no degraded samples; skipped")
        return None
    rows, columns = restoration_table(scores)
    counts = {t: next(iter(m.values()))["images"] for t, m in scores.items()}
    table_notes = [
        f"images per task: {', '.join(f'{t} {n}' for t, n in counts.items())} "
        f"({'all of the set' if per_task == 0 else f'at most {per_task}'}); "
        "PSNR (dB, all channels) and SSIM (grey, MATLAB ssim, range 255) against the clean image",
        "classical correction: gain/gamma to mean luminance 0.45 (ll, oe), 1-99 % contrast stretch "
        "(hz, lc), unsharp mask on the bicubic input (sr4, sr8)",
    ]
    run.report.add_table(
        Table(
            f"restoration_{slug(spec)}",
            f"Restoration (lure restore) — {spec}",
            rows,
            columns,
            RESTORE_LABELS,
            None,
            table_notes,
        )
    )
    return scores
