"""Generic pair folder: ``<root>/ir/<name>`` <-> ``<root>/vi/<name>`` (same file stem) -> fusion pairs.

Either one ``root`` (its pairs go to split ``split``, default ``test``) or ``splits``, a mapping
``{split: folder}`` (e.g. ``{train: .../llvip/train, test: .../llvip/test}``; with ``root`` given
too, relative folders are taken inside it: ``root: .../llvip, splits: {train: train, test: test}``).

Options:

* ``holdout_every: N`` — a fixed split by file name: the pairs sorted by stem, every N-th one
  (sorted index ``i`` with ``i % N == N - 1``) goes to ``holdout_split`` (default ``test``), the
  rest to ``split`` (then usually ``train``). With ``N = 5`` RoadScene's 221 pairs give 177
  training and 44 held-out pairs; which pairs are held out depends only on the file names.
* ``scale: s`` (0 < s <= 1) — both images are resized by ``s`` on load (bicubic, sizes rounded),
  e.g. ``0.5`` turns LLVIP's 1280x1024 pairs into 640x512.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from lure.image_io import list_images
from lure.text.vocabulary import INFRARED, VISIBLE

from .base import (
    FusionRecord,
    ParsedSource,
    SourceLayoutError,
    child_dir,
    files_fingerprint,
    load_image,
    make_key,
    pair_by_stem,
    record_paths,
)

LAYOUT = "<root>/ir/<name> and <root>/vi/<name>"


def load_scaled(path: Path, modality: int, scale: float) -> np.ndarray:
    """``path`` loaded as :func:`load_image` does, then resized by ``scale`` (bicubic), uint8."""
    image = load_image(path, modality)
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def holdout_split(stems: list[str], every: int) -> set[str]:
    """The stems held out by ``holdout_every = every``: sorted index ``i`` with ``i % every == every - 1``."""
    if every < 2:
        raise ValueError(f"folder source: holdout_every must be >= 2, got {every}")
    return {stem for i, stem in enumerate(sorted(stems)) if i % every == every - 1}


def parse(root: str | Path | None = None, split: str = "test", splits: dict[str, str] | None = None,
          name: str = "folder", holdout_every: int | None = None, holdout_split_name: str = "test",
          scale: float | None = None, **_: object) -> ParsedSource:
    """Parse one or several ``ir``/``vi`` folder pairs; ``name`` prefixes the sample keys."""
    if splits is None:
        if root is None:
            raise ValueError("folder source: give 'root' (one folder with ir/ and vi/) or 'splits' {split: folder}")
        splits = {split: str(root)}
    elif root is not None:
        splits = {k: str(Path(root) / v) for k, v in splits.items()}
    if scale is not None and not 0 < float(scale) <= 1:
        raise ValueError(f"folder source {name}: scale must be in (0, 1], got {scale}")
    out = ParsedSource(version=f"folder:{name}")
    for split_name, folder in splits.items():
        folder = Path(folder)
        ir_dir, vi_dir = child_dir(folder, "ir"), child_dir(folder, "vi")
        if ir_dir is None or vi_dir is None:
            raise SourceLayoutError(f"folder source: {folder} must contain ir/ and vi/ sub-folders (same file names)")
        pairs = pair_by_stem(list_images(ir_dir, out.skipped), list_images(vi_dir, out.skipped), out.skipped,
                             ("ir", "vi"))
        held = holdout_split([s for s, _, _ in pairs], int(holdout_every)) if holdout_every else set()
        for stem, ir_path, vi_path in pairs:
            ir = partial(load_scaled, ir_path, INFRARED, float(scale)) if scale and scale != 1 else ir_path
            vi = partial(load_scaled, vi_path, VISIBLE, float(scale)) if scale and scale != 1 else vi_path
            target = holdout_split_name if stem in held else split_name
            out.add_fusion(target, FusionRecord(make_key(name, stem), ir, vi, name, ir_path.name))
    paths = record_paths(out) + [p for recs in out.fusion.values() for r in recs
                                 for p in (getattr(r.ir, "args", ())[:1] + getattr(r.vi, "args", ())[:1])]
    extra = f"folder:{name}:{sorted(splits)}"
    if holdout_every or scale:
        extra += f":{holdout_every}:{holdout_split_name}:{scale}"
    out.fingerprint = files_fingerprint(sorted(set(paths)), extra)
    return out
