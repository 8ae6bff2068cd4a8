"""Qualitative grids: one row per pair, columns IR | VI | each method, same crop, labelled (Pillow).

Layout (pixels): a title bar of :data:`TITLE_HEIGHT`, a column-label bar of :data:`LABEL_HEIGHT`,
then rows of ``crop_h x crop_w`` panels separated and framed by :data:`PAD` pixels of white::

    width  = n_columns * crop_w + (n_columns + 1) * PAD
    height = TITLE_HEIGHT + LABEL_HEIGHT + n_rows * crop_h + (n_rows + 1) * PAD

Every panel of a row is cut at the same place: a ``crop x crop`` window centred in the image
(``crop`` is clipped to the smallest image of the grid). Grey panels are shown as grey RGB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lure.evaluation.io import atomic_write_png

__all__ = ["LABEL_HEIGHT", "PAD", "TITLE_HEIGHT", "centre_crop", "grid_shape", "make_grid", "save_grid"]

PAD = 4
TITLE_HEIGHT = 22
LABEL_HEIGHT = 18


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def centre_crop(image: np.ndarray, crop_h: int, crop_w: int) -> np.ndarray:
    """The ``crop_h x crop_w`` window at the centre of ``image`` (uint8 ``HxW`` or ``HxWx3``) as RGB."""
    h, w = image.shape[:2]
    top, left = max(0, (h - crop_h) // 2), max(0, (w - crop_w) // 2)
    patch = image[top : top + crop_h, left : left + crop_w]
    if patch.ndim == 2:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    return np.ascontiguousarray(patch[:, :, :3])


def grid_shape(n_rows: int, n_columns: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """``(height, width)`` of a grid with these counts and panel size."""
    width = n_columns * crop_w + (n_columns + 1) * PAD
    height = TITLE_HEIGHT + LABEL_HEIGHT + n_rows * crop_h + (n_rows + 1) * PAD
    return height, width


def _fit(draw, text: str, font, width: int) -> str:
    while text and draw.textlength(text, font=font) > width - 2:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


def make_grid(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str],
    title: str = "",
    crop: int | tuple[int, int] = 256,
) -> np.ndarray:
    """Grid image (uint8 ``HxWx3``) of ``rows`` (each a list of images of one pair, all the same
    size, in the order of ``labels``)."""
    from PIL import Image, ImageDraw

    if not rows:
        raise ValueError("make_grid needs at least one row")
    if any(len(r) != len(labels) for r in rows):
        raise ValueError(f"every row needs {len(labels)} images (one per label)")
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    crop_h = min([crop_h, *[img.shape[0] for r in rows for img in r]])
    crop_w = min([crop_w, *[img.shape[1] for r in rows for img in r]])
    height, width = grid_shape(len(rows), len(labels), crop_h, crop_w)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((PAD, 4), _fit(draw, title, _font(14), width - 2 * PAD), fill="black", font=_font(14))
    label_font = _font(11)
    for j, label in enumerate(labels):
        x = PAD + j * (crop_w + PAD)
        draw.text(
            (x + 1, TITLE_HEIGHT + 2), _fit(draw, label, label_font, crop_w), fill="black", font=label_font
        )
    for i, row in enumerate(rows):
        y = TITLE_HEIGHT + LABEL_HEIGHT + PAD + i * (crop_h + PAD)
        for j, image in enumerate(row):
            x = PAD + j * (crop_w + PAD)
            canvas.paste(Image.fromarray(centre_crop(image, crop_h, crop_w)), (x, y))
    return np.asarray(canvas)


def save_grid(
    path: str | os.PathLike,
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str],
    title: str = "",
    crop: int | tuple[int, int] = 256,
) -> Path:
    """:func:`make_grid` written atomically as PNG to ``path``."""
    return atomic_write_png(path, make_grid(rows, labels, title, crop))
