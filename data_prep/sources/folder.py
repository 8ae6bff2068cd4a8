"""Generic pair folder: ``<root>/ir/<name>`` <-> ``<root>/vi/<name>`` (same file stem) -> fusion pairs.

Either one ``root`` (its pairs go to split ``split``, default ``test``) or ``splits``, a mapping
``{split: root}`` (e.g. ``{train: .../llvip/train, test: .../llvip/test}``).
"""

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

LAYOUT = "<root>/ir/<name> and <root>/vi/<name>"


def parse(root: str | Path | None = None, split: str = "test", splits: dict[str, str] | None = None,
          name: str = "folder", **_: object) -> ParsedSource:
    """Parse one or several ``ir``/``vi`` folder pairs; ``name`` prefixes the sample keys."""
    if splits is None:
        if root is None:
            raise ValueError("folder source: give 'root' (one folder with ir/ and vi/) or 'splits' {split: folder}")
        splits = {split: str(root)}
    out = ParsedSource(version=f"folder:{name}")
    for split_name, folder in splits.items():
        folder = Path(folder)
        ir_dir, vi_dir = child_dir(folder, "ir"), child_dir(folder, "vi")
        if ir_dir is None or vi_dir is None:
            raise SourceLayoutError(f"folder source: {folder} must contain ir/ and vi/ sub-folders (same file names)")
        add_fusion_pairs(out, split_name, ir_dir, vi_dir, name, (name,))
    out.fingerprint = files_fingerprint(record_paths(out), f"folder:{name}:{sorted(splits)}")
    return out
