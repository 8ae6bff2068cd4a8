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


def paired_crop_flip(crop: int, seed: int | None = None, second: str = "second", flips: bool = True) -> A.Compose:
    """A Compose taking ``image=`` and ``<second>=`` that pads (reflect) to at least ``crop``, takes the
    same random ``crop x crop`` window from both, and flips both horizontally / vertically (p = 0.5)."""
    steps: list = [
        A.PadIfNeeded(min_height=crop, min_width=crop, border_mode=cv2.BORDER_REFLECT_101),
        A.RandomCrop(height=crop, width=crop),
    ]
    if flips:
        steps += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    return A.Compose(steps, additional_targets={second: "image"}, seed=seed)


def apply_pair(transform: A.Compose, first: np.ndarray, second: np.ndarray, second_name: str = "second") -> tuple[np.ndarray, np.ndarray]:
    """Run ``transform`` on ``first`` (``image``) and ``second``; both must have the same height and width."""
    if first.shape[:2] != second.shape[:2]:
        raise ValueError(f"paired images must have the same size, got {first.shape[:2]} and {second.shape[:2]}")
    out = transform(image=first, **{second_name: second})
    return out["image"], out[second_name]
