"""Qualitative grids: one row per pair, columns IR | VI | each method, same crop, labelled (Pillow).

Layout (pixels): a title bar of :data:`TITLE_HEIGHT`, a column-label bar of :data:`LABEL_HEIGHT`,
then rows of ``crop_h x crop_w`` panels separated and framed by :data:`PAD` pixels of white::

    width  = n_columns * crop_w + (n_columns + 1) * PAD
    height = TITLE_HEIGHT + LABEL_HEIGHT + n_rows * crop_h + (n_rows + 1) * PAD

Every panel of a row is cut at the same place: a ``crop x crop`` window centred in the image, or
around the warmest area of the infrared input (``focus="infrared"``: where people and engines
are); ``crop`` is clipped to the smallest image of the grid. Grey panels are shown as grey RGB.
Titles and labels are drawn in ASCII (:func:`drawable`): Pillow's built-in font has no glyph for
dashes or ``×`` and would draw a box.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lure.image_io import write_image

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


def centre_crop(image: np.ndarray, crop_h: int, crop_w: int, centre: tuple[int, int] | None = None) -> np.ndarray:
    """The ``crop_h x crop_w`` window of ``image`` (uint8 ``HxW`` or ``HxWx3``) as RGB, centred at
    ``centre = (row, column)`` (default: the image centre), shifted to stay inside the image."""
    h, w = image.shape[:2]
    cy, cx = centre if centre is not None else (h // 2, w // 2)
    top = int(min(max(0, cy - crop_h // 2), max(0, h - crop_h)))
    left = int(min(max(0, cx - crop_w // 2), max(0, w - crop_w)))
    patch = image[top : top + crop_h, left : left + crop_w]
    if patch.ndim == 2:
        patch = np.repeat(patch[:, :, None], 3, axis=2)
    return np.ascontiguousarray(patch[:, :, :3])


def hottest_point(infrared: np.ndarray, crop: int) -> tuple[int, int]:
    """``(row, column)`` of the warmest ``crop``-sized area of an infrared image (the peak of the
    image smoothed with a Gaussian of ``crop / 6`` px): where thermal targets are."""
    from scipy.ndimage import gaussian_filter

    grey = infrared if infrared.ndim == 2 else infrared[:, :, :3].mean(axis=2)
    smooth = gaussian_filter(grey.astype(np.float32), sigma=max(1.0, crop / 6))
    row, col = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return int(row), int(col)


def grid_shape(n_rows: int, n_columns: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """``(height, width)`` of a grid with these counts and panel size."""
    width = n_columns * crop_w + (n_columns + 1) * PAD
    height = TITLE_HEIGHT + LABEL_HEIGHT + n_rows * crop_h + (n_rows + 1) * PAD
    return height, width


#: Characters Pillow's built-in font has no glyph for (they draw as a box), and what to draw instead.
_PLAIN = str.maketrans({"—": "-", "–": "-", "×": "x", "→": "->", "←": "<-", "·": "-", "“": '"', "”": '"',
                        "‘": "'", "’": "'", "…": "..."})


def drawable(text: str) -> str:
    """``text`` in characters the built-in font draws (ASCII): dashes, ``×`` and quotes replaced,
    accents dropped, anything else left without a glyph becomes ``?``."""
    import unicodedata

    text = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(c if ord(c) < 128 else ("" if unicodedata.combining(c) else "?") for c in text)


def _fit(draw, text: str, font, width: int) -> str:
    text = drawable(text)
    while text and draw.textlength(text, font=font) > width - 2:
        text = text[:-4] + "..." if len(text) > 4 else ""
    return text


def make_grid(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str],
    title: str = "",
    crop: int | tuple[int, int] = 256,
    focus: str = "centre",
) -> np.ndarray:
    """Grid image (uint8 ``HxWx3``) of ``rows`` (each a list of images of one pair, all the same
    size, in the order of ``labels``). ``focus``: ``centre`` crops every panel at the image
    centre, ``infrared`` around the warmest area of the row's first image (the infrared input)."""
    if focus not in ("centre", "infrared"):
        raise ValueError(f"grid focus must be centre or infrared, got {focus!r}")
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
        centre = hottest_point(row[0], min(crop_h, crop_w)) if focus == "infrared" else None
        for j, image in enumerate(row):
            x = PAD + j * (crop_w + PAD)
            canvas.paste(Image.fromarray(centre_crop(image, crop_h, crop_w, centre)), (x, y))
    return np.asarray(canvas)


def save_grid(
    path: str | os.PathLike,
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str],
    title: str = "",
    crop: int | tuple[int, int] = 256,
    focus: str = "centre",
) -> Path:
    """:func:`make_grid` written atomically as PNG to ``path``."""
    return write_image(path, make_grid(rows, labels, title, crop, focus))
