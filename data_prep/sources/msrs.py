"""MSRS parser: ``{train,test}/{ir,vi}/<id>{D,N}.png`` (640x480; D day, N night) -> fusion splits."""

from __future__ import annotations

from pathlib import Path

from .base import (
    ParsedSource,
    SourceLayoutError,
    add_fusion_pairs,
    child_dir,
    files_fingerprint,
    record_paths,
)

LAYOUT = "{train,test}/{ir,vi}/<id>{D,N}.png"


def parse(root: str | Path, **_: object) -> ParsedSource:
    """Parse an MSRS root (holding ``train`` and/or ``test``)."""
    from .base import find_dir

    root = Path(root)
    base = (find_dir(root, "test") or find_dir(root, "train")) if root.exists() else None
    if base is None:
        raise SourceLayoutError(f"msrs: no train/ or test/ folder under {root}; expected layout: {LAYOUT}")
    out = ParsedSource(version="MSRS (Tang et al., PIAFusion, Inf. Fusion 2022)")
    for split in ("train", "test"):
        sub = child_dir(base, split)
        if sub is None or child_dir(sub, "ir") is None:
            out.skipped.append(f"{base}: no {split}/ir, split skipped")
            continue
        add_fusion_pairs(out, split, child_dir(sub, "ir"), child_dir(sub, "vi") or sub / "vi", "msrs", ("msrs", split),
                         name_prefix=f"{split}/", extra=_daytime)
    out.fingerprint = files_fingerprint(record_paths(out), "msrs")
    return out


def _daytime(stem: str) -> dict:
    """MSRS names end in ``D`` (day) or ``N`` (night)."""
    daytime = {"D": "day", "N": "night"}.get(stem[-1:], "")
    return {"time": daytime} if daytime else {}
