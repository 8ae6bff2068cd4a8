"""RoadScene parser: ``cropinfrared/*.jpg`` <-> ``crop_LR_visible/*.jpg`` (221 pairs) -> fusion split ``test``."""

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

LAYOUT = "cropinfrared/*.jpg and crop_LR_visible/*.jpg"


def parse(root: str | Path, split: str = "test", **_: object) -> ParsedSource:
    """Parse a RoadScene root (holding ``cropinfrared`` and ``crop_LR_visible``)."""
    base = require_dir(Path(root), "cropinfrared", "crop_LR_visible", dataset="roadscene", layout=LAYOUT)
    out = ParsedSource(version="RoadScene (Xu et al., FusionDN AAAI 2020)")
    ir = list_images(child_dir(base, "cropinfrared"), out.skipped)
    vi = list_images(child_dir(base, "crop_LR_visible"), out.skipped)
    for stem, ir_path, vi_path in pair_by_stem(ir, vi, out.skipped, ("cropinfrared", "crop_LR_visible")):
        out.add_fusion(split, FusionRecord(make_key("roadscene", stem), ir_path, vi_path, "roadscene", ir_path.name))
    out.fingerprint = files_fingerprint(record_paths(out), f"roadscene:{split}")
    return out
