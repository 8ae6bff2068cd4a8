"""Paired augmentation with albumentations: the same random crop and flips for both images.

Images are uint8 numpy arrays (``HxWx3`` RGB or ``HxW`` grey). Images smaller than the crop are
first padded by reflection. For a fusion pair the visible image is albumentations' ``image`` and
the infrared image an additional ``image`` target (a 2-D infrared with a 3-channel visible works;
pixel-level noise, if ever added, must be applied per modality — GaussNoise fails on the channel
mismatch).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402


def whole_view(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` (uint8, ``HxW`` or ``HxWxC``) area-downscaled so that its shorter side is ``side``
    pixels (aspect kept); unchanged when it is not larger than that."""
    height, width = image.shape[:2]
    short = min(height, width)
    if short <= side:
        return image
    size = (max(side, round(width * side / short)), max(side, round(height * side / short)))  # cv2: (w, h)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class PairedCropFlip:
    """Pads (reflect) to at least ``crop``, takes the same random ``crop x crop`` window from both
    images (albumentations), then flips both horizontally and vertically, each with p = 0.5 and
    drawn independently. Call it like an albumentations Compose: ``t(image=a, <second>=b)``.

    Albumentations seeds every transform of a Compose with the same seed, so its two flip
    transforms always agreed (a crop was either unflipped or rotated by 180 degrees); the flips
    here draw from their own generator, reseeded with the crop by :meth:`set_random_seed`.
    """

    def __init__(self, crop: int, seed: int | None = None, second: str = "second", flips: bool = True) -> None:
        self.second, self.flips = second, flips
        self.compose = A.Compose([
            A.PadIfNeeded(min_height=crop, min_width=crop, border_mode=cv2.BORDER_REFLECT_101),
            A.RandomCrop(height=crop, width=crop),
        ], additional_targets={second: "image"}, seed=seed)
        self.rng = np.random.default_rng(seed)

    def set_random_seed(self, seed: int) -> None:
        """Reseed the crop and the flips (same seed, same window and flips)."""
        self.compose.set_random_seed(seed)
        self.rng = np.random.default_rng([seed, 1])

    def __call__(self, image: np.ndarray, **targets: np.ndarray) -> dict[str, np.ndarray]:
        out = self.compose(image=image, **targets)
        if self.flips:
            horizontal, vertical = self.rng.random(2) < 0.5
            for key in ("image", self.second):
                array = out[key]
                if horizontal:
                    array = array[:, ::-1]
                if vertical:
                    array = array[::-1]
                out[key] = np.ascontiguousarray(array)
        return out


def paired_crop_flip(crop: int, seed: int | None = None, second: str = "second", flips: bool = True) -> PairedCropFlip:
    """A :class:`PairedCropFlip` taking ``image=`` and ``<second>=``."""
    return PairedCropFlip(crop, seed, second, flips)


def apply_pair(transform: PairedCropFlip, first: np.ndarray, second: np.ndarray, second_name: str = "second") -> tuple[np.ndarray, np.ndarray]:
    """Run ``transform`` on ``first`` (``image``) and ``second``; both must have the same height and width."""
    if first.shape[:2] != second.shape[:2]:
        raise ValueError(f"paired images must have the same size, got {first.shape[:2]} and {second.shape[:2]}")
    out = transform(image=first, **{second_name: second})
    return out["image"], out[second_name]
