"""EMS (Text-IF's Enhanced Multi-Spectral dataset) parser.

Training: ``train/<degradation>/{Infrared,Infrared_gt,Visible,Visible_gt,text}/`` — one folder per
degradation (``IR_Low_contrast``, ``Low_light``, ``Over_exposure``, ``IR_Noise``, ...). The
degradation folder's name gives the task (:data:`DEGRADATION_TASKS`, matched case-insensitively on
words); infrared tasks pair ``Infrared`` <-> ``Infrared_gt``, visible tasks ``Visible`` <->
``Visible_gt``. Degradations LURE does not train on (noise, stripes, rain, blur) are reported in
``skipped`` as unused. Evaluation: ``eval/{Infrared,Visible}`` -> fusion split ``test``; an
EMS-full ``eval/<degradation>/{Infrared,Visible}`` -> fusion split ``test_<task>`` (``vi_task``/
``ir_task`` in the record's ``extra``).
"""

from __future__ import annotations

import re
from pathlib import Path

from lure.image_io import list_images
from lure.text.vocabulary import INFRARED, VISIBLE

from .base import (
    FusionRecord,
    ParsedSource,
    Stage1Record,
    child_dir,
    files_fingerprint,
    make_key,
    pair_by_stem,
    record_paths,
    require_dir,
)

LAYOUT = "train/<degradation>/{Infrared,Infrared_gt,Visible,Visible_gt,text}/ and eval/{Infrared,Visible}"
#: (words in the folder name, task, modality), first match wins
DEGRADATION_TASKS: list[tuple[tuple[str, ...], str, int]] = [
    (("low", "contrast"), "lc", INFRARED),
    (("low", "light"), "ll", VISIBLE),
    (("over", "exposure"), "oe", VISIBLE),
    (("overexposure",), "oe", VISIBLE),
    (("haze",), "hz", VISIBLE),
]


def task_of(folder_name: str) -> tuple[str, int] | None:
    """``(task, modality)`` of an EMS degradation folder, or ``None`` when LURE does not use it."""
    words = set(re.split(r"[^a-z0-9]+", folder_name.lower()))
    for needed, task, modality in DEGRADATION_TASKS:
        if all(w in words for w in needed):
            return task, modality
    return None


def parse(root: str | Path, emit_pd: bool = True, **_: object) -> ParsedSource:
    """Parse an EMS root (holding ``train`` and/or ``eval``)."""
    base = require_dir(Path(root), "train", dataset="ems", layout=LAYOUT)
    out = ParsedSource(version="EMS (Yi et al., Text-IF, CVPR 2024)")
    train = child_dir(base, "train")
    for deg_dir in sorted(p for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")):
        mapped = task_of(deg_dir.name)
        if mapped is None:
            out.skipped.append(f"{deg_dir}: degradation not used by LURE, skipped")
            continue
        task, modality = mapped
        side = "Infrared" if modality == INFRARED else "Visible"
        lq_dir, hq_dir = child_dir(deg_dir, side), child_dir(deg_dir, f"{side}_gt")
        if lq_dir is None or hq_dir is None:
            out.skipped.append(f"{deg_dir}: missing {side} or {side}_gt, skipped")
            continue
        lq, hq = list_images(lq_dir, out.skipped), list_images(hq_dir, out.skipped)
        for stem, lq_path, hq_path in pair_by_stem(lq, hq, out.skipped, (side, f"{side}_gt")):
            name = f"train/{deg_dir.name}/{side}/{lq_path.name}"
            out.add_stage1("train", Stage1Record(make_key("ems", deg_dir.name, task, stem), task, modality,
                                                 lq_path, hq_path, "ems", name))
            if emit_pd:
                out.add_stage1("train", Stage1Record(make_key("ems", deg_dir.name, "pd", stem), "pd", modality,
                                                     hq_path, hq_path, "ems", f"train/{deg_dir.name}/{side}_gt/{stem}"))
    ev = child_dir(base, "eval")
    if ev is not None:
        if child_dir(ev, "Infrared") is not None:
            _eval_pairs(out, ev, "test", None)
        else:
            for deg_dir in sorted(p for p in ev.iterdir() if p.is_dir()):
                mapped = task_of(deg_dir.name)
                if mapped is None:
                    out.skipped.append(f"{deg_dir}: degradation not used by LURE, skipped")
                    continue
                _eval_pairs(out, deg_dir, f"test_{mapped[0]}", mapped)
    out.fingerprint = files_fingerprint(record_paths(out), f"ems:{emit_pd}")
    return out


def _eval_pairs(out: ParsedSource, folder: Path, split: str, mapped: tuple[str, int] | None) -> None:
    ir = list_images(child_dir(folder, "Infrared") or folder / "Infrared", out.skipped)
    vi = list_images(child_dir(folder, "Visible") or folder / "Visible", out.skipped)
    extra = {}
    if mapped is not None:
        task, modality = mapped
        extra = {"vi_task": task if modality == VISIBLE else "pd", "ir_task": task if modality == INFRARED else "pd"}
    for stem, ir_path, vi_path in pair_by_stem(ir, vi, out.skipped, ("Infrared", "Visible")):
        out.add_fusion(split, FusionRecord(make_key("ems", split, stem), ir_path, vi_path, "ems",
                                           f"{folder.name}/{stem}", dict(extra)))
