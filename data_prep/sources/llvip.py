"""LLVIP parser: ``{infrared,visible}/{train,test}/<id>.jpg`` (1280x1024) -> fusion splits train/test."""

from __future__ import annotations

from pathlib import Path

from .base import (
    ParsedSource,
    add_fusion_pairs,
    child_dir,
    files_fingerprint,
    record_paths,
    require_dir,
)

LAYOUT = "{infrared,visible}/{train,test}/<id>.jpg"


def parse(root: str | Path, **_: object) -> ParsedSource:
    """Parse an LLVIP root (holding ``infrared`` and ``visible``)."""
    base = require_dir(Path(root), "infrared", "visible", dataset="llvip", layout=LAYOUT)
    out = ParsedSource(version="LLVIP (Jia et al., ICCV 2021)")
    for split in ("train", "test"):
        ir_dir, vi_dir = child_dir(child_dir(base, "infrared"), split), child_dir(child_dir(base, "visible"), split)
        if ir_dir is None or vi_dir is None:
            out.skipped.append(f"{base}: no infrared/{split} or visible/{split}, split skipped")
            continue
        add_fusion_pairs(out, split, ir_dir, vi_dir, "llvip", ("llvip", split), ("infrared", "visible"), f"{split}/")
    out.fingerprint = files_fingerprint(record_paths(out), "llvip")
    return out
