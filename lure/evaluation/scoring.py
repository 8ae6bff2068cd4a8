"""Scoring outputs: the per-image :class:`Scorer` and the scoring of a pair set with a list of methods.

Conventions. Reference metrics (:func:`lure.metrics.fusion_metrics`) compare the grey output
with the grey infrared and visible sources (colour images turned grey as MATLAB's ``rgb2gray``
does). NIQE (lower is better) is computed on the RGB output from the offline ``niqe_params``;
images under 96 x 192 pixels get none (NaN). ``PSNR_clean`` (dB, all channels, peak 255, capped
at :data:`PSNR_CAP_DB`) and ``SSIM_clean`` (MATLAB ``ssim`` on the grey images, dynamic range
255) compare an output on a degraded pair with LURE's output on the clean pair.

A *method* is a callable ``(ir, vi, vi_task, ir_task) -> output`` on uint8 images
(:func:`method_runners` makes them from :func:`lure.evaluation.baselines.run_method`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lure.evaluation.tables import mean_rows

__all__ = [
    "CLEAN_METRICS",
    "PSNR_CAP_DB",
    "Method",
    "ScoredSet",
    "Scorer",
    "grey",
    "method_runners",
    "psnr_255",
    "score_degraded",
    "score_pairs",
]

CLEAN_METRICS = ("PSNR_clean", "SSIM_clean")
#: The column of :func:`lure.metrics.target_contrast_kept`: the infrared warm-target contrast kept.
TARGET_CONTRAST = "IR_target_contrast"
PSNR_CAP_DB = 100.0

Method = Callable[[np.ndarray, np.ndarray, str, str], np.ndarray]


def grey(image: np.ndarray) -> np.ndarray:
    """A colour image turned grey as MATLAB's ``rgb2gray`` does; a grey image as it is."""
    from lure.metrics import rgb2gray_matlab

    return rgb2gray_matlab(image) if image.ndim == 3 else image


def psnr_255(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB, peak 255, all channels) of two uint8 images of one shape, capped at :data:`PSNR_CAP_DB`."""
    diff = output.astype(np.float64) - reference.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * math.log10(255.0**2 / mse))


class Scorer:
    """Reference metrics + NIQE (+ optional pyiqa metrics) of one output.

    ``niqe_params``: the NIQE model file (``None``: no NIQE); a file that cannot be read adds a
    note to ``notes`` and leaves NIQE out. ``no_reference``: pyiqa metric names; their skip notes
    are added to ``notes`` by :meth:`finish`.
    """

    def __init__(self, niqe_params: Path | None, no_reference: Sequence[str], notes: list[str]) -> None:
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
        self._nr_scorer = None  # the pyiqa metrics, built at the first image and kept

    def columns(self, degraded: bool) -> list[str]:
        """The metric columns of a table (degraded tables add :data:`CLEAN_METRICS`)."""
        from lure.metrics import METRIC_NAMES

        cols = [*METRIC_NAMES, "NIQE", TARGET_CONTRAST, *self.no_reference]
        return cols + list(CLEAN_METRICS) if degraded else cols

    def __call__(
        self, fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, clean_reference: np.ndarray | None = None
    ) -> dict[str, float]:
        """Metric -> value of ``fused`` against the sources ``ir``, ``vi`` (and ``clean_reference``)."""
        from lure.metrics import calculate_niqe, fusion_metrics, ssim_matlab, target_contrast_kept

        fused_grey = grey(fused)
        scores = dict(fusion_metrics(fused_grey, grey(ir), grey(vi)))
        scores["NIQE"] = float("nan")
        scores[TARGET_CONTRAST] = target_contrast_kept(fused_grey, grey(ir))
        if self.niqe_params is not None:
            try:
                with warnings.catch_warnings():  # few 96 x 96 blocks: degenerate covariance warnings
                    warnings.simplefilter("ignore", RuntimeWarning)
                    scores["NIQE"] = calculate_niqe(fused, self.niqe_params)
            except ValueError:  # too small for two 96 x 96 blocks
                pass
        if self.no_reference:
            from lure.metrics.no_reference import NoReferenceScorer

            if self._nr_scorer is None:
                self._nr_scorer = NoReferenceScorer(self.no_reference)
            rgb = fused if fused.ndim == 3 else np.repeat(fused[:, :, None], 3, axis=2)
            for name, value in self._nr_scorer(rgb, notes=self._nr_notes).items():
                scores[name] = float("nan") if value is None else float(value)
        if clean_reference is not None:
            scores["PSNR_clean"] = psnr_255(fused, clean_reference)
            scores["SSIM_clean"] = ssim_matlab(
                fused_grey.astype(np.float64), grey(clean_reference).astype(np.float64), dynamic_range=255.0
            )
        return scores

    def finish(self) -> None:
        """Add the pyiqa skip notes (one per metric) to ``notes``."""
        for name, line in sorted(self._nr_notes.items()):
            self.notes.append(f"{name}: {line}")


@dataclass
class ScoredSet:
    """Per-image scores of each method (in method order), the pairs' keys (in the same order)
    and the images of the first pairs (rows ``[ir, vi, *outputs]``) for a grid."""

    per_image: dict[str, list[dict[str, float]]]
    grid_rows: list[list[np.ndarray]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def column(self, method: str, metric: str) -> list[float]:
        """``metric`` of ``method`` on each pair, in :attr:`keys` order (NaN where it is missing)."""
        return [float(r.get(metric, float("nan"))) for r in self.per_image[method]]

    def rows(self) -> dict[str, dict[str, float]]:
        """Method -> metric -> mean over the images (NaN-skipping, :func:`mean_rows`)."""
        return mean_rows(self.per_image)

    def counts(self) -> dict[str, int]:
        """Method -> number of images scored."""
        return {m: len(v) for m, v in self.per_image.items()}


def method_runners(
    fuser: Any, names: Iterable[str], references: Mapping[str, Any] | None = None
) -> dict[str, Method]:
    """Method name -> callable: each of ``names`` run with ``fuser``, then each reference model
    (name -> :class:`~lure.inference.Fuser`) run as ``lure``."""
    from lure.evaluation.baselines import run_method

    runners: dict[str, Method] = {m: partial(run_method, m, fuser) for m in names}
    runners.update({m: partial(run_method, "lure", ref) for m, ref in (references or {}).items()})
    return runners


def _progress(items: Sequence, desc: str, enabled: bool) -> Iterable:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=len(items), unit="pair", leave=False)


def score_pairs(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]],
    methods: Mapping[str, Method],
    scorer: Callable[..., dict[str, float]],
    grid_pairs: int = 0,
    on_outputs: Callable[[int, str, dict[str, np.ndarray]], None] | None = None,
    progress: str | None = None,
    precomputed: Mapping[str, Any] | None = None,
) -> ScoredSet:
    """Run every method on clean ``pairs`` (``(key, ir, vi)``, pseudo descriptions) and score each
    output against the pair. ``precomputed``: rows whose outputs were computed elsewhere (name ->
    an object whose ``image(key, (H, W))`` returns the pair's fused image, e.g.
    :class:`~lure.evaluation.reference_fusions.ReferenceFusions`). ``on_outputs(index, key,
    outputs)`` sees each pair's outputs; ``progress``: a progress-bar label (``None``: no bar)."""
    precomputed = precomputed or {}
    scored = ScoredSet({m: [] for m in [*methods, *precomputed]})
    for n, (key, ir, vi) in enumerate(_progress(pairs, progress or "", progress is not None)):
        outputs = {m: run(ir, vi, "pd", "pd") for m, run in methods.items()}
        outputs |= {m: source.image(key, ir.shape[:2]) for m, source in precomputed.items()}
        scored.keys.append(key)
        if on_outputs is not None:
            on_outputs(n, key, outputs)
        for m, fused in outputs.items():
            scored.per_image[m].append(scorer(fused, ir, vi))
        if n < grid_pairs:
            scored.grid_rows.append([ir, vi, *outputs.values()])
    return scored


def score_degraded(
    samples: Sequence[dict],
    methods: Mapping[str, Method],
    scorer: Callable[..., dict[str, float]],
    clean_output: Callable[[dict], np.ndarray],
    against_clean: bool = False,
    grid_pairs: int = 0,
    progress: str | None = None,
) -> ScoredSet:
    """Run every method on degraded ``samples`` (:func:`~lure.evaluation.pair_sets.degraded_samples`)
    with their task descriptions and score each output against the degraded inputs (or the clean
    pair when ``against_clean``) and against ``clean_output(sample)`` (``PSNR_clean``, ``SSIM_clean``)."""
    scored = ScoredSet({m: [] for m in methods})
    for n, s in enumerate(_progress(samples, progress or "", progress is not None)):
        reference = clean_output(s)
        ir_src, vi_src = (s["ir_clean"], s["vi_clean"]) if against_clean else (s["ir"], s["vi"])
        outputs = {m: run(s["ir"], s["vi"], s["vi_task"], s["ir_task"]) for m, run in methods.items()}
        scored.keys.append(str(s["key"]))
        for m, fused in outputs.items():
            scored.per_image[m].append(scorer(fused, ir_src, vi_src, clean_reference=reference))
        if n < grid_pairs:
            scored.grid_rows.append([s["ir"], s["vi"], *outputs.values()])
    return scored
