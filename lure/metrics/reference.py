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
from scipy import ndimage

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

_EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps

# MATLAB rgb2gray: first row of inv([1 .956 .621; 1 -.272 -.647; 1 -1.106 1.703]) (the NTSC Y row).
_RGB2GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


# --------------------------------------------------------------------------- input checks


def _check_grey(name: str, image: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``image`` is a non-empty 2-D ``uint8`` array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim != 2:
        hint = " (colour image? convert it with rgb2gray_matlab first)" if image.ndim == 3 else ""
        raise ValueError(f"{name}: expected a 2-D grey image (H, W), got shape {image.shape}{hint}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8 (0-255 grey levels), got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"{name}: image is empty (shape {image.shape})")


def check_rgb_uint8(name: str, image: np.ndarray) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``image`` is a non-empty ``H x W x 3`` uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name}: expected an H x W x 3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name}: expected dtype uint8, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"{name}: image is empty (shape {image.shape})")


def _check_triple(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> None:
    _check_grey("fused", fused)
    _check_grey("ir", ir)
    _check_grey("vi", vi)
    for name, image in (("ir", ir), ("vi", vi)):
        if image.shape != fused.shape:
            raise ValueError(f"{name}: shape {image.shape} differs from fused shape {fused.shape}")


def _f255(image: np.ndarray) -> np.ndarray:
    """``im2double(x) * 255`` for a uint8 image: float64 holding the 0-255 values."""
    return image.astype(np.float64)


def _unit(image: np.ndarray) -> np.ndarray:
    """``im2double(x)`` for a uint8 image: float64 in [0, 1]."""
    return image.astype(np.float64) / 255.0


# --------------------------------------------------------------------------- MATLAB helpers


def rgb2gray_matlab(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` for an ``H x W x 3`` uint8 RGB image -> ``H x W`` uint8.

    ``0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B`` (the NTSC Y row that
    MATLAB's documentation rounds to ``0.2989, 0.5870, 0.1140``), evaluated in double precision
    and rounded half away from zero, as MATLAB's conversion to uint8 does (not numpy's
    round-half-to-even).
    """
    check_rgb_uint8("rgb", rgb)
    channels = rgb.astype(np.float64)
    cr, cg, cb = _RGB2GRAY_COEFFS
    grey = channels[..., 0] * cr + channels[..., 1] * cg + channels[..., 2] * cb
    return np.clip(np.floor(grey + 0.5), 0, 255).astype(np.uint8)


def _fspecial_gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (normalised to sum 1).

    ``fspecial`` zeroes taps below ``eps * max``; for the sizes used here (11/1.5, 17/3.4,
    9/1.8, 5/1, 3/0.6) no tap is that small, so the 2-D kernel is exactly separable.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _correlate1d(image: np.ndarray, g1: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """``ndimage.correlate1d`` into an uninitialised output (skips the zero fill)."""
    return ndimage.correlate1d(image, g1, axis=axis, mode=mode, output=np.empty(image.shape))


def _filter_valid(image: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(g1' * g1, image, 'valid')`` for a symmetric separable kernel."""
    k = g1.size
    h, w = image.shape
    if h < k or w < k:
        return np.zeros((max(h - k + 1, 0), max(w - k + 1, 0)))
    half = k // 2
    out = _correlate1d(image, g1, 0, "constant")[half : h - half]
    return _correlate1d(out, g1, 1, "constant")[:, half : w - half]


def _filter_same_replicate(image: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(image, g1' * g1, 'conv', 'replicate')`` ('same' size, edge replicate)."""
    return _correlate1d(_correlate1d(image, g1, 0, "nearest"), g1, 1, "nearest")


def _corr2(a: np.ndarray, b: np.ndarray) -> float:
    """MATLAB ``corr2``: Pearson correlation of two equal-size matrices (NaN when one is constant)."""
    da = a - a.mean()
    db = b - b.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(np.sum(da * db)) / np.sqrt(np.sum(da * da) * np.sum(db * db)))


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


# --------------------------------------------------------------------------- shared local statistics

_SSIM_G1 = _fspecial_gaussian_1d(11, 1.5)
_BOX11 = np.ones(11)
_HALF11 = 5


def _product_key(key: str) -> str:
    return "".join(sorted(key))


class _Images:
    """Float64 images at one scale plus memoised products and 11 x 11 local statistics.

    ``images`` maps one-letter names (``f`` fused, ``a`` infrared, ``b`` visible) to float64
    arrays; a key such as ``"af"`` means the pixelwise product ``a * f``. Filtering results
    are cached so that the metrics computed together by :func:`fusion_metrics` share them.
    """

    def __init__(self, images: dict[str, np.ndarray]) -> None:
        self.images = images
        self._products: dict[str, np.ndarray] = {}
        self._same: dict[str, np.ndarray] = {}
        self._valid: dict[str, np.ndarray] = {}
        self._box: dict[str, np.ndarray] = {}

    def product(self, key: str) -> np.ndarray:
        key = _product_key(key)
        if len(key) == 1:
            return self.images[key]
        if key not in self._products:
            self._products[key] = self.images[key[0]] * self.images[key[1]]
        return self._products[key]

    def gauss_same(self, key: str) -> np.ndarray:
        """``imfilter(product, fspecial('gaussian', 11, 1.5), 'conv', 'replicate')``."""
        key = _product_key(key)
        if key not in self._same:
            self._same[key] = _filter_same_replicate(self.product(key), _SSIM_G1)
        return self._same[key]

    def gauss_valid(self, key: str) -> np.ndarray:
        """``filter2(fspecial('gaussian', 11, 1.5), product, 'valid')`` (interior of the 'same' one)."""
        key = _product_key(key)
        if key in self._same:
            h, w = self._same[key].shape
            return self._same[key][_HALF11 : h - _HALF11, _HALF11 : w - _HALF11]
        if key not in self._valid:
            self._valid[key] = _filter_valid(self.product(key), _SSIM_G1)
        return self._valid[key]

    def box_sum(self, key: str) -> np.ndarray:
        """Sum of the product over every 11 x 11 window inside the image ('valid').

        Exact: the images hold multiples of 1/16 below 256, so every partial sum is exactly
        representable in float64.
        """
        key = _product_key(key)
        if key not in self._box:
            self._box[key] = _filter_valid(self.product(key), _BOX11)
        return self._box[key]


def _images_of(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> _Images:
    _check_triple(fused, ir, vi)
    return _Images({"f": _f255(fused), "a": _f255(ir), "b": _f255(vi)})


# --------------------------------------------------------------------------- SSIM family


def _ssim_from_stats(stats: _Images, x: str, y: str, dynamic_range: float = 1.0) -> float:
    c1 = (0.01 * dynamic_range) ** 2
    c2 = (0.03 * dynamic_range) ** 2
    mux = stats.gauss_same(x)
    muy = stats.gauss_same(y)
    muxy = mux * muy
    mux2 = mux * mux
    muy2 = muy * muy
    sigmax2 = stats.gauss_same(x + x) - mux2
    sigmay2 = stats.gauss_same(y + y) - muy2
    sigmaxy = stats.gauss_same(x + y) - muxy
    num = (2.0 * muxy + c1) * (2.0 * sigmaxy + c2)
    den = (mux2 + muy2 + c1) * (sigmax2 + sigmay2 + c2)
    return float(np.mean(num / den))


def ssim_matlab(x: np.ndarray, ref: np.ndarray, dynamic_range: float = 1.0) -> float:
    """MATLAB ``ssim(x, ref)`` with its defaults on two equal-size float images.

    Gaussian weighting ``fspecial('gaussian', 11, 1.5)`` (size ``2 ceil(3 * 1.5) + 1``) applied
    with ``imfilter(..., 'conv', 'replicate')`` ('same' size, edges replicated);
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``C3 = C2 / 2`` with ``L`` the ``DynamicRange``
    (exponents 1, so the two-term form of the SSIM formula); the value is the mean of the whole
    SSIM map. For ``double`` input MATLAB's default ``DynamicRange`` is 1.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape or x.ndim != 2:
        raise ValueError(f"x, ref: expected two 2-D arrays of equal shape, got {x.shape} and {ref.shape}")
    return _ssim_from_stats(_Images({"x": x, "y": ref}), "x", "y", dynamic_range)


def _ssim(stats: _Images) -> float:
    return 0.5 * _ssim_from_stats(stats, "f", "a") + 0.5 * _ssim_from_stats(stats, "f", "b")


def ssim(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """SSIM: ``0.5 ssim(F, A) + 0.5 ssim(F, B)`` as ``analysis_Reference.m`` computes it.

    MATLAB ``ssim`` (see :func:`ssim_matlab`) on ``double`` images holding the 0-255 values with
    its default ``DynamicRange`` of 1, so the stabilising constants are ``C1 = 1e-4`` and
    ``C2 = 9e-4`` rather than ``(0.01 * 255)^2`` and ``(0.03 * 255)^2`` (toolbox quirk, kept:
    flat regions of F against textured sources score near 0). Exactly ``1`` when ``F = A = B``.
    """
    return _ssim(_images_of(fused, ir, vi))


def _downsample_2x2(image: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)``.

    The 2 x 2 kernel's centre is its top-left tap (MATLAB: ``floor((size + 1) / 2)``), so the
    kept samples are the means of the non-overlapping 2 x 2 blocks; an odd last row/column is
    averaged with its symmetric (= replicated) copy.
    """
    h, w = image.shape
    padded = np.pad(image, ((0, h % 2), (0, w % 2)), mode="symmetric")
    return (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) / 4.0


def _mef_ssim(stats: _Images, sources: tuple[str, ...] = ("a", "b"), fused: str = "f") -> float:
    """One scale of Kede Ma's MEF-SSIM (``mef_ssim.m``), vectorised.

    Images on the 0-255 scale. Window 11 x 11: box window for the patch statistics,
    Gaussian(1.5) window for the SSIM terms, ``K = 0.03``, ``C = (K * 255)^2``, only patches
    fully inside the image ('valid'). Per patch, the desired patch is
    ``r = sum_k w_k (x_k - mu_k) / ed_k`` rescaled to norm ``max_k ed_k`` and compared with the
    fused patch; every per-patch sum is expanded into local sums of image products (exact box
    sums, Gaussian-weighted moments), which equals the ``.m`` loop up to floating-point
    rounding. (On perfectly flat patches MATLAB's ``filter2`` noise makes ``r`` an arbitrary
    vector of norm ~0.001 where ours is 0; the quality map differs there by < 1e-3.)
    """
    w_size = 11
    n_pix = float(w_size * w_size)
    k_count = len(sources)
    s1 = {k: stats.box_sum(k) for k in sources}

    def centred(i: str, j: str) -> np.ndarray:
        """sum over the patch of (x_i - mu_i)(x_j - mu_j), with mu the box mean."""
        return (n_pix * stats.box_sum(i + j) - s1[i] * s1[j]) / n_pix

    pairs = [(sources[i], sources[j]) for i in range(k_count) for j in range(i, k_count)]
    cross = {(i, j): centred(i, j) for i, j in pairs}
    norms = {k: np.sqrt(np.maximum(cross[(k, k)], 0.0)) for k in sources}  # ||x_k - mu_k||
    ed = {k: norms[k] + 0.001 for k in sources}  # sqrt(max(wSize^2 * sigmaSq, 0)) + 0.001

    # structural consistency R = ||sum_k x_k - mean|| / sum_k ||x_k - mu_k||
    total_sq = sum(cross.values()) + sum(cross[p] for p in pairs if p[0] != p[1])
    numerator = np.sqrt(np.maximum(total_sq, 0.0))
    denominator = sum(norms.values())
    r = (numerator + _EPS) / (denominator + _EPS)
    r = np.where(r > 1.0, 1.0 - _EPS, r)
    r = np.where(r < 0.0, _EPS, r)
    p = np.minimum(np.tan(np.pi / 2.0 * r), 10.0)

    w_map = {k: np.exp(p * np.log(ed[k] / w_size)) + _EPS for k in sources}  # (ed / wSize) .^ p + eps
    normaliser = sum(w_map.values())
    max_ed = np.maximum.reduce([ed[k] for k in sources])
    coeff = {k: w_map[k] / normaliser / ed[k] for k in sources}  # a_k = w_k / ed_k

    # rescale factor maxEd / ||r|| (1 where r = 0)
    norm_sq = sum((1.0 if i == j else 2.0) * coeff[i] * coeff[j] * cross[(i, j)] for i, j in pairs)
    norm_r = np.sqrt(np.maximum(norm_sq, 0.0))
    scale = np.ones_like(norm_r)
    np.divide(max_ed, norm_r, out=scale, where=norm_r > 0.0)

    # Gaussian-weighted moments; the patch means mu_k cancel out because sum(window) = 1
    g = {k: stats.gauss_valid(k) for k in (*sources, fused)}
    sigma2_sq = stats.gauss_valid(fused + fused) - g[fused] * g[fused]
    sigma1_sq = sum(
        (1.0 if i == j else 2.0) * coeff[i] * coeff[j] * (stats.gauss_valid(i + j) - g[i] * g[j])
        for i, j in pairs
    )
    sigma12 = sum(coeff[k] * (stats.gauss_valid(k + fused) - g[k] * g[fused]) for k in sources)
    sigma1_sq = sigma1_sq * scale * scale
    sigma12 = sigma12 * scale
    c = (0.03 * 255.0) ** 2
    q_map = (2.0 * sigma12 + c) / (sigma1_sq + sigma2_sq + c)
    return float(np.mean(q_map))


def _ms_ssim(stats: _Images) -> float:
    level = 3
    weights = np.array([0.0448, 0.2856, 0.3001])
    weights = weights / weights.sum()
    if min(stats.images["f"].shape) / 2 ** (level - 1) < 11:
        return float("-inf")
    scores = []
    for lev in range(level):
        scores.append(_mef_ssim(stats))
        if lev < level - 1:
            stats = _Images({k: _downsample_2x2(stats.images[k]) for k in ("a", "b", "f")})
    q = np.array(scores)
    with np.errstate(invalid="ignore"):
        return float(np.prod(q**weights))


def ms_ssim(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """MS_SSIM: the toolbox's ``analysis_ms_ssim(imgSeq, F)`` on the 0-255 values.

    This is Kede Ma's multi-scale MEF-SSIM (``analysis_ms_ssim.m`` + ``mef_ssim.m``), not
    Wang's MS-SSIM: at each of 3 scales the infrared and visible patches are merged into one
    "desired" patch (structure weighted by signal strength and a consistency-driven exponent)
    and compared with F by an SSIM-like structure term (``K = 0.03``, ``C = (0.03 * 255)^2``,
    see :func:`_mef_ssim`); between scales all images are 2 x 2-averaged
    (``imfilter(ones(2)/4, 'symmetric')``) and subsampled; the scores are combined as
    ``prod(Q_l ^ w_l)`` with ``w = [0.0448, 0.2856, 0.3001] / sum``. ``-inf`` when
    ``min(H, W) / 4 < 11`` (toolbox behaviour); NaN when a scale scores below 0 (MATLAB would
    return a complex number). About 1 when ``F = A = B``.
    """
    return _ms_ssim(_images_of(fused, ir, vi))


# --------------------------------------------------------------------------- Qabf and VIF


def _sobel_strength_angle(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength and angle from ``conv2(p, h3, 'same')`` and ``conv2(p, h1, 'same')``.

    ``h1 = [1 2 1; 0 0 0; -1 -2 -1]``, ``h3 = [-1 0 1; -2 0 2; -1 0 1]``, true convolution
    with zero padding; both kernels are separable, so they are applied as two 1-D passes of
    shifted sums (exact: integer weights on integer-valued data).
    """
    p = np.pad(image, 1)  # zero padding
    # conv2 flips the kernel: Sx(i, j) = sum_u [1 2 1](u) * (p(i+u, j) - p(i+u, j+2)), Sy likewise
    col_smooth = p[:-2] + 2.0 * p[1:-1] + p[2:]  # [1 2 1] down the columns
    sx = col_smooth[:, :-2] - col_smooth[:, 2:]
    col_diff = p[2:] - p[:-2]  # [-1 0 1] down the columns
    sy = col_diff[:, :-2] + 2.0 * col_diff[:, 1:-1] + col_diff[:, 2:]
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0.0
    angle = np.arctan(sy / np.where(zero, 1.0, sx))
    angle[zero] = np.pi / 2.0
    return g, angle


def _qabf_edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray
) -> np.ndarray:
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    # G = gF / gA where gA > gF, gA / gF where gA < gF, and gF itself where gA == gF (quirk)
    g_rel = g_f.copy()
    np.divide(g_f, g_src, out=g_rel, where=g_src > g_f)
    np.divide(g_src, g_f, out=g_rel, where=g_src < g_f)
    a_rel = 1.0 - np.abs(a_src - a_f) / (np.pi / 2.0)
    q_g = tg / (1.0 + np.exp(kg * (g_rel - dg)))
    q_a = ta / (1.0 + np.exp(ka * (a_rel - da)))
    return q_g * q_a


def _qabf(stats: _Images) -> float:
    g_a, a_a = _sobel_strength_angle(stats.images["a"])
    g_b, a_b = _sobel_strength_angle(stats.images["b"])
    g_f, a_f = _sobel_strength_angle(stats.images["f"])
    q_af = _qabf_edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_edge_preservation(g_b, a_b, g_f, a_f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(q_af * g_a + q_bf * g_b) / np.sum(g_a + g_b))


def qabf(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """Qabf: Xydeas-Petrovic gradient-based fusion quality (``analysis_Qabf.m``), 0-255 values.

    Sobel responses by ``conv2(..., 'same')`` (zero padding, so image borders produce edges);
    orientation ``atan(Sy / Sx)`` (not ``atan2``; ``pi/2`` where ``Sx == 0``). Relative strength
    ``G = min(gA, gF) / max(gA, gF)``, except that where ``gA == gF`` the toolbox sets
    ``G = gF`` (quirk kept: 0 on flat pixels, and ``>= 1`` on equal non-zero edges of 0-255
    images); ``Q = Tg / (1 + e^(kg (G - Dg))) * Ta / (1 + e^(ka (A - Da)))`` with
    ``Tg, kg, Dg = 0.9994, -15, 0.5`` and ``Ta, ka, Da = 0.9879, -22, 0.8``; the score is
    ``sum(QAF gA + QBF gB) / sum(gA + gB)`` (``L = 1``). Because of the constants, ``F = A = B``
    gives about 0.975, not 1. NaN when all three images are flat. (The SeAFusion-era driver fed
    ``im2double`` [0, 1] images, on which the ``G = gF`` quirk yields lower values; the current
    driver and this port use 0-255.)
    """
    return _qabf(_images_of(fused, ir, vi))


def _filter_valid_subsample(image: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """``x = filter2(g1' * g1, x, 'valid'); x = x(1:2:end, 1:2:end)`` without the discarded samples."""
    k = g1.size
    h, w = image.shape
    if h < k or w < k:
        return np.zeros((max(h - k + 1, 0), max(w - k + 1, 0)))[::2, ::2]
    half = k // 2
    out = _correlate1d(image, g1, 0, "constant")[half : h - half : 2]
    return _correlate1d(out, g1, 1, "constant")[:, half : w - half : 2]


def _vif_sums(references: list[np.ndarray], distorted: np.ndarray) -> list[tuple[float, float]]:
    """``(num, den)`` of ``vifp_mscale.m`` for each reference against one distorted image.

    The distorted image's pyramid and local statistics are computed once and shared. The
    ``1e-10`` guards of the ``.m`` file are applied in its order:
    ``sigma^2 < 0 -> 0``; ``g = sigma12 / (sigma1^2 + 1e-10)``, ``sv^2 = sigma2^2 - g sigma12``;
    where ``sigma1^2 < 1e-10``: ``g = 0, sv^2 = sigma2^2, sigma1^2 = 0``; where
    ``sigma2^2 < 1e-10``: ``g = 0, sv^2 = 0``; where ``g < 0``: ``sv^2 = sigma2^2, g = 0``;
    finally ``sv^2 <= 1e-10 -> 1e-10``.
    """
    sigma_nsq = 2.0
    sums = [[0.0, 0.0] for _ in references]
    refs = list(references)
    dist = distorted
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g1 = _fspecial_gaussian_1d(n, n / 5.0)
        if scale > 1:
            refs = [_filter_valid_subsample(ref, g1) for ref in refs]
            dist = _filter_valid_subsample(dist, g1)
        mu2 = _filter_valid(dist, g1)
        sigma2_sq = _filter_valid(dist * dist, g1) - mu2 * mu2
        np.maximum(sigma2_sq, 0.0, out=sigma2_sq)
        low2 = sigma2_sq < 1e-10
        for index, ref in enumerate(refs):
            mu1 = _filter_valid(ref, g1)
            sigma1_sq = _filter_valid(ref * ref, g1) - mu1 * mu1
            sigma12 = _filter_valid(ref * dist, g1) - mu1 * mu2
            np.maximum(sigma1_sq, 0.0, out=sigma1_sq)
            g = sigma12 / (sigma1_sq + 1e-10)
            sv_sq = sigma2_sq - g * sigma12
            low1 = sigma1_sq < 1e-10
            g[low1] = 0.0
            sv_sq[low1] = sigma2_sq[low1]
            sigma1_sq[low1] = 0.0
            g[low2] = 0.0
            sv_sq[low2] = 0.0
            neg = g < 0.0
            sv_sq[neg] = sigma2_sq[neg]
            g[neg] = 0.0
            np.maximum(sv_sq, 1e-10, out=sv_sq)  # sv_sq(sv_sq <= 1e-10) = 1e-10

            sv_sq += sigma_nsq
            g *= g
            g *= sigma1_sq
            g /= sv_sq
            g += 1.0
            sums[index][0] += float(np.sum(np.log10(g)))
            sigma1_sq /= sigma_nsq
            sigma1_sq += 1.0
            sums[index][1] += float(np.sum(np.log10(sigma1_sq)))
    return [(num, den) for num, den in sums]


def _ratio(num: float, den: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(den))


def vifp_mscale(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Sheikh & Bovik's multi-scale pixel-domain VIF (``vifp_mscale.m``) of two float 0-255 images.

    Four scales with Gaussian windows ``fspecial('gaussian', N, N/5)``, ``N = 17, 9, 5, 3``;
    from scale 2 on both images are filtered (``filter2 'valid'``) with that scale's window and
    subsampled by 2; local statistics by ``filter2 'valid'``; ``sigma_nsq = 2``; the
    ``1e-10`` guards applied in the ``.m`` file's order. Returns ``num / den`` summed over scales.
    """
    reference = np.asarray(reference, dtype=np.float64)
    distorted = np.asarray(distorted, dtype=np.float64)
    if reference.shape != distorted.shape or reference.ndim != 2:
        raise ValueError(
            f"reference, distorted: expected two 2-D arrays of equal shape, got {reference.shape} "
            f"and {distorted.shape}"
        )
    ((num, den),) = _vif_sums([reference], distorted)
    return _ratio(num, den)


def _vif(stats: _Images) -> float:
    (num_a, den_a), (num_b, den_b) = _vif_sums([stats.images["a"], stats.images["b"]], stats.images["f"])
    return _ratio(num_a, den_a) + _ratio(num_b, den_b)


def vif(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """VIF: ``vifp_mscale(A, F) + vifp_mscale(B, F)`` on the 0-255 values (sum, not mean).

    Each term is about 1 when F equals that source, so ``F = A = B`` gives about 2. Needs at
    least 41 pixels on each side for all four scales to be non-empty (NaN otherwise).
    """
    return _vif(_images_of(fused, ir, vi))


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
