"""Stage-1 restoration scored against the clean image, next to the input and a classical correction.

:func:`classical_correction` is the plain, training-free fix a practitioner would try first:

* ``ll`` / ``oe`` — gain and gamma: the luminance gamma that maps the image's mean luminance to
  0.45 (``y = x^g``, ``g = log 0.45 / log mean``), applied to every channel;
* ``hz`` / ``lc`` — a linear contrast stretch of the 1st..99th luminance percentile to 0..1;
* ``sr4`` / ``sr8`` — an unsharp mask (Gaussian sigma 1.5 px, amount 1) on the bicubic input;
* ``pd`` — the image itself.

:func:`score_restoration` runs :meth:`lure.inference.Fuser.restore` (the command ``lure restore``)
on stage-1 samples ``{"task", "modality", "lq", "hq"}`` (uint8; visible ``HxWx3``, infrared
``HxW``) and reports, per task, PSNR (dB, all channels, peak 255) and SSIM (MATLAB ``ssim`` on the
grey images, dynamic range 255) of the input, the classical correction and LURE against ``hq``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lure.image_io import float_to_uint8

RESTORATION_METHODS = ("input", "classical", "lure")
METHOD_LABELS = {"input": "degraded input", "classical": "classical correction", "lure": "LURE restore"}
TARGET_MEAN = 0.45


def _luma(x: np.ndarray) -> np.ndarray:
    """BT.601 luminance of a float image in [0, 1] (grey images pass through)."""
    return x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114])


def classical_correction(image: np.ndarray, task: str) -> np.ndarray:
    """The training-free correction of ``task`` (see the module docstring) of a uint8 image."""
    from scipy.ndimage import gaussian_filter

    x = image.astype(np.float64) / 255.0
    if task in ("ll", "oe"):
        mean = float(np.clip(_luma(x).mean(), 1e-3, 0.999))
        gamma = math.log(TARGET_MEAN) / math.log(mean)
        y = np.power(np.clip(x, 1e-6, 1.0), gamma)
    elif task in ("hz", "lc"):
        low, high = np.percentile(_luma(x), [1, 99])
        y = (x - low) / max(high - low, 1e-3)
    elif task in ("sr4", "sr8"):
        sigma = (1.5, 1.5, 0) if x.ndim == 3 else 1.5
        y = x + (x - gaussian_filter(x, sigma=sigma))
    elif task == "pd":
        y = x
    else:
        raise ValueError(f"unknown task {task!r}")
    return float_to_uint8(y)


def score_restoration(fuser, samples: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """``{task: {method: {"PSNR", "SSIM", "images"}}}`` means over the samples of each task (``pd``
    samples are skipped: there is nothing to restore)."""
    from lure.evaluation.scoring import grey, psnr_255
    from lure.metrics import ssim_matlab

    scores: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        task, hq = s["task"], s["hq"]
        if task == "pd":
            continue
        outputs = {"input": s["lq"], "classical": classical_correction(s["lq"], task),
                   "lure": fuser.restore(s["lq"], task, int(s["modality"]))}
        for method, out in outputs.items():
            scores[task][method].append((psnr_255(out, hq), ssim_matlab(grey(out).astype(np.float64),
                                                                      grey(hq).astype(np.float64), dynamic_range=255.0)))
    return {task: {m: {"PSNR": float(np.mean([v[0] for v in vals])), "SSIM": float(np.mean([v[1] for v in vals])),
                       "images": len(vals)} for m, vals in per_method.items()}
            for task, per_method in scores.items()}


def restoration_table(scores: dict[str, dict[str, dict[str, float]]]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """``(rows, columns)``: one row per method, columns ``"<task> PSNR"``, ``"<task> SSIM"`` in
    task order (so a table marks the best method per task)."""
    from lure.text.vocabulary import TASK_IDS

    tasks = sorted(scores, key=TASK_IDS.index)
    columns = [f"{t} {m}" for t in tasks for m in ("PSNR", "SSIM")]
    rows = {method: {f"{t} {m}": scores[t][method][m] for t in tasks for m in ("PSNR", "SSIM")}
            for method in RESTORATION_METHODS}
    return rows, columns


def take_per_task(samples, per_task: int) -> list[dict]:
    """The first ``per_task`` samples of each task (0 = all), in order."""
    counts: dict[str, int] = defaultdict(int)
    out = []
    for s in samples:
        if per_task and counts[s["task"]] >= per_task:
            continue
        counts[s["task"]] += 1
        out.append(s)
    return out
