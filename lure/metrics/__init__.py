"""Image-fusion evaluation metrics.

* :mod:`lure.metrics.reference` — the thirteen reference metrics of the MATLAB toolbox
  (``fusion_metrics``), ported with its quirks;
* :mod:`lure.metrics.niqe` — NIQE offline from the pristine-model parameter file;
* :mod:`lure.metrics.no_reference` — CLIP-IQA, LIQE, MANIQA, MUSIQ, ARNIQA through ``pyiqa``
  when it is installed and its weights are cached (never downloads);
* :mod:`lure.metrics.targets` — the infrared warm-target contrast a fused image keeps (ours).
"""

from lure.metrics.niqe import calculate_niqe, load_niqe_params
from lure.metrics.no_reference import no_reference_metrics
from lure.metrics.reference import (
    METRIC_NAMES,
    average_gradient,
    correlation_coefficient,
    entropy,
    fusion_metrics,
    mean_squared_error,
    ms_ssim,
    mutual_information,
    psnr,
    qabf,
    rgb2gray_matlab,
    scd,
    spatial_frequency,
    ssim,
    ssim_matlab,
    standard_deviation,
    vif,
    vifp_mscale,
)
from lure.metrics.targets import target_contrast_kept

__all__ = [
    "METRIC_NAMES",
    "average_gradient",
    "calculate_niqe",
    "correlation_coefficient",
    "entropy",
    "fusion_metrics",
    "load_niqe_params",
    "mean_squared_error",
    "ms_ssim",
    "mutual_information",
    "no_reference_metrics",
    "psnr",
    "qabf",
    "rgb2gray_matlab",
    "scd",
    "spatial_frequency",
    "ssim",
    "ssim_matlab",
    "standard_deviation",
    "target_contrast_kept",
    "vif",
    "vifp_mscale",
]
