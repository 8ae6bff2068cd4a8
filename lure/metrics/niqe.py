"""NIQE (Natural Image Quality Evaluator), offline, following BasicSR's ``calculate_niqe``.

Mittal, Soundararajan & Bovik, "Making a 'Completely Blind' Image Quality Analyzer" (2013).
The procedure follows ``basicsr/metrics/niqe.py`` (BasicSR >= 1.4; NAFNet's copy is the older
variant that downsampled with OpenCV's bilinear resize instead of MATLAB bicubic):
Y channel of MATLAB's ``rgb2ycbcr`` rounded to integers, optional border crop, crop to whole
96 x 96 blocks, local mean/contrast normalisation with the 7 x 7 Gaussian window of the
parameter file (edge-replicated), 18 AGGD features per block at two scales (the second after
MATLAB-style bicubic ``imresize`` by 0.5 with antialiasing), one multivariate Gaussian fitted
to the block features and its distance to the pristine model. Lower is better.

The pristine model is read from a ``.npz`` file with the arrays ``mu_pris_param`` (1 x 36),
``cov_pris_param`` (36 x 36) and ``gaussian_window`` (7 x 7) -- BasicSR's
``niqe_pris_params.npz``. Nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import gamma

from lure.paths import shared_data_dir

__all__ = [
    "NiqeParams",
    "calculate_niqe",
    "default_niqe_params_path",
    "imresize_matlab",
    "load_niqe_params",
    "rgb_to_y",
]

BLOCK_SIZE = 96
PARAMS_FILENAME = "niqe_pris_params.npz"


@dataclass(frozen=True)
class NiqeParams:
    """Pristine multivariate-Gaussian model: mean (36,), covariance (36, 36), 7 x 7 window."""

    mu_pris_param: np.ndarray
    cov_pris_param: np.ndarray
    gaussian_window: np.ndarray


def default_niqe_params_path() -> Path | None:
    """``<shared>/data/niqe/niqe_pris_params.npz`` when the shared data folder exists, else ``None``."""
    data = shared_data_dir()
    return data / "niqe" / PARAMS_FILENAME if data is not None else None


def load_niqe_params(path: str | Path | None = None) -> NiqeParams:
    """Read the pristine NIQE parameters from ``path`` (default: :func:`default_niqe_params_path`).

    Raises:
        FileNotFoundError: the file is missing (the message says where to get it and put it).
        ValueError: the file lacks one of the three arrays or they have the wrong shapes.
    """
    if path is None:
        path = default_niqe_params_path()
        if path is None:
            raise FileNotFoundError(
                f"NIQE parameters: no path given and ../shared/data is absent; pass the path of "
                f"{PARAMS_FILENAME} (BasicSR/NAFNet basicsr/metrics/{PARAMS_FILENAME})"
            )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"NIQE parameters not found: {path}. Copy {PARAMS_FILENAME} from BasicSR or NAFNet "
            f"(basicsr/metrics/{PARAMS_FILENAME}) to that path, e.g. ../shared/data/niqe/{PARAMS_FILENAME}"
        )
    with np.load(path) as data:
        missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(data.files)
        if missing:
            raise ValueError(f"NIQE parameters {path}: missing array(s) {sorted(missing)}")
        mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
        window = np.asarray(data["gaussian_window"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36) or window.ndim != 2:
        raise ValueError(
            f"NIQE parameters {path}: expected mu (36,), cov (36, 36), 2-D window; "
            f"got {mu.shape}, {cov.shape}, {window.shape}"
        )
    return NiqeParams(mu, cov, window)


# --------------------------------------------------------------------------- colour and resize


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` (BT.601, 16-235) on the 0-255 scale, float32, not rounded.

    Computed as BasicSR's ``to_y_channel`` does: ``x = bgr / 255`` in float32,
    ``y = x . [24.966, 128.553, 65.481] + 16`` (float64), ``/ 255`` to float32, ``* 255``.
    """
    bgr = rgb[..., ::-1].astype(np.float32) / np.float32(255.0)
    y = np.dot(bgr, [24.966, 128.553, 65.481]) + 16.0  # BasicSR's bgr2ycbcr(y_only=True), same order
    return (y / 255.0).astype(np.float32) * np.float32(255.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    """Dense (out, in) matrix of MATLAB ``imresize`` bicubic weights, symmetric boundary folded in."""
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel_width = kernel_width / scale
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    p = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(p)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if (scale < 1 and antialiasing) else _cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    idx = indices.astype(np.int64) - 1  # 0-based, may fall outside [0, in_length)
    idx = np.where(idx < 0, -idx - 1, idx)  # symmetric: -1 -> 0, -2 -> 1
    idx = np.where(idx >= in_length, 2 * in_length - 1 - idx, idx)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), p), idx.ravel()), weights.ravel())
    return matrix


def imresize_matlab(image: np.ndarray, scale: float, antialiasing: bool = True) -> np.ndarray:
    """MATLAB ``imresize(image, scale, 'bicubic')`` of a 2-D float image (no rounding, float64).

    Output size ``ceil(H * scale) x ceil(W * scale)``; cubic kernel ``a = -0.5``, widened by
    ``1 / scale`` when shrinking with antialiasing; symmetric edge handling (BasicSR's
    ``matlab_functions.imresize``).
    """
    h, w = image.shape
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    rows = _resize_matrix(h, out_h, scale, antialiasing)
    cols = _resize_matrix(w, out_w, scale, antialiasing)
    return rows @ np.asarray(image, dtype=np.float64) @ cols.T


# --------------------------------------------------------------------------- features


@lru_cache(maxsize=1)
def _gamma_table() -> tuple[np.ndarray, np.ndarray]:
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2.0 / gam) ** 2 / (gamma(1.0 / gam) * gamma(3.0 / gam))
    return gam, r_gam


def _aggd_params(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fit of each block (``estimate_aggd_param``), vectorised over the first axis.

    Returns ``alpha, beta_l, beta_r``, each of shape ``(n_blocks,)``; NaN where a block has no
    negative or no positive value (as ``np.mean`` of an empty selection in BasicSR).
    """
    flat = blocks.reshape(blocks.shape[0], -1)
    sq = flat * flat
    neg = flat < 0
    pos = flat > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        # means in the blocks' own dtype (float32 in NIQE), like np.mean in BasicSR
        left_std = np.sqrt(np.sum(sq * neg, axis=1) / np.sum(neg, axis=1).astype(flat.dtype))
        right_std = np.sqrt(np.sum(sq * pos, axis=1) / np.sum(pos, axis=1).astype(flat.dtype))
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(flat), axis=1) ** 2 / np.mean(sq, axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    gam, r_gam = _gamma_table()
    # np.argmin returns the first NaN's index (0) for an all-NaN row, as in BasicSR
    position = np.argmin((r_gam[None, :] - rhatnorm[:, None]) ** 2, axis=1)
    alpha = gam[position]
    factor = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, left_std * factor, right_std * factor


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """18 features per block (``compute_feature``): shape ``(n_blocks, 18)``."""
    alpha, beta_l, beta_r = _aggd_params(blocks)
    feats = [alpha, (beta_l + beta_r) / 2.0]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        shifted = np.roll(blocks, shift, axis=(1, 2))  # circular, as np.roll on each 2-D block
        alpha, beta_l, beta_r = _aggd_params(blocks * shifted)
        mean = (beta_r - beta_l) * (gamma(2.0 / alpha) / gamma(1.0 / alpha))
        feats.extend([alpha, mean, beta_l, beta_r])
    return np.stack(feats, axis=1)


def _niqe_on_y(y: np.ndarray, params: NiqeParams) -> float:
    h, w = y.shape
    n_h, n_w = h // BLOCK_SIZE, w // BLOCK_SIZE
    # float32 throughout the local normalisation, as in BasicSR (its float32 input makes
    # scipy's convolve return float32); this matters: MATLAB's double-precision niqe.m differs
    # by about 1% on smooth images because of the E[x^2] - mu^2 cancellation.
    img = np.asarray(y[: n_h * BLOCK_SIZE, : n_w * BLOCK_SIZE], dtype=np.float32)
    window = params.gaussian_window
    dist = []
    for scale in (1, 2):
        mu = ndimage.convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(ndimage.convolve(np.square(img), window, mode="nearest") - np.square(mu)))
        normalised = (img - mu) / (sigma + np.float32(1.0))
        bs = BLOCK_SIZE // scale
        blocks = normalised.reshape(n_h, bs, n_w, bs).transpose(0, 2, 1, 3).reshape(-1, bs, bs)
        dist.append(_block_features(blocks))
        if scale == 1:
            resized = imresize_matlab(img / np.float32(255.0), 0.5, antialiasing=True)
            img = resized.astype(np.float32) * np.float32(255.0)
    feats = np.concatenate(dist, axis=1)
    mu_dist = np.nanmean(feats, axis=0)
    complete = feats[~np.isnan(feats).any(axis=1)]
    cov_dist = np.cov(complete, rowvar=False)
    inv = np.linalg.pinv((params.cov_pris_param + cov_dist) / 2.0)
    diff = params.mu_pris_param - mu_dist
    return float(np.sqrt(diff @ inv @ diff))


def calculate_niqe(
    image: np.ndarray,
    params: NiqeParams | str | Path | None = None,
    crop_border: int = 0,
    convert_to: str = "y",
) -> float:
    """NIQE score of one image (lower is better), as BasicSR's ``calculate_niqe``.

    Args:
        image: ``H x W x 3`` **RGB** uint8 image (BasicSR takes BGR; we take RGB), or a 2-D
            grey/Y image with 0-255 values (uint8 or float), used as is.
        params: pristine model, or the path of ``niqe_pris_params.npz`` (default:
            ``../shared/data/niqe/niqe_pris_params.npz``).
        crop_border: pixels removed from each edge before evaluation.
        convert_to: ``"y"`` (MATLAB BT.601 Y, BasicSR's default) or ``"gray"`` for colour
            input; ``"gray"`` uses MATLAB ``rgb2gray`` here (BasicSR uses OpenCV's unrounded
            BGR2GRAY).

    After conversion and cropping the image is rounded to integers ("for consistency with
    MATLAB", as BasicSR does) and cropped to whole 96 x 96 blocks; at least two blocks are
    needed (96 x 192 pixels).

    Raises:
        ValueError: bad image shape/dtype, too small, or unknown ``convert_to``.
        FileNotFoundError: the parameter file is missing.
    """
    if not isinstance(params, NiqeParams):
        params = load_niqe_params(params)
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise ValueError("image: expected a non-empty numpy array (H x W x 3 RGB uint8 or H x W grey)")
    if image.ndim == 3:
        if image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image: colour input must be H x W x 3 uint8 RGB, got {image.shape} {image.dtype}"
            )
        if convert_to == "y":
            y = rgb_to_y(image)
        elif convert_to == "gray":
            from lure.metrics.matlab import rgb2gray_matlab

            y = rgb2gray_matlab(image).astype(np.float32)
        else:
            raise ValueError(f"convert_to: expected 'y' or 'gray', got {convert_to!r}")
    elif image.ndim == 2:
        y = image.astype(np.float32)
    else:
        raise ValueError(f"image: expected H x W x 3 or H x W, got shape {image.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border: must be >= 0, got {crop_border}")
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    y = np.round(y)
    n_blocks = (y.shape[0] // BLOCK_SIZE) * (y.shape[1] // BLOCK_SIZE)
    if n_blocks < 2:
        raise ValueError(
            f"image: NIQE needs at least two {BLOCK_SIZE} x {BLOCK_SIZE} blocks (e.g. 96 x 192 px) "
            f"after crop_border, got {y.shape[0]} x {y.shape[1]}"
        )
    return _niqe_on_y(y, params)
