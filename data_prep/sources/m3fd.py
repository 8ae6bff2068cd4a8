"""M3FD parser: ``M3FD_Fusion/{Ir,Vis}/*.png`` (300 pairs) -> fusion split ``test``."""

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

LAYOUT = "M3FD_Fusion/{Ir,Vis}/*.png"


def parse(root: str | Path, split: str = "test", **_: object) -> ParsedSource:
    """Parse an M3FD root (holding ``M3FD_Fusion`` or being it)."""
    base = require_dir(Path(root), "Ir", "Vis", dataset="m3fd", layout=LAYOUT)
    out = ParsedSource(version="M3FD (Liu et al., TarDAL, CVPR 2022)")
    add_fusion_pairs(out, split, child_dir(base, "Ir"), child_dir(base, "Vis"), "m3fd", ("m3fd",), ("Ir", "Vis"))
    out.fingerprint = files_fingerprint(record_paths(out), f"m3fd:{split}")
    return out
