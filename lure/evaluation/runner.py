"""The evaluation stage: vanilla and degradation-aware fusion tables, metrics JSON, grids, fused images.

:func:`evaluate` reads the ``evaluate`` section of the resolved params (defaults:
:data:`DEFAULTS`) and writes, under ``out_dir``:

* ``tables/vanilla_<set>.md/.csv`` — one table per clean pair set (:data:`VANILLA_METHODS` x the 13
  reference metrics + NIQE [+ pyiqa metrics]), means over the pairs;
* ``tables/degraded_<task>.md/.csv`` — one table per degraded set (LL, HZ, OE, LC, SR4, SR8, OE+LC,
  LL+LC; :data:`DEGRADED_METHODS`), with two more columns: ``PSNR_clean`` (dB, RGB, peak 255,
  capped at 100 dB) and ``SSIM_clean`` (MATLAB ``ssim`` on the grey images with
  ``DynamicRange`` 255) of each output against LURE's output on the *clean* pair — how much of
  the degradation the method removed;
* ``tables/summary.md`` — every table in one file; ``metrics.json`` — the DVC metrics (``vanilla`` ->
  set -> method -> metric, ``degraded`` -> task -> method -> metric; NaN as ``null``);
* ``grids/grid_vanilla.png`` (first vanilla set) and ``grids/grid_<task>.png`` (``oe+lc`` -> ``oe_lc``);
* ``fused/<set>/<key>.png`` — LURE's fused images of each vanilla set (``save_fused``).

Conventions. Reference metrics follow docs/paper-map.md#evaluation (:func:`lure.metrics.fusion_metrics`):
the fused image, the infrared and the visible image are turned grey as MATLAB's ``rgb2gray`` does.
In degraded tables the sources are the *degraded* inputs the method received (as the toolbox is
run on degraded test sets such as EMS) unless ``degraded_reference: clean``. NIQE (lower is better)
is computed offline from ``niqe_params`` (relative paths resolve against the repository root) on
the RGB output; images under 96 x 192 pixels get no NIQE (``–``).

Pair sets are ``<dataset>/<split>`` shard folders under ``<data_root>/shards`` (missing ones are
skipped with a note) or ``folder:<path>`` with ``ir/`` and ``vi/`` sub-folders matched by file
stem (e.g. ``folder:../shared/data/roadscene``). Degraded sets are read from
``<data_root>/shards/<dataset>-degraded/<task>`` when built, otherwise made on the fly from the
clean pairs of ``degraded_from`` with the same seeded degradations as :mod:`data_prep.derived`.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
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
from lure.evaluation.grid import save_grid
from lure.evaluation.io import atomic_write_json
from lure.evaluation.tables import format_markdown, mean_rows, write_table
from lure.fileio import atomic_write_text
from lure.image_io import (
    list_images,
    mean_grey,
    pair_by_stem,
    read_image,
    reduce_to_8bit,
    to_rgb,
    write_image,
)
from lure.paths import REPO_ROOT
from lure.text.vocabulary import DEGRADED_EVAL_TASKS

__all__ = ["DEFAULTS", "DEGRADED_TASKS", "PairSet", "evaluate", "evaluation_params", "load_pair_set", "slug"]

DEGRADED_TASKS = DEGRADED_EVAL_TASKS  # name -> (visible task, infrared task)

DEFAULTS: dict[str, Any] = {
    "pair_sets": ["demo/test"],
    "degraded_from": "demo/test",
    "tasks": list(DEGRADED_TASKS),
    "max_pairs": 0,
    "niqe_params": "../shared/data/niqe/niqe_pris_params.npz",
    "no_reference": [],
    "degraded_reference": "inputs",
    "degraded_max_pairs": None,
    "reference_checkpoints": {},
    "restoration_sets": [],
    "restoration_per_task": 12,
    "grid": {"crop": 256, "pairs": 2, "focus": "centre"},
    "tiling": {"mode": "auto", "tile": 768, "overlap": 256},
    "save_fused": True,
}
CLEAN_METRICS = ("PSNR_clean", "SSIM_clean")
PSNR_CAP_DB = 100.0


def evaluation_params(params: dict[str, Any]) -> dict[str, Any]:
    """The ``evaluate`` section of resolved params merged over :data:`DEFAULTS`, checked."""
    section = dict(params.get("evaluate") or {})
    unknown = sorted(set(section) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown evaluate parameter(s) {unknown}; known: {', '.join(DEFAULTS)}")
    cfg = {**DEFAULTS, **section}
    cfg["grid"] = {**DEFAULTS["grid"], **(section.get("grid") or {})}
    cfg["reference_checkpoints"] = dict(cfg["reference_checkpoints"] or {})
    if cfg["degraded_max_pairs"] is None:
        cfg["degraded_max_pairs"] = cfg["max_pairs"]
    cfg["tiling"] = {**DEFAULTS["tiling"], **(section.get("tiling") or {})}
    bad = [t for t in cfg["tasks"] if t not in DEGRADED_TASKS]
    if bad:
        raise ValueError(f"evaluate.tasks: unknown task(s) {bad}; known: {', '.join(DEGRADED_TASKS)}")
    if cfg["degraded_reference"] not in ("inputs", "clean"):
        raise ValueError(
            f"evaluate.degraded_reference must be inputs or clean, got {cfg['degraded_reference']!r}"
        )
    if isinstance(cfg["pair_sets"], str):
        cfg["pair_sets"] = [cfg["pair_sets"]]
    return cfg


def slug(name: str) -> str:
    """File-name form of a set or task name: ``demo/test`` -> ``demo-test``, ``oe+lc`` -> ``oe_lc``,
    ``folder:../shared/data/roadscene`` -> ``roadscene``."""
    if name.startswith("folder:"):
        name = Path(name[len("folder:") :]).name or "folder"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name.replace("+", "_").replace("/", "-")).strip("-")


# ----------------------------------------------------------------------------- pair sources
@dataclass
class PairSet:
    """A clean pair set: its spec, file-name slug and pairs ``(key, ir uint8 HxW, vi uint8 HxWx3)``."""

    spec: str
    slug: str
    pairs: list[tuple[str, np.ndarray, np.ndarray]]


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def _folder_pairs(folder: Path, limit: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The registered pairs of ``folder/{ir,vi}`` by stem as uint8 (infrared ``HxW``: channels
    averaged, visible ``HxWx3``); pairs of different sizes are left out."""
    for side in ("ir", "vi"):
        if not (folder / side).is_dir():
            raise FileNotFoundError(f"pair set folder {folder / side} does not exist")
    pairs, _, _ = pair_by_stem(list_images(folder / "ir"), list_images(folder / "vi"))
    for stem, ir_path, vi_path in pairs[: limit or None]:
        ir = reduce_to_8bit(mean_grey(read_image(ir_path, "infrared")))
        vi = np.ascontiguousarray(to_rgb(reduce_to_8bit(read_image(vi_path, "visible")))[:, :, :3])
        if ir.shape[:2] != vi.shape[:2]:
            continue
        yield stem, ir, vi


def _shard_dir(spec: str, data_root: Path) -> Path:
    return data_root / "shards" / spec


def load_pair_set(spec: str, data_root: str | Path = "data", max_pairs: int = 0) -> PairSet | None:
    """The pairs of ``spec`` (``<dataset>/<split>`` or ``folder:<path>``), or ``None`` when it is absent."""
    import itertools

    data_root = Path(data_root)
    if spec.startswith("folder:"):
        folder = _resolve(spec[len("folder:") :], REPO_ROOT)
        if not (folder / "ir").is_dir() or not (folder / "vi").is_dir():
            return None
        return PairSet(spec, slug(spec), list(_folder_pairs(folder, max_pairs)))
    split_dir = _shard_dir(spec, data_root)
    if not (split_dir / "manifest.json").is_file():
        return None
    from lure.data.loaders import iter_fusion_pairs, shard_urls

    urls = shard_urls(split_dir, kind="fusion")
    pairs = list(itertools.islice(iter_fusion_pairs(urls), max_pairs or None)) if urls else []
    return PairSet(spec, slug(spec), pairs)


def degraded_samples(
    pair_set: PairSet, task: str, data_root: str | Path, seed: int, max_pairs: int = 0
) -> tuple[list[dict], str]:
    """Degraded pairs of ``task`` (dicts with ``key, ir, vi, ir_clean, vi_clean, vi_task, ir_task``)
    and where they came from (``"shards"`` or ``"on the fly"``)."""
    import itertools

    if not pair_set.spec.startswith("folder:"):
        dataset = pair_set.spec.split("/")[0]
        split_dir = Path(data_root) / "shards" / f"{dataset}-degraded" / task
        if (split_dir / "manifest.json").is_file():
            from lure.data.loaders import iter_degraded_pairs, shard_urls

            samples = list(
                itertools.islice(iter_degraded_pairs(shard_urls(split_dir, kind="fusion")), max_pairs or None)
            )
            return samples, f"shards {split_dir}"
    from data_prep.degradations import degrade_pair
    from data_prep.derived import _sample_seed  # the seed rule of the degraded shards

    vi_task, ir_task = DEGRADED_TASKS[task]
    samples = []
    for key, ir, vi in pair_set.pairs[: max_pairs or None]:
        ir_d, vi_d = degrade_pair(ir, vi, vi_task, ir_task, _sample_seed(seed, key, task))
        samples.append(
            {
                "key": key,
                "ir": ir_d,
                "vi": vi_d,
                "ir_clean": ir,
                "vi_clean": vi,
                "vi_task": vi_task,
                "ir_task": ir_task,
            }
        )
    return samples, f"built on the fly from {pair_set.spec} (seed {seed})"


# ----------------------------------------------------------------------------- scoring
def _grey(image: np.ndarray) -> np.ndarray:
    from lure.metrics import rgb2gray_matlab

    return rgb2gray_matlab(image) if image.ndim == 3 else image


def psnr_255(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB, peak 255, all channels) of two uint8 images of one shape, capped at :data:`PSNR_CAP_DB`."""
    diff = output.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(255.0**2 / mse))


class Scorer:
    """Reference metrics + NIQE (+ optional pyiqa metrics) of one output."""

    def __init__(self, niqe_params: Path | None, no_reference: list[str], notes: list[str]) -> None:
        from lure.metrics import load_niqe_params

        self.notes = notes
        self.niqe_params = None
        if niqe_params is not None:
            try:
                self.niqe_params = load_niqe_params(niqe_params)
            except (FileNotFoundError, ValueError) as error:
                notes.append(f"NIQE skipped: {error}")
        self.no_reference = list(no_reference)
        self._nr_notes: dict[str, str] = {}

    def columns(self, degraded: bool) -> list[str]:
        from lure.metrics import METRIC_NAMES

        cols = [*METRIC_NAMES, "NIQE", *self.no_reference]
        return cols + list(CLEAN_METRICS) if degraded else cols

    def __call__(
        self, fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, clean_reference: np.ndarray | None = None
    ) -> dict[str, float]:
        from lure.metrics import calculate_niqe, fusion_metrics, ssim_matlab

        fused_grey = _grey(fused)
        scores = dict(fusion_metrics(fused_grey, _grey(ir), _grey(vi)))
        scores["NIQE"] = float("nan")
        if self.niqe_params is not None:
            try:
                with warnings.catch_warnings():  # few 96 x 96 blocks: degenerate covariance warnings
                    warnings.simplefilter("ignore", RuntimeWarning)
                    scores["NIQE"] = calculate_niqe(fused, self.niqe_params)
            except ValueError:  # too small for two 96 x 96 blocks
                pass
        if self.no_reference:
            from lure.metrics import no_reference_metrics

            rgb = fused if fused.ndim == 3 else np.repeat(fused[:, :, None], 3, axis=2)
            for name, value in no_reference_metrics(rgb, self.no_reference, notes=self._nr_notes).items():
                scores[name] = float("nan") if value is None else float(value)
        if clean_reference is not None:
            scores["PSNR_clean"] = psnr_255(fused, clean_reference)
            scores["SSIM_clean"] = ssim_matlab(
                fused_grey.astype(np.float64), _grey(clean_reference).astype(np.float64), dynamic_range=255.0
            )
        return scores

    def finish(self) -> None:
        for name, line in sorted(self._nr_notes.items()):
            self.notes.append(f"{name}: {line}")


# ----------------------------------------------------------------------------- the stage
def _progress(iterable, desc: str, total: int, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="pair", leave=False)


def _restoration_section(spec: str, fuser, data_root: Path, per_task: int, out_dir: Path, results: dict,
                         sections: list[str], files: list, notes: list[str]) -> None:
    """Score ``lure restore`` on the stage-1 samples of shard set ``spec`` and write its table."""
    from lure.data.loaders import iter_stage1_samples
    from lure.evaluation.restoration import METHOD_LABELS as RESTORE_LABELS
    from lure.evaluation.restoration import restoration_table, score_restoration, take_per_task

    split_dir = data_root / "shards" / spec
    if not (split_dir / "manifest.json").is_file():
        notes.append(f"restoration set {spec}: not found (build it first); skipped")
        return
    samples = take_per_task(iter_stage1_samples(split_dir), per_task)
    scores = score_restoration(fuser, samples)
    if not scores:
        notes.append(f"restoration set {spec}: no degraded samples; skipped")
        return
    rows, columns = restoration_table(scores)
    counts = {t: next(iter(m.values()))["images"] for t, m in scores.items()}
    title = f"Restoration (lure restore) — {spec}"
    table_notes = [f"images per task: {', '.join(f'{t} {n}' for t, n in counts.items())} (at most {per_task}); "
                   "PSNR (dB, all channels) and SSIM (grey, MATLAB ssim, range 255) against the clean image",
                   "classical correction: gain/gamma to mean luminance 0.45 (ll, oe), 1-99 % contrast stretch "
                   "(hz, lc), unsharp mask on the bicubic input (sr4, sr8)"]
    files += write_table(out_dir / "tables" / f"restoration_{slug(spec)}", title, rows, columns, RESTORE_LABELS,
                         None, table_notes)
    sections.append(format_markdown(title, rows, columns, RESTORE_LABELS, None, table_notes))
    results.setdefault("restoration", {})[slug(spec)] = scores


def evaluate(
    params: dict[str, Any],
    checkpoint: str | Path,
    out_dir: str | Path = "results",
    data_root: str | Path = "data",
    fuser=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the evaluation described in ``params["evaluate"]`` with the model in ``checkpoint``
    (or an already built :class:`~lure.inference.Fuser` ``fuser``) and write every output under
    ``out_dir``. Returns ``{"vanilla": {set: {method: {metric: mean}}}, "degraded": {task: ...},
    "counts": ..., "notes": [...], "files": [...], "seconds": float}``."""
    from lure.inference import Fuser, TilingConfig

    start = time.perf_counter()
    cfg = evaluation_params(params)
    out_dir, data_root = Path(out_dir), Path(data_root)
    tiling = TilingConfig.from_dict(cfg["tiling"])
    if fuser is None:
        backbone = (params.get("text_encoder") or {}).get("backbone")
        fuser = Fuser.from_checkpoint(checkpoint, text_backbone=backbone, tiling=tiling)
    else:
        fuser.tiling = tiling
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    niqe_path = _resolve(cfg["niqe_params"], REPO_ROOT) if cfg["niqe_params"] else None
    scorer = Scorer(niqe_path, list(cfg["no_reference"]), notes)
    max_pairs, seed = int(cfg["max_pairs"]), int(params.get("seed", 0))
    grid_pairs, crop, focus = int(cfg["grid"]["pairs"]), cfg["grid"]["crop"], cfg["grid"]["focus"]
    references = {}
    for name, path in cfg["reference_checkpoints"].items():
        if not _resolve(str(path), REPO_ROOT).is_file():
            notes.append(f"reference model {name}: {path} not found; skipped")
            continue
        references[f"model:{name}"] = Fuser.from_checkpoint(_resolve(str(path), REPO_ROOT), encoder=fuser.encoder,
                                                            tiling=tiling)
    labels = {**METHOD_LABELS, **{f"model:{name}": f"{name} model ({path})"
                                  for name, path in cfg["reference_checkpoints"].items()}}
    crop = tuple(crop) if isinstance(crop, list | tuple) else int(crop)
    files: list[Path] = []
    sections: list[str] = [f"# LURE evaluation\n\ncheckpoint: `{checkpoint}` (profile {fuser.profile})\n"]
    results: dict[str, Any] = {"vanilla": {}, "degraded": {}, "counts": {"vanilla": {}, "degraded": {}}}
    clean_outputs: dict[tuple[str, str], np.ndarray] = {}
    loaded: dict[str, PairSet | None] = {}

    def get_set(spec: str) -> PairSet | None:
        if spec not in loaded:
            loaded[spec] = load_pair_set(spec, data_root, max_pairs)
            if loaded[spec] is None:
                notes.append(f"pair set {spec}: not found (build it first); skipped")
            elif not loaded[spec].pairs:
                notes.append(f"pair set {spec}: no pairs; skipped")
        return loaded[spec]

    # -- vanilla fusion ----------------------------------------------------------------
    for i, spec in enumerate(cfg["pair_sets"]):
        pair_set = get_set(spec)
        if not pair_set or not pair_set.pairs:
            continue
        per_image: dict[str, list[dict[str, float]]] = {m: [] for m in (*VANILLA_METHODS, *references)}
        grid_rows = []
        for n, (key, ir, vi) in enumerate(
            _progress(pair_set.pairs, f"vanilla {pair_set.slug}", len(pair_set.pairs), progress)
        ):
            outputs = {m: run_method(m, fuser, ir, vi) for m in VANILLA_METHODS}
            outputs.update({m: run_method("lure", ref, ir, vi) for m, ref in references.items()})
            clean_outputs[(spec, key)] = outputs["lure"]
            for m, fused in outputs.items():
                per_image[m].append(scorer(fused, ir, vi))
            if cfg["save_fused"]:
                files.append(
                    write_image(
                        out_dir / "fused" / pair_set.slug / f"{slug(key) or n}.png", outputs["lure"]
                    )
                )
            if n < grid_pairs:
                grid_rows.append([ir, vi, *outputs.values()])
        rows = mean_rows(per_image)
        counts = {m: len(v) for m, v in per_image.items()}
        title = f"Vanilla fusion — {spec} ({len(pair_set.pairs)} pairs)"
        table_notes = [
            "means over images; reference metrics against the infrared and visible inputs "
            "(grey, MATLAB rgb2gray), toolbox conventions (PSNR near 60 dB by design)"
        ]
        files += write_table(
            out_dir / "tables" / f"vanilla_{pair_set.slug}",
            title,
            rows,
            scorer.columns(False),
            labels,
            counts,
            table_notes,
        )
        sections.append(format_markdown(title, rows, scorer.columns(False), labels, counts, table_notes))
        results["vanilla"][pair_set.slug] = rows
        results["counts"]["vanilla"][pair_set.slug] = len(pair_set.pairs)
        if grid_rows:
            name = "grid_vanilla.png" if i == 0 else f"grid_vanilla_{pair_set.slug}.png"
            files.append(
                save_grid(
                    out_dir / "grids" / name,
                    grid_rows,
                    ["IR", "VI", *[GRID_LABELS[m] for m in VANILLA_METHODS], *references],
                    f"vanilla fusion - {spec}",
                    crop,
                    focus,
                )
            )

    # -- degradation-aware fusion ------------------------------------------------------
    source = get_set(cfg["degraded_from"]) if cfg["tasks"] else None
    if source is not None and source.pairs:
        for task in cfg["tasks"]:
            samples, origin = degraded_samples(source, task, data_root, seed, int(cfg["degraded_max_pairs"]))
            if not samples:
                notes.append(f"degraded set {task}: no pairs; skipped")
                continue
            per_image = {m: [] for m in DEGRADED_METHODS}
            grid_rows = []
            for n, s in enumerate(_progress(samples, f"degraded {task}", len(samples), progress)):
                ref_key = (source.spec, s["key"])
                if ref_key not in clean_outputs:
                    clean_outputs[ref_key] = run_method("lure", fuser, s["ir_clean"], s["vi_clean"])
                reference = clean_outputs[ref_key]
                ir_src, vi_src = (
                    (s["ir_clean"], s["vi_clean"])
                    if cfg["degraded_reference"] == "clean"
                    else (s["ir"], s["vi"])
                )
                outputs = {
                    m: run_method(m, fuser, s["ir"], s["vi"], s["vi_task"], s["ir_task"])
                    for m in DEGRADED_METHODS
                }
                for m, fused in outputs.items():
                    per_image[m].append(scorer(fused, ir_src, vi_src, clean_reference=reference))
                if n < grid_pairs:
                    grid_rows.append([s["ir"], s["vi"], *outputs.values()])
            rows = mean_rows(per_image)
            counts = {m: len(v) for m, v in per_image.items()}
            vi_task, ir_task = DEGRADED_TASKS[task]
            title = (
                f"Degradation-aware fusion — {task.upper()} (visible {vi_task}, infrared {ir_task}; "
                f"{len(samples)} pairs of {source.spec})"
            )
            table_notes = [
                f"degraded pairs {origin}",
                "reference metrics against the "
                + ("clean" if cfg["degraded_reference"] == "clean" else "degraded")
                + " source images; PSNR_clean / SSIM_clean: output against LURE's output on the clean pair",
            ]
            files += write_table(
                out_dir / "tables" / f"degraded_{slug(task)}",
                title,
                rows,
                scorer.columns(True),
                METHOD_LABELS,
                counts,
                table_notes,
            )
            sections.append(
                format_markdown(title, rows, scorer.columns(True), METHOD_LABELS, counts, table_notes)
            )
            results["degraded"][task] = rows
            results["counts"]["degraded"][task] = len(samples)
            files.append(
                save_grid(
                    out_dir / "grids" / f"grid_{slug(task)}.png",
                    grid_rows,
                    ["IR", "VI", *[GRID_LABELS[m] for m in DEGRADED_METHODS]],
                    f"{task.upper()}: visible {vi_task}, infrared {ir_task}",
                    crop,
                    focus,
                )
            )
    elif cfg["tasks"]:
        notes.append(f"degraded tables skipped: clean set {cfg['degraded_from']} is not available")

    for spec in cfg["restoration_sets"]:
        _restoration_section(spec, fuser, data_root, int(cfg["restoration_per_task"]), out_dir, results, sections,
                             files, notes)

    scorer.finish()
    if notes:
        sections.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    files.append(atomic_write_text(out_dir / "tables" / "summary.md", "\n".join(sections)))
    metrics = {"vanilla": results["vanilla"], "degraded": results["degraded"]}
    if results.get("restoration"):
        metrics["restoration"] = results["restoration"]
    files.append(atomic_write_json(out_dir / "metrics.json", metrics))
    results.update(notes=notes, files=[str(f) for f in files], seconds=time.perf_counter() - start)
    return results
