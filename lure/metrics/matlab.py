"""The MATLAB building blocks shared by the reference metrics (:mod:`lure.metrics.reference`).

Input checks, ``rgb2gray``, ``fspecial('gaussian')`` and the ``filter2``/``imfilter`` variants
the toolbox uses, ``corr2``, and :class:`_Images`: float64 images with memoised products and
11 x 11 local statistics, so metrics computed together share their filtering.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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


