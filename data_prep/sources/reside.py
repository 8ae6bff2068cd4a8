"""RESIDE (haze) parser.

* ITS: ``ITS/hazy/<id>_<n>_<beta>.png`` <-> ``ITS/clear/<id>.png`` (train)
* OTS: ``OTS/hazy/<id>_<A>_<beta>.jpg`` <-> ``OTS/clear/<id>.jpg`` (train)
* SOTS: ``SOTS/{indoor,outdoor}/hazy/<id>_*.{png,jpg}`` <-> ``SOTS/{indoor,outdoor}/gt/<id>.{png,jpg}`` (test)

Visible task ``hz``; the clean image is found from the hazy file's ``<id>`` (the part before the
first ``_``), extension ignored. With ``emit_pd`` each clean image gives one ``pd`` triplet.
"""

from __future__ import annotations

from pathlib import Path

from lure.image_io import list_images
from lure.text.vocabulary import VISIBLE

from .base import (
    ParsedSource,
    SourceLayoutError,
    Stage1Record,
    child_dir,
    files_fingerprint,
    find_dir,
    make_key,
    record_paths,
)

LAYOUT = "ITS/{hazy,clear}, OTS/{hazy,clear}, SOTS/{indoor,outdoor}/{hazy,gt}"
#: subset name -> (split, [(hazy dir, clean dir) relative to the subset folder])
SUBSETS = {
    "ITS": ("train", [("hazy", "clear")]),
    "OTS": ("train", [("hazy", "clear")]),
    "SOTS": ("test", [("indoor/hazy", "indoor/gt"), ("outdoor/hazy", "outdoor/gt")]),
}


def _subdir(base: Path, rel: str) -> Path | None:
    cur: Path | None = base
    for part in rel.split("/"):
        cur = child_dir(cur, part) if cur is not None else None
    return cur


def parse(root: str | Path, subsets: list[str] | None = None, emit_pd: bool = True, **_: object) -> ParsedSource:
    """Parse a RESIDE root holding any of ``ITS``, ``OTS``, ``SOTS`` (``subsets`` restricts them)."""
    root = Path(root)
    wanted = [s.upper() for s in (subsets or list(SUBSETS))]
    out = ParsedSource(version="RESIDE (Li et al., TIP 2019)")
    found_any = False
    for subset in wanted:
        if subset not in SUBSETS:
            raise ValueError(f"reside: unknown subset {subset!r}; known: {', '.join(SUBSETS)}")
        holder = find_dir(root, subset) if root.exists() else None
        if holder is None:
            out.skipped.append(f"{root}: no {subset} folder, subset skipped")
            continue
        found_any = True
        base = child_dir(holder, subset)
        split, folders = SUBSETS[subset]
        for hazy_rel, clear_rel in folders:
            hazy_dir, clear_dir = _subdir(base, hazy_rel), _subdir(base, clear_rel)
            if hazy_dir is None or clear_dir is None:
                out.skipped.append(f"{base}: missing {hazy_rel} or {clear_rel}, skipped")
                continue
            clear = list_images(clear_dir, out.skipped)
            used: set[str] = set()
            for stem, hazy in list_images(hazy_dir, out.skipped).items():
                scene = stem.split("_", 1)[0]
                if scene not in clear:
                    out.skipped.append(f"{hazy}: no clear image {scene}.* in {clear_dir}, skipped")
                    continue
                used.add(scene)
                name = f"{subset}/{hazy_rel}/{hazy.name}"
                key = make_key("reside", subset, hazy_rel.split("/")[0], "hz", stem)
                out.add_stage1(split, Stage1Record(key, "hz", VISIBLE, hazy, clear[scene], "reside", name))
            for scene in sorted(used) if emit_pd else []:
                name = f"{subset}/{clear_rel}/{clear[scene].name}"
                key = make_key("reside", subset, clear_rel.split("/")[0], "pd", scene)
                out.add_stage1(split, Stage1Record(key, "pd", VISIBLE, clear[scene], clear[scene], "reside", name))
    if not found_any:
        raise SourceLayoutError(f"reside: none of {', '.join(wanted)} found under {root}; expected layout: {LAYOUT}")
    out.fingerprint = files_fingerprint(record_paths(out), f"reside:{wanted}:{emit_pd}")
    return out
