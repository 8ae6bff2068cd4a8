"""M3FD parser: ``M3FD_Fusion/{Ir,Vis}/*.png`` (300 pairs) -> fusion split ``test``."""

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

LAYOUT = "M3FD_Fusion/{Ir,Vis}/*.png"


def parse(root: str | Path, split: str = "test", **_: object) -> ParsedSource:
    """Parse an M3FD root (holding ``M3FD_Fusion`` or being it)."""
    base = require_dir(Path(root), "Ir", "Vis", dataset="m3fd", layout=LAYOUT)
    out = ParsedSource(version="M3FD (Liu et al., TarDAL, CVPR 2022)")
    ir, vi = list_images(child_dir(base, "Ir"), out.skipped), list_images(child_dir(base, "Vis"), out.skipped)
    for stem, ir_path, vi_path in pair_by_stem(ir, vi, out.skipped, ("Ir", "Vis")):
        out.add_fusion(split, FusionRecord(make_key("m3fd", stem), ir_path, vi_path, "m3fd", ir_path.name))
    out.fingerprint = files_fingerprint(record_paths(out), f"m3fd:{split}")
    return out
