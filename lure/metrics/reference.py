"""Reference metrics for infrared/visible fusion, ported from the MATLAB toolbox most IVIF papers use.

Source: Linfeng Tang's ``Evaluation-for-Image-Fusion`` (folder ``Evaluation/``, entry
``analysis_Reference.m``; A = infrared, B = visible, F = fused). The numbers are meant to be
comparable with published tables, so every quirk of the ``.m`` files is kept and documented in
the docstring of the metric concerned. The code is our own vectorised numpy/scipy rewrite;
each metric is tested against a literal loop port of its ``.m`` file.

The ``.m`` files read (stored copies of the toolbox; that repository itself only holds the
driver scripts): ``analysis_Reference.m`` in its current form (uint8 for EN/MI, ``im2double *
255`` for the rest, ``SSIM = 0.5 ssim(F, A) + 0.5 ssim(F, B)``; copy in CrisT777-JN/DMFusion)
and its SeAFusion-era form (Linfeng-Tang/SeAFusion); ``AG_evaluation.m``, ``CC_evaluation.m``,
``MSE_evaluation.m``, ``PSNR_evaluation.m``, ``SD_evaluation.m``, ``SF_evaluation.m``,
``analysis_SCD.m``, ``analysis_Qabf.m``, ``analysis_ms_ssim.m``, ``mef_ssim.m``,
``vifp_mscale.m`` (Linfeng-Tang/SeAFusion ``Evaluation/``); ``Hab.m`` (ppsuc-zbw/TACFusion and
Ach-1914/LadleNet ``Evaluation/``) and Qu Xiao-Bo's ``mutural_information`` (the body of
``MI_evaluation.m``); MATLAB's own ``ssim.m`` (R2014a+, imfilter 'conv' 'replicate').

Conventions (as in the current ``analysis_Reference.m``):

* inputs are 2-D ``uint8`` grey images of equal size (``H x W``); colour images are turned grey
  first with :func:`rgb2gray_matlab` (MATLAB's ``rgb2gray``);
* EN and MI work on the ``uint8`` values (256-bin histograms);
* MSE and PSNR work on images scaled to ``[0, 1]`` (``im2double``);
* every other metric works on ``double`` images holding the ``0-255`` values
  (``im2double(x) * 255``).

Where MATLAB itself returns ``NaN``/``Inf`` (a constant image in a correlation, identical images
in PSNR, an image too small for MS-SSIM) the port returns the same value instead of raising.
"""

from __future__ import annotations

import math

import numpy as np

from lure.metrics.matlab import _check_grey, _check_triple, _corr2, _f255, _images_of, _unit, rgb2gray_matlab
from lure.metrics.structural import (
    _ms_ssim,
    _qabf,
    _ssim,
    _vif,
    ms_ssim,
    qabf,
    ssim,
    ssim_matlab,
    vif,
    vifp_mscale,
)

__all__ = [
    "METRIC_NAMES",
    "average_gradient",
    "correlation_coefficient",
    "entropy",
    "fusion_metrics",
    "mean_squared_error",
    "ms_ssim",
    "mutual_information",
    "psnr",
    "qabf",
    "rgb2gray_matlab",
    "scd",
    "spatial_frequency",
    "ssim",
    "ssim_matlab",
    "standard_deviation",
    "vif",
    "vifp_mscale",
]

METRIC_NAMES: tuple[str, ...] = (
    "EN",
    "SD",
    "SF",
    "AG",
    "MSE",
    "PSNR",
    "CC",
    "SCD",
    "MI",
    "SSIM",
    "MS_SSIM",
    "Qabf",
    "VIF",
)

# --------------------------------------------------------------------------- single-image metrics


def entropy(image: np.ndarray) -> float:
    """EN: MATLAB ``entropy`` of a uint8 image, in bits.

    Shannon entropy ``-sum(p log2 p)`` of the 256-bin histogram of the grey levels (empty bins
    skipped). Range ``[0, 8]``.
    """
    _check_grey("image", image)
    counts = np.bincount(image.ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / image.size
    return float(-np.sum(p * np.log2(p)))


def _sd(f: np.ndarray) -> float:
    return float(np.sqrt(np.sum((f - f.mean()) ** 2) / f.size))


def standard_deviation(image: np.ndarray) -> float:
    """SD: population standard deviation (divide by ``H*W``) of the 0-255 values (``SD_evaluation.m``).

    The SeAFusion-era ``analysis_Reference.m`` passed the uint8 image, on which MATLAB's
    ``F - mean`` saturates at 0; the current toolbox passes ``im2double(F) * 255``, which is what
    is computed here.
    """
    _check_grey("image", image)
    return _sd(_f255(image))


def _sf(f: np.ndarray) -> float:
    rf = np.diff(f, axis=0)
    cf = np.diff(f, axis=1)
    rf1 = math.sqrt(float(np.mean(rf * rf))) if rf.size else float("nan")
    cf1 = math.sqrt(float(np.mean(cf * cf))) if cf.size else float("nan")
    return math.sqrt(rf1 * rf1 + cf1 * cf1)


def spatial_frequency(image: np.ndarray) -> float:
    """SF: ``sqrt(RF^2 + CF^2)`` on the 0-255 values (``SF_evaluation.m``).

    ``RF`` is the RMS of the first differences down the rows (``diff(F, 1, 1)``, an
    ``(H-1) x W`` array), ``CF`` the RMS of those along the columns (``diff(F, 1, 2)``,
    ``H x (W-1)``); each mean is over its own difference array. NaN for a single row or column.
    (The SeAFusion-era driver passed ``im2double`` [0, 1] images, giving values 255x smaller.)
    """
    _check_grey("image", image)
    return _sf(_f255(image))


def _ag(f: np.ndarray) -> float:
    h, w = f.shape
    if h < 2 or w < 2:
        raise ValueError(f"image: AG needs at least 2 x 2 pixels, got shape {f.shape}")
    gy, gx = np.gradient(f)
    s = np.sqrt((gx * gx + gy * gy) / 2.0)
    return float(np.sum(s) / ((h - 1) * (w - 1)))


def average_gradient(image: np.ndarray) -> float:
    """AG: ``sum(sqrt((gx^2 + gy^2) / 2)) / ((H-1)(W-1))`` on the 0-255 values (``AG_evaluation.m``).

    ``gx, gy`` come from MATLAB ``gradient`` with unit spacing: central differences
    ``(f[i+1] - f[i-1]) / 2`` inside, one-sided ``f[1] - f[0]`` at the borders. The sum runs over
    all ``H*W`` pixels although the divisor is ``(H-1)(W-1)`` (toolbox quirk, kept). Needs at
    least 2 x 2 pixels.
    """
    _check_grey("image", image)
    return _ag(_f255(image))


# --------------------------------------------------------------------------- metrics against the sources


def _mse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Toolbox MSE of [0, 1]-scaled float images."""
    n = f.size
    da = f - a
    db = f - b
    return float(0.5 * np.sum(da * da) / n + 0.5 * np.sum(db * db) / n)


def _psnr_from_mse(mse: float) -> float:
    if mse == 0.0:
        return float("inf")
    return float(20.0 * math.log10(255.0 / math.sqrt(mse)))


def mean_squared_error(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """MSE: ``0.5 MSE(F, A) + 0.5 MSE(F, B)`` on images scaled to [0, 1] (``MSE_evaluation.m``)."""
    _check_triple(fused, ir, vi)
    return _mse(_unit(fused), _unit(ir), _unit(vi))


def psnr(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """PSNR in dB: ``20 log10(255 / sqrt(MSE))`` with the [0, 1]-scale MSE (``PSNR_evaluation.m``).

    Toolbox quirk, kept: the peak is 255 while the MSE is measured on [0, 1] images, so the value
    is the usual 0-255 PSNR plus ``20 log10(255) ~ 48.13`` dB and lands near 60 dB for real
    fusions. ``inf`` when F equals both sources (MATLAB's ``255/0``).
    """
    return _psnr_from_mse(mean_squared_error(fused, ir, vi))


def _cc(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    df = f - f.mean()
    sff = float(np.sum(df * df))
    da = a - a.mean()
    db = b - b.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        r_af = np.float64(np.sum(da * df)) / np.sqrt(np.sum(da * da) * sff)
        r_bf = np.float64(np.sum((b - a.mean()) * df)) / np.sqrt(np.sum(db * db) * sff)
    return float(0.5 * (r_af + r_bf))


def correlation_coefficient(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """CC: mean of ``r(A, F)`` and ``r(B, F)`` on the 0-255 values (``CC_evaluation.m``).

    Toolbox quirk, kept: the numerator of ``r(B, F)`` centres B with the mean of A,
    ``sum((B - mean(A)) .* (F - mean(F)))``. Because ``F - mean(F)`` sums to zero this equals
    the correct Pearson numerator up to floating-point rounding, so the quirk does not change
    the value. NaN when an image is constant (MATLAB's ``0/0``).
    """
    _check_triple(fused, ir, vi)
    return _cc(_f255(fused), _f255(ir), _f255(vi))


def _scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return _corr2(f - b, a) + _corr2(f - a, b)


def scd(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """SCD: ``corr2(F - B, A) + corr2(F - A, B)`` on the 0-255 values (``analysis_SCD.m``).

    Sum of the correlations of differences (Aslantas & Bendes 2015); range ``[-2, 2]``. NaN when
    a difference image or a source is constant (MATLAB's ``0/0``), e.g. ``F = A = B``.
    """
    _check_triple(fused, ir, vi)
    return _scd(_f255(fused), _f255(ir), _f255(vi))


def _joint_entropy_saturated(x: np.ndarray, y: np.ndarray) -> float:
    """``Hab.m``: joint entropy (bits) of two uint8 images, with the toolbox's uint8 saturation.

    ``Hab.m`` indexes a 256 x 256 table with ``uint8(x) + 1``; MATLAB's uint8 arithmetic
    saturates, so grey levels 254 and 255 share one bin (index 255) and bin 256 stays empty.
    """
    xi = np.minimum(x.ravel(), 254).astype(np.intp)
    yi = np.minimum(y.ravel(), 254).astype(np.intp)
    counts = np.bincount(xi * 256 + yi, minlength=256 * 256).astype(np.float64)
    p = counts[counts > 0] / xi.size
    return float(-np.sum(p * np.log2(p)))


def mutual_information(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """MI: ``MI(A, F) + MI(B, F)`` in bits (``MI_evaluation.m`` / ``Hab.m``, Qu Xiao-Bo).

    ``MI(X, F) = H(X) + H(F) - H(F, X)``: marginal entropies from MATLAB ``entropy`` (256 bins),
    joint entropy from ``Hab.m``, which merges grey levels 254 and 255 through uint8 saturation
    (quirk kept, see :func:`_joint_entropy_saturated`). Unless an image holds both 254 and 255,
    ``MI(A, A) = H(A)``, so MI with ``F = A = B`` is ``2 EN``.
    """
    _check_triple(fused, ir, vi)
    h_f = entropy(fused)
    mi_af = entropy(ir) + h_f - _joint_entropy_saturated(fused, ir)
    mi_bf = entropy(vi) + h_f - _joint_entropy_saturated(fused, vi)
    return float(mi_af + mi_bf)


# --------------------------------------------------------------------------- all thirteen


def fusion_metrics(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> dict[str, float]:
    """All thirteen reference metrics of ``analysis_Reference.m`` for one fused image.

    Args:
        fused: fused image F, 2-D uint8 grey (``H x W``; for colour output pass the fused
            luminance or :func:`rgb2gray_matlab` of the RGB result).
        ir: infrared source A, 2-D uint8, same size.
        vi: visible source B, 2-D uint8, same size.

    Returns:
        ``{"EN", "SD", "SF", "AG", "MSE", "PSNR", "CC", "SCD", "MI", "SSIM", "MS_SSIM", "Qabf",
        "VIF"}`` as Python floats (conventions in each function's docstring). The local
        statistics shared by SSIM and MS_SSIM are computed once.

    Raises:
        ValueError: an argument is not a non-empty 2-D uint8 array, or the sizes differ.
    """
    stats = _images_of(fused, ir, vi)
    f, a, b = stats.images["f"], stats.images["a"], stats.images["b"]
    mse = _mse(f / 255.0, a / 255.0, b / 255.0)
    return {
        "EN": entropy(fused),
        "SD": _sd(f),
        "SF": _sf(f),
        "AG": _ag(f),
        "MSE": mse,
        "PSNR": _psnr_from_mse(mse),
        "CC": _cc(f, a, b),
        "SCD": _scd(f, a, b),
        "MI": mutual_information(fused, ir, vi),
        "SSIM": _ssim(stats),
        "MS_SSIM": _ms_ssim(stats),
        "Qabf": _qabf(stats),
        "VIF": _vif(stats),
    }
