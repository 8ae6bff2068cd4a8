"""Fused images of other methods, computed elsewhere, scored as rows of the vanilla tables.

This is how a paper compares with published methods: their authors' code, run from their own
weights, writes one fused image per evaluation pair, and the evaluation scores those images with
the same metrics, on the same pairs, as LURE's. ``evaluate.reference_fusions`` maps a row name to a
folder laid out as ``<folder>/<set slug>/<stem>.png`` (or any readable image extension), where the
set slug is the pair set's file-name form (``roadscene/test`` -> ``roadscene-test``) and the stem
is the pair's file stem (a shard key ``roadscene_FLIR_00006`` -> ``FLIR_00006``).

A folder without the set's sub-folder is skipped for that set with one note; within a present
folder, a missing image, or one whose size is not the pair's, stops the evaluation with one line
naming the file (a partial row would compare means over different pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lure.evaluation.pair_sets import PairSet, resolve_path
from lure.image_io import read_image, reduce_to_8bit, to_rgb

#: The row of reference fusions ``name``: ``fused:<name>``.
PREFIX = "fused:"
_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class ReferenceFusions:
    """The precomputed fused images of one method for one pair set (``folder`` = ``<root>/<set slug>``)."""

    name: str
    folder: Path
    dataset: str  # the data set name of the pair set (``roadscene`` of ``roadscene/test``)

    def stem_of(self, key: str) -> str:
        """The file stem of a pair key (the key without its ``<data set>_`` prefix)."""
        prefix = f"{self.dataset}_"
        return key[len(prefix):] if key.startswith(prefix) else key

    def image(self, key: str, size: tuple[int, int]) -> np.ndarray:
        """The fused image of pair ``key`` as uint8 RGB ``HxWx3``; ``size`` is the pair's ``(H, W)``."""
        stem = self.stem_of(key)
        path = next((self.folder / f"{stem}{ext}" for ext in _EXTENSIONS if (self.folder / f"{stem}{ext}").is_file()),
                    None)
        if path is None:
            raise FileNotFoundError(f"reference fusions {self.name}: {self.folder / stem}.png is missing (every pair "
                                    f"of the set needs its fused image, or remove the folder {self.folder})")
        image = np.ascontiguousarray(to_rgb(reduce_to_8bit(read_image(path, "visible")))[:, :, :3])
        if image.shape[:2] != tuple(size):
            raise ValueError(f"reference fusions {self.name}: {path} is {image.shape[1]}x{image.shape[0]} but the pair "
                             f"{key} is {size[1]}x{size[0]}: it must be the fused image of exactly that pair")
        return image


def reference_fusions(references: Mapping[str, str], pair_set: PairSet,
                      notes: list[str]) -> dict[str, ReferenceFusions]:
    """``fused:<name>`` -> the precomputed images of each configured method for ``pair_set``; a
    method without a folder for the set adds one note and is left out."""
    out = {}
    dataset = pair_set.spec.split("/")[0]
    for name, root in references.items():
        folder = resolve_path(root) / pair_set.slug
        if not folder.is_dir():
            notes.append(f"reference fusions {name}: no folder {folder}; not a row of {pair_set.spec}")
            continue
        out[f"{PREFIX}{name}"] = ReferenceFusions(name, folder, dataset)
    return out
