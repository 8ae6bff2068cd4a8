"""How much of the infrared image's warm-target contrast a fused image keeps (ours).

A fusion that averages the sources halves the contrast of a warm person against the road; one
that over-emphasises the infrared image keeps more than all of it. :func:`target_contrast_kept`
measures it on grey 8-bit images: the *targets* are the warmest pixels of the infrared image
(at or above its ``quantile``), the *surround* the other pixels within ``radius`` pixels of a
target, and the value is

    (mean F[targets] - mean F[surround]) / (mean IR[targets] - mean IR[surround])

1 keeps the infrared contrast, 0.5 is what a pixel average of a flat visible image keeps, above 1
exaggerates it. A pair whose infrared targets stand less than ``min_contrast`` grey levels above
their surround has no warm target: NaN (left out of the means).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter


def target_contrast_kept(fused: np.ndarray, infrared: np.ndarray, quantile: float = 0.99, radius: int = 15,
                         min_contrast: float = 10.0) -> float:
    """The fraction of the infrared target-to-surround contrast kept by ``fused`` (both ``HxW``
    grey, 0-255, same size); NaN without a warm target. See the module docstring."""
    if fused.shape != infrared.shape or fused.ndim != 2:
        raise ValueError(f"target_contrast_kept needs two grey images of one size, got {fused.shape} and "
                         f"{infrared.shape}")
    ir = infrared.astype(np.float64)
    targets = ir >= np.quantile(ir, quantile)
    surround = maximum_filter(targets, size=2 * radius + 1) & ~targets
    if not targets.any() or not surround.any():
        return float("nan")
    ir_contrast = ir[targets].mean() - ir[surround].mean()
    if ir_contrast < min_contrast:
        return float("nan")
    f = fused.astype(np.float64)
    return float((f[targets].mean() - f[surround].mean()) / ir_contrast)
