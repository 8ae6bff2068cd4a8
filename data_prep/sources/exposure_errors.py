"""Exposure-Errors (Afifi et al., CVPR 2021) parser.

``{training,validation,testing}/INPUT_IMAGES/<name>_{0,N1,N1.5,P1,P1.5}.JPG`` <->
``<split>/GT_IMAGES/<name>.jpg`` (the testing set's ground truth may be called
``expert_c_testing_set``). Only the over-exposed inputs (``P1``, ``P1.5``) are used: visible
task ``oe``. Under-exposed inputs are counted in ``skipped`` as unused.
"""

from __future__ import annotations

from pathlib import Path

from lure.image_io import is_image_file, list_images
from lure.text.vocabulary import VISIBLE

from .base import (
    ParsedSource,
    Stage1Record,
    child_dir,
    files_fingerprint,
    make_key,
    record_paths,
    require_dir,
)

LAYOUT = "{training,validation,testing}/INPUT_IMAGES/<name>_{0,N1,N1.5,P1,P1.5}.JPG and <split>/GT_IMAGES/<name>.jpg"
SPLITS = {"training": "train", "validation": "val", "testing": "test"}
GT_DIRS = ("GT_IMAGES", "expert_c_testing_set", "expert_c")
OVER = ("P1", "P1.5")
ALL_LEVELS = ("0", "N1", "N1.5", "P1", "P1.5")


def parse(root: str | Path, levels: tuple[str, ...] = OVER, emit_pd: bool = True, **_: object) -> ParsedSource:
    """Parse an Exposure-Errors root (holding ``training``/``validation``/``testing``)."""
    base = require_dir(Path(root), "training", dataset="exposure_errors", layout=LAYOUT)
    out = ParsedSource(version="Exposure-Errors (Afifi et al., CVPR 2021)")
    for folder, split in SPLITS.items():
        sub = child_dir(base, folder)
        if sub is None:
            out.skipped.append(f"{base / folder}: missing, split {split!r} not built")
            continue
        gt_dir = next((d for d in (child_dir(sub, g) for g in GT_DIRS) if d is not None), None)
        in_dir = child_dir(sub, "INPUT_IMAGES")
        if gt_dir is None or in_dir is None:
            out.skipped.append(f"{sub}: missing INPUT_IMAGES or GT_IMAGES, split {split!r} not built")
            continue
        gt = list_images(gt_dir, out.skipped)
        used: set[str] = set()
        # "a0001-x_P1.5.JPG": strip the extension only, then split the level off at the last "_"
        for path in sorted(p for p in in_dir.iterdir() if p.is_file()):
            if not is_image_file(path):
                continue
            name, _, level = path.name[: -len(path.suffix)].rpartition("_")
            if level not in ALL_LEVELS or not name:
                out.skipped.append(f"{path}: name is not <name>_<level>, skipped")
                continue
            if level not in levels:
                continue
            if name not in gt:
                out.skipped.append(f"{path}: no ground truth {name}.* in {gt_dir}, skipped")
                continue
            used.add(name)
            key = make_key("expo", folder, "oe", name, level)
            rec = Stage1Record(key, "oe", VISIBLE, path, gt[name], "exposure_errors", f"{folder}/INPUT_IMAGES/{path.name}")
            out.add_stage1(split, rec)
        for name in sorted(used) if emit_pd else []:
            rec = Stage1Record(make_key("expo", folder, "pd", name), "pd", VISIBLE, gt[name], gt[name],
                               "exposure_errors", f"{folder}/{gt_dir.name}/{gt[name].name}")
            out.add_stage1(split, rec)
    out.fingerprint = files_fingerprint(record_paths(out), f"expo:{levels}:{emit_pd}")
    return out
