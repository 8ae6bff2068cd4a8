"""RoadScene parser: ``cropinfrared/*.jpg`` <-> ``crop_LR_visible/*.jpg`` (221 pairs) -> fusion split ``test``."""

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

LAYOUT = "cropinfrared/*.jpg and crop_LR_visible/*.jpg"


def parse(root: str | Path, split: str = "test", **_: object) -> ParsedSource:
    """Parse a RoadScene root (holding ``cropinfrared`` and ``crop_LR_visible``)."""
    base = require_dir(Path(root), "cropinfrared", "crop_LR_visible", dataset="roadscene", layout=LAYOUT)
    out = ParsedSource(version="RoadScene (Xu et al., FusionDN AAAI 2020)")
    add_fusion_pairs(out, split, child_dir(base, "cropinfrared"), child_dir(base, "crop_LR_visible"), "roadscene",
                     ("roadscene",), ("cropinfrared", "crop_LR_visible"))
    out.fingerprint = files_fingerprint(record_paths(out), f"roadscene:{split}")
    return out
