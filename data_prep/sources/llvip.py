"""LLVIP parser: ``{infrared,visible}/{train,test}/<id>.jpg`` (1280x1024) -> fusion splits train/test."""

from __future__ import annotations

from pathlib import Path

from .base import (
    FusionRecord,
    ParsedSource,
    child_dir,
    files_fingerprint,
    list_images,
    make_key,
    pair_by_stem,
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
        ir, vi = list_images(ir_dir, out.skipped), list_images(vi_dir, out.skipped)
        for stem, ir_path, vi_path in pair_by_stem(ir, vi, out.skipped, ("infrared", "visible")):
            out.add_fusion(split, FusionRecord(make_key("llvip", split, stem), ir_path, vi_path, "llvip", f"{split}/{ir_path.name}"))
    out.fingerprint = files_fingerprint(record_paths(out), "llvip")
    return out
