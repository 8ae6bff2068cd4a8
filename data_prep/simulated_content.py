"""Procedural content of the simulated data sets (:mod:`data_prep.simulate`): a clean aligned
scene at any size and cheap closed-form degradations of it, deterministic given the seed.

Scenes are :func:`data_prep.sources.demo.render_scene` drawn ``BASE_HEIGHT`` px high, upsampled
bicubically and given seeded sensor noise. Files are written with zlib level 1 (PNG) or quality
95 (JPEG).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.sources.demo import render_scene

BASE_HEIGHT = 96
JPEG_QUALITY = 95
PNG_LEVEL = 1


def scene(seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A clean aligned scene ``(ir HxW, vi HxWx3)`` uint8 at ``width x height``, deterministic in ``seed``."""
    w0 = max(16, round(BASE_HEIGHT * width / height))
    ir, vi = render_scene(seed, BASE_HEIGHT, w0)
    ir = np.asarray(Image.fromarray(ir).resize((width, height), Image.BICUBIC))
    vi = np.asarray(Image.fromarray(vi).resize((width, height), Image.BICUBIC))
    rng = np.random.default_rng(seed ^ 0x5EED)
    return _noisy(ir, rng, 2), _noisy(vi, rng, 2)


def _noisy(image: np.ndarray, rng: np.random.Generator, amplitude: int) -> np.ndarray:
    noise = rng.integers(-amplitude, amplitude + 1, image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _scale(image: np.ndarray, gain: float, offset: float = 0.0) -> np.ndarray:
    return np.clip(image.astype(np.float32) * gain + offset + 0.5, 0, 255).astype(np.uint8)


def dark(vi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Low light: gain 0.05-0.2 and sensor noise."""
    return _noisy(_scale(vi, rng.uniform(0.05, 0.2)), rng, 3)


def hazy(vi: np.ndarray, airlight: float, beta: float) -> np.ndarray:
    """Haze ``I = J t + A (1 - t)`` with a depth proxy growing towards the top of the image."""
    h = vi.shape[0]
    depth = np.linspace(3.0, 0.5, h, dtype=np.float32)[:, None, None]
    t = np.exp(-beta * 4.0 * depth)
    return np.clip(vi.astype(np.float32) * t + 255.0 * airlight * (1 - t) + 0.5, 0, 255).astype(np.uint8)


def exposed(vi: np.ndarray, ev: float) -> np.ndarray:
    """An exposure-value change of ``ev`` stops (gain ``2**ev``, clipped)."""
    return _scale(vi, 2.0**ev)


def low_contrast(ir: np.ndarray) -> np.ndarray:
    return _scale(ir, 0.35, 128 * 0.65 - 20)


def save(path: Path, image: np.ndarray, mode: str) -> None:
    """Write ``image`` as ``mode`` (``L`` or ``RGB``; grey arrays repeated for RGB) in the suffix's format."""
    if mode == "RGB" and image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif mode == "L" and image.ndim == 3:
        image = np.asarray(Image.fromarray(image).convert("L"))
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        Image.fromarray(image).save(path, format="JPEG", quality=JPEG_QUALITY)
    elif suffix == ".png":
        Image.fromarray(image).save(path, format="PNG", compress_level=PNG_LEVEL)
    else:
        raise ValueError(f"simulate: unsupported suffix {path.suffix!r}")


def content(what: str, ir: np.ndarray, vi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind, _, arg = what.partition(":")
    if kind == "ir":
        return ir
    if kind == "vi":
        return vi
    if kind == "dark":
        return dark(vi, rng)
    if kind == "haze":
        airlight, beta = (float(x) for x in arg.split(","))
        return hazy(vi, airlight, beta)
    if kind == "ev":
        return exposed(vi, float(arg))
    if kind == "ir_lc":
        return low_contrast(ir)
    if kind == "ir_noise":
        return _noisy(ir, rng, 12)
    if kind == "vi_noise":
        return _noisy(vi, rng, 12)
    raise ValueError(f"simulate: unknown content {what!r}")
