"""The fusion methods compared by the evaluation stage (docs/paper-map.md#evaluation).

Every method maps an infrared uint8 ``HxW`` and a visible uint8 ``HxWx3`` (or ``HxW``) array of
the same size, plus the pair's degradation (``vi_task``, ``ir_task``), to a uint8 image with the
visible image's size and colour layout. All colour outputs put a fused luminance Y together
with a chroma (BT.601 YCbCr, :mod:`lure.color`), so the methods differ only in how Y is made:

* ``average`` — pixel average ``Y = (Y_vi + IR) / 2``, visible chroma;
* ``max`` — pixel maximum ``Y = max(Y_vi, IR)``, visible chroma;
* ``densefuse_l1`` — DenseFuse's l1-norm activity rule applied to our stage-1 latents without the
  learned fusion branch (``model(..., rule_only=True)``), pseudo (``pd``) descriptions;
* ``restore_then_fuse`` — the two-step route: stage-1 restoration of each degraded modality with
  its task description, then LURE fusion of the restored pair with pseudo descriptions;
* ``lure_pseudo`` — LURE with pseudo descriptions (degradation-unaware);
* ``lure`` — LURE with the right description of each modality's degradation.

On clean pairs the last three coincide, so vanilla fusion compares :data:`VANILLA_METHODS` only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lure.color import rgb_to_ycbcr
from lure.image_io import infrared_tensor, to_uint8, visible_tensor, with_chroma
from lure.inference import Fuser
from lure.text.vocabulary import INFRARED, VISIBLE, TaskPlan

__all__ = [
    "DEGRADED_METHODS",
    "GRID_LABELS",
    "METHOD_LABELS",
    "VANILLA_METHODS",
    "run_method",
    "pixel_average",
    "pixel_max",
]

VANILLA_METHODS: tuple[str, ...] = ("average", "max", "densefuse_l1", "lure")
DEGRADED_METHODS: tuple[str, ...] = (
    "average",
    "max",
    "densefuse_l1",
    "restore_then_fuse",
    "lure_pseudo",
    "lure",
)
METHOD_LABELS: dict[str, str] = {
    "average": "Pixel average",
    "max": "Pixel max",
    "densefuse_l1": "DenseFuse l1 rule (our latents)",
    "restore_then_fuse": "Restore then fuse",
    "lure_pseudo": "LURE (pseudo descriptions)",
    "lure": "LURE (task descriptions)",
}

#: Short column labels for the qualitative grids.
GRID_LABELS: dict[str, str] = {
    "average": "Average",
    "max": "Max",
    "densefuse_l1": "DenseFuse-l1",
    "restore_then_fuse": "Restore+fuse",
    "lure_pseudo": "LURE pd text",
    "lure": "LURE",
}


def _pixel_rule(
    ir: np.ndarray, vi: np.ndarray, combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> np.ndarray:
    vi_t, ir_t = visible_tensor(vi), infrared_tensor(ir)
    if vi_t.shape[-2:] != ir_t.shape[-2:]:
        raise ValueError(f"infrared {ir.shape[:2]} and visible {vi.shape[:2]} images differ in size")
    y_vi = vi_t if vi_t.shape[1] == 1 else rgb_to_ycbcr(vi_t)[:, :1]
    return to_uint8(with_chroma(combine(y_vi, ir_t), vi_t))


def pixel_average(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """``Y = (Y_vi + IR) / 2`` with the visible chroma (uint8, visible layout)."""
    return _pixel_rule(ir, vi, lambda a, b: 0.5 * (a + b))


def pixel_max(ir: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """``Y = max(Y_vi, IR)`` with the visible chroma (uint8, visible layout)."""
    return _pixel_rule(ir, vi, torch.maximum)


def restore_then_fuse(fuser: Fuser, ir: np.ndarray, vi: np.ndarray, vi_task: str, ir_task: str) -> np.ndarray:
    """Stage-1 restoration of each degraded modality, then fusion with pseudo descriptions."""
    vi_restored = fuser.restore(vi, vi_task, VISIBLE) if vi_task != "pd" else vi
    ir_restored = fuser.restore(ir, ir_task, INFRARED) if ir_task != "pd" else ir
    return fuser.fuse(ir_restored, vi_restored, TaskPlan())


def run_method(
    name: str, fuser: Fuser, ir: np.ndarray, vi: np.ndarray, vi_task: str = "pd", ir_task: str = "pd"
) -> np.ndarray:
    """The output of method ``name`` (a key of :data:`METHOD_LABELS`) on one pair."""
    if name == "average":
        return pixel_average(ir, vi)
    if name == "max":
        return pixel_max(ir, vi)
    if name == "densefuse_l1":
        return fuser.fuse(ir, vi, TaskPlan(), rule_only=True)
    if name == "restore_then_fuse":
        return restore_then_fuse(fuser, ir, vi, vi_task, ir_task)
    if name == "lure_pseudo":
        return fuser.fuse(ir, vi, TaskPlan())
    if name == "lure":
        return fuser.fuse(ir, vi, TaskPlan(visible=vi_task, infrared=ir_task))
    raise ValueError(f"unknown method {name!r}; known: {', '.join(METHOD_LABELS)}")
