"""Seeded synthetic degradations for the demo, the tests and the degraded evaluation sets.

Conventions: every input and output is a ``uint8`` numpy array on the 0-255 scale; a
visible image is ``HxWx3`` RGB (a grey ``HxW`` visible image is accepted too), an
infrared image ``HxW`` (``HxWx1`` is squeezed). Outputs keep the input's size and shape.
Every function is deterministic given ``seed``: the same seed gives the same bytes.

Tasks (ids from :mod:`lure.text.vocabulary`):

* ``ll`` low light: exposure scaling + gamma + signal-dependent (Poisson-Gaussian) noise.
* ``hz`` haze: atmospheric scattering ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)`` with a depth
  proxy ``d`` (image row, far at the top, mixed with blurred brightness: sky is far).
* ``oe`` over-exposure: gain + highlight compression + clipping.
* ``lc`` infrared low contrast: range compression towards the mean + slight offset.
* ``sr4`` / ``sr8``: bicubic down-sampling by 4 / 8 then bicubic up-sampling back to the
  original size (InstructIR practice: the network needs equal sizes); :func:`downsample`
  gives the small image.
* ``pd`` the pseudo-degradation: an unchanged copy.

Random parameters are drawn from :data:`PARAM_RANGES`; any of them can be fixed by
passing it as a keyword (e.g. ``degrade(img, "ll", seed=0, exposure=0.1)``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from lure.image_io import float_to_uint8
from lure.text.vocabulary import INFRARED, VISIBLE, check_task

#: Ranges ``(low, high)`` the random parameters are drawn from, uniformly, per task.
PARAM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "ll": {"exposure": (0.08, 0.25), "gamma": (1.2, 1.8), "shot_noise": (0.002, 0.01), "read_noise": (0.003, 0.012)},
    "hz": {"beta": (0.9, 2.2), "airlight": (0.75, 0.95), "tint": (-0.03, 0.03)},
    "oe": {"gain": (1.8, 3.0), "gamma": (0.55, 0.85)},
    "lc": {"contrast": (0.2, 0.45), "offset": (-0.08, 0.08)},
}
SR_FACTORS = {"sr4": 4, "sr8": 8}
VISIBLE_DEGRADATIONS = ("ll", "hz", "oe")
INFRARED_DEGRADATIONS = ("lc", "sr4", "sr8")


def _check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        got = getattr(image, "dtype", type(image).__name__)
        raise TypeError(f"{name} must be a uint8 numpy array (0-255), got {got}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"{name} must be HxW (grey/infrared) or HxWx3 (RGB), got shape {image.shape}")
    return image


def _params(task: str, rng: np.random.Generator, overrides: dict) -> dict[str, float]:
    ranges = PARAM_RANGES.get(task, {})
    unknown = set(overrides) - set(ranges)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for task {task!r}; known: {sorted(ranges)}")
    # draw every parameter (even overridden ones) so the stream does not depend on overrides
    drawn = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()}
    drawn.update({k: float(v) for k, v in overrides.items()})
    return drawn


def _luminance(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 2 else x @ np.array([0.299, 0.587, 0.114])


def low_light(image: np.ndarray, rng: np.random.Generator, exposure: float, gamma: float,
              shot_noise: float, read_noise: float) -> np.ndarray:
    """Dark image: ``y = exposure · x^gamma`` plus Poisson-Gaussian noise (variance ``shot·y + read²``)."""
    x = image.astype(np.float64) / 255.0
    y = exposure * np.power(x, gamma)
    sigma = np.sqrt(shot_noise * y + read_noise**2)
    y = y + sigma * rng.standard_normal(y.shape)
    return float_to_uint8(y)


def depth_proxy(image: np.ndarray) -> np.ndarray:
    """A depth proxy in [0, 1] (1 = far): image row (far at the top) mixed with blurred brightness."""
    h, w = image.shape[:2]
    rows = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, w))
    lum = gaussian_filter(_luminance(image.astype(np.float64) / 255.0), sigma=max(h, w) / 16.0)
    lum = (lum - lum.min()) / max(float(np.ptp(lum)), 1e-6)
    return 0.7 * rows + 0.3 * lum


def haze(image: np.ndarray, rng: np.random.Generator, beta: float, airlight: float, tint: float) -> np.ndarray:
    """Atmospheric scattering ``I = J·t + A·(1−t)``, ``t = exp(−β·d)``, ``d`` from :func:`depth_proxy`."""
    del rng  # deterministic given the parameters
    j = image.astype(np.float64) / 255.0
    t = np.exp(-beta * depth_proxy(image))
    if j.ndim == 3:
        a = np.clip(airlight + np.array([-tint, 0.0, tint]), 0.0, 1.0)
        t = t[:, :, None]
    else:
        a = airlight
    return float_to_uint8(j * t + a * (1.0 - t))


def over_exposure(image: np.ndarray, rng: np.random.Generator, gain: float, gamma: float) -> np.ndarray:
    """Over-exposed image: ``y = clip((gain·x)^gamma)`` (gain brightens, gamma < 1 lifts mid-tones)."""
    del rng
    x = image.astype(np.float64) / 255.0
    return float_to_uint8(np.clip(gain * x, 0.0, 1.0) ** gamma)


def low_contrast(image: np.ndarray, rng: np.random.Generator, contrast: float, offset: float) -> np.ndarray:
    """Infrared low contrast: ``y = m + contrast·(x − m) + offset``, ``m`` the image mean."""
    del rng
    x = image.astype(np.float64) / 255.0
    m = float(x.mean())
    return float_to_uint8(m + contrast * (x - m) + offset)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic down-sampling by ``factor`` (size ``ceil(H/f) x ceil(W/f)``, at least 1 px), uint8."""
    image = _check_image(image)
    if int(factor) < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}")
    h, w = image.shape[:2]
    size = (max(1, -(-w // factor)), max(1, -(-h // factor)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def upsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize to ``size = (H, W)``, uint8."""
    image = _check_image(image)
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BICUBIC))


def super_resolution_input(image: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic down by ``factor`` then bicubic up to the original size (the SR network's input)."""
    return upsample(downsample(image, factor), image.shape[:2])


_FUNCTIONS = {"ll": low_light, "hz": haze, "oe": over_exposure, "lc": low_contrast}


def degrade(image: np.ndarray, task: str, seed: int, **params: float) -> np.ndarray:
    """Apply degradation ``task`` (``ll``, ``hz``, ``oe``, ``lc``, ``sr4``, ``sr8`` or ``pd``) to ``image``.

    ``image`` is uint8 (HxWx3 RGB or HxW grey/infrared); the result has the same dtype and
    shape. ``seed`` fixes every random choice. ``params`` fix individual parameters
    (see :data:`PARAM_RANGES`). The task is not checked against the image's modality here
    (haze on a grey image works); :func:`degrade_pair` checks it.
    """
    image = _check_image(image)
    if task == "pd":
        if params:
            raise ValueError("task 'pd' takes no parameters")
        return image.copy()
    if task in SR_FACTORS:
        if params:
            raise ValueError(f"task {task!r} takes no parameters")
        return super_resolution_input(image, SR_FACTORS[task])
    if task not in _FUNCTIONS:
        known = ", ".join(("pd", *_FUNCTIONS, *SR_FACTORS))
        raise ValueError(f"unknown degradation {task!r}; known: {known}")
    rng = np.random.default_rng([int(seed), sum(map(ord, task))])
    return _FUNCTIONS[task](image, rng, **_params(task, rng, params))


def degrade_pair(ir: np.ndarray, vi: np.ndarray, vi_task: str, ir_task: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a fusion pair: ``vi_task`` on the visible image, ``ir_task`` on the infrared one.

    Returns ``(ir_degraded, vi_degraded)`` (same order as the inputs). Use ``"pd"`` to keep a
    modality clean; combinations such as OE+LC are ``vi_task="oe", ir_task="lc"``.
    """
    check_task(vi_task, VISIBLE)
    check_task(ir_task, INFRARED)
    ir = _check_image(ir, "ir")
    vi = _check_image(vi, "vi")
    seeds = np.random.SeedSequence(int(seed)).generate_state(2)
    return degrade(ir, ir_task, int(seeds[0])), degrade(vi, vi_task, int(seeds[1]))


