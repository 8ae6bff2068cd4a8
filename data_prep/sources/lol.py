"""LOL (low-light) parser: ``our485/{low,high}/*.png`` (train), ``eval15/{low,high}/*.png`` (test).

Visible task ``ll``: ``lq`` = ``low/<name>``, ``hq`` = ``high/<name>``. With ``emit_pd`` each clean
image also gives a ``pd`` triplet (``lq = hq``).
"""

from __future__ import annotations

from pathlib import Path

from lure.image_io import list_images
from lure.text.vocabulary import VISIBLE

from .base import (
    ParsedSource,
    Stage1Record,
    child_dir,
    files_fingerprint,
    find_dir,
    make_key,
    pair_by_stem,
    record_paths,
    require_dir,
)

LAYOUT = "our485/{low,high}/*.png and eval15/{low,high}/*.png (or train/{low,high} and test/{low,high})"
SPLITS = {"our485": "train", "eval15": "test"}
#: The same pairs re-hosted with plain split names (e.g. the 6 LOL pairs of ../shared/data/lol).
PLAIN_SPLITS = {"train": "train", "test": "test"}


def parse(root: str | Path, emit_pd: bool = True, **_: object) -> ParsedSource:
    """Parse a LOL root (the folder holding ``our485`` and ``eval15``, or a parent of it; or a folder
    holding ``train/{low,high}`` and optionally ``test/{low,high}``)."""
    root = Path(root)
    train_dir = child_dir(root, "train") if root.is_dir() else None
    if train_dir is not None and child_dir(train_dir, "low") is not None and find_dir(root, "our485") is None:
        base, splits = root, PLAIN_SPLITS
    else:
        base, splits = require_dir(root, "our485", dataset="lol", layout=LAYOUT), SPLITS
    out = ParsedSource(version="LOL (Wei et al., BMVC 2018)")
    for folder, split in splits.items():
        sub = child_dir(base, folder)
        if sub is None:
            if splits is PLAIN_SPLITS:
                continue
            out.skipped.append(f"{base / folder}: missing, split {split!r} not built")
            continue
        low = list_images(child_dir(sub, "low") or sub / "low", out.skipped)
        high = list_images(child_dir(sub, "high") or sub / "high", out.skipped)
        for stem, lq, hq in pair_by_stem(low, high, out.skipped, ("low", "high")):
            name = f"{folder}/{stem}"
            out.add_stage1(split, Stage1Record(make_key("lol", folder, "ll", stem), "ll", VISIBLE, lq, hq, "lol", name))
            if emit_pd:
                out.add_stage1(split, Stage1Record(make_key("lol", folder, "pd", stem), "pd", VISIBLE, hq, hq, "lol", name))
    out.fingerprint = files_fingerprint(record_paths(out), f"lol:{emit_pd}")
    return out
