"""Records every source parser returns, and the helpers parsers share.

A parser turns a dataset root (in its published layout) into a :class:`ParsedSource`:
stage-1 restoration triplets (:class:`Stage1Record`: degraded ``lq``, clean ``hq``, task,
modality) and fusion pairs (:class:`FusionRecord`: infrared ``ir``, visible ``vi``), grouped
by split. Images are referenced lazily (:data:`ImageRef`: a path, an array or a function
returning an array) and loaded by :func:`load_image`: visible as ``HxWx3`` RGB uint8,
infrared as ``HxW`` uint8.

Awkward cases of real archives are handled here once: stray files (``Thumbs.db``,
``.DS_Store``, ``._*`` resource forks, text files) are ignored, extensions are matched
case-insensitively, and a missing partner image is reported in ``ParsedSource.skipped``
and counted, never an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lure import image_io
from lure.fileio import sha256_file
from lure.image_io import list_images, read_uint8, to_layout
from lure.text.vocabulary import INFRARED, VISIBLE, check_task

ImageRef = Path | np.ndarray | Callable[[], np.ndarray]


@dataclass
class Stage1Record:
    """One restoration triplet: degraded ``lq`` and clean ``hq`` of one modality, and the task."""

    key: str
    task: str
    modality: int
    lq: ImageRef
    hq: ImageRef
    source: str
    name: str

    def __post_init__(self) -> None:
        check_task(self.task, self.modality)


@dataclass
class FusionRecord:
    """One aligned fusion pair. ``extra`` holds optional images (``ir_clean``, ``vi_clean``) and
    json fields (``vi_task``, ``ir_task``) of degraded evaluation sets."""

    key: str
    ir: ImageRef
    vi: ImageRef
    source: str
    name: str
    extra: dict = field(default_factory=dict)


@dataclass
class ParsedSource:
    """What a parser found: records per split, the problems it skipped, and a fingerprint of its inputs."""

    stage1: dict[str, list[Stage1Record]] = field(default_factory=dict)
    fusion: dict[str, list[FusionRecord]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    fingerprint: str = ""
    version: str = ""

    def splits(self) -> list[str]:
        return sorted(set(self.stage1) | set(self.fusion))

    def add_stage1(self, split: str, record: Stage1Record) -> None:
        self.stage1.setdefault(split, []).append(record)

    def add_fusion(self, split: str, record: FusionRecord) -> None:
        self.fusion.setdefault(split, []).append(record)


class SourceLayoutError(ValueError):
    """The dataset root does not have the published layout."""


def pair_by_stem(
    first: dict[str, Path], second: dict[str, Path], skipped: list[str], what: tuple[str, str]
) -> list[tuple[str, Path, Path]]:
    """Pairs ``(stem, first_path, second_path)`` with equal stems; partners missing on either side
    are reported in ``skipped`` (``what`` names the two sides)."""
    pairs, first_only, second_only = image_io.pair_by_stem(first, second)
    skipped += [f"{path}: no {what[1]} partner, skipped" for path in first_only]
    skipped += [f"{path}: no {what[0]} partner, skipped" for path in second_only]
    return pairs


def add_fusion_pairs(
    out: ParsedSource,
    split: str,
    ir_dir: Path,
    vi_dir: Path,
    source: str,
    key_prefix: tuple[str, ...],
    labels: tuple[str, str] = ("ir", "vi"),
    name_prefix: str = "",
    extra: Callable[[str], dict] | None = None,
) -> None:
    """Add to ``out`` one fusion record per infrared/visible pair with equal file stems in
    ``ir_dir`` and ``vi_dir`` (unpaired and stray files go to ``out.skipped``). Keys are
    ``make_key(*key_prefix, stem)``, original names ``name_prefix + <infrared file name>``;
    ``extra(stem)`` gives a record's extra fields; ``labels`` name the folders in messages."""
    ir, vi = list_images(ir_dir, out.skipped), list_images(vi_dir, out.skipped)
    for stem, ir_path, vi_path in pair_by_stem(ir, vi, out.skipped, labels):
        out.add_fusion(split, FusionRecord(make_key(*key_prefix, stem), ir_path, vi_path, source,
                                           f"{name_prefix}{ir_path.name}", extra(stem) if extra else {}))


def find_dir(root: Path, *names: str, depth: int = 3) -> Path | None:
    """The first directory under ``root`` (itself included, breadth-first, ``depth`` levels) that
    contains all ``names`` (case-insensitive) — archives often add a top-level folder."""
    level = [root]
    for _ in range(depth + 1):
        nxt = []
        for folder in level:
            if all(child_dir(folder, n) is not None for n in names):
                return folder
            try:
                nxt.extend(sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                continue
        level = nxt
    return None


def child_dir(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively, or ``None``."""
    exact = folder / name
    if exact.is_dir():
        return exact
    if not folder.is_dir():
        return None
    low = name.lower()
    for child in folder.iterdir():
        if child.is_dir() and child.name.lower() == low:
            return child
    return None


def require_dir(root: Path, *names: str, dataset: str, layout: str) -> Path:
    """Like :func:`find_dir` but raises :class:`SourceLayoutError` naming the expected layout."""
    root = Path(root)
    if not root.exists():
        raise SourceLayoutError(f"{dataset}: root {root} does not exist; expected layout: {layout}")
    found = find_dir(root, *names)
    if found is None:
        raise SourceLayoutError(f"{dataset}: no {'/'.join(names)} folder found under {root}; expected layout: {layout}")
    return found


_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def make_key(*parts: str) -> str:
    """A WebDataset-safe sample key (letters, digits, ``_``, ``-``; no dots) from ``parts``."""
    return "_".join(_KEY_BAD.sub("-", str(p)).strip("-") for p in parts if str(p) != "")


_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()


def file_digest(path: Path) -> str:
    """sha256 of the bytes of ``path``. Cached for the process per (path, size, mtime, ctime, inode):
    the value is always the content hash, the cache only saves re-reading an unchanged file."""
    st = Path(path).stat()
    key = (str(Path(path).absolute()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    with _DIGESTS_LOCK:
        cached = _DIGESTS.get(key)
    if cached is None:
        cached = sha256_file(path)
        with _DIGESTS_LOCK:
            _DIGESTS[key] = cached
    return cached


def files_fingerprint(paths: Iterable[Path], extra: str = "") -> str:
    """sha256 over the content of ``paths`` plus ``extra``: changes when any input's bytes or name change.

    Location-independent: each file enters as (name relative to the deepest folder holding all of
    them, sha256 of its bytes); absolute paths, sizes and mtimes do not enter, so the same files
    copied anywhere (with new mtimes) give the same fingerprint.
    """
    files = sorted({Path(x).absolute() for x in paths})
    h = hashlib.sha256(f"files-v2\0{extra}\n".encode())
    if not files:
        return h.hexdigest()
    base = Path(os.path.commonpath([str(p.parent) for p in files]))
    entries = sorted((p.relative_to(base).as_posix(), file_digest(p)) for p in files)
    for name, digest in entries:
        h.update(f"{name}\0{digest}\n".encode())
    return h.hexdigest()


def portable_messages(messages: Iterable[str], roots: Iterable[str | Path | None]) -> list[str]:
    """``messages`` (e.g. ``ParsedSource.skipped``) with each root folder's absolute path replaced by
    the folder's name (``/data/roadscene/ir/a.png`` -> ``roadscene/ir/a.png``), so manifests record
    no location. Relative paths in messages are left as they are."""
    prefixes: dict[str, str] = {}
    for root in roots:
        if root is None or str(root) == "":
            continue
        root = Path(root).expanduser()
        name = root.absolute().name
        for form in {str(root.absolute()), str(root.resolve())}:
            if name and form != os.sep:
                prefixes[form.rstrip(os.sep)] = name
    ordered = sorted(prefixes.items(), key=lambda kv: -len(kv[0]))
    out = []
    for message in messages:
        for prefix, name in ordered:
            message = message.replace(prefix + os.sep, name + "/").replace(prefix, name)
        out.append(message)
    return out


def record_paths(parsed: ParsedSource) -> list[Path]:
    """Every file path referenced by ``parsed`` (for :func:`files_fingerprint`)."""
    out: set[Path] = set()
    for records in parsed.stage1.values():
        for r in records:
            out.update(x for x in (r.lq, r.hq) if isinstance(x, Path))
    for records in parsed.fusion.values():
        for r in records:
            out.update(x for x in (r.ir, r.vi, *r.extra.values()) if isinstance(x, Path))
    return sorted(out)


def load_image(ref: ImageRef, modality: int) -> np.ndarray:
    """Load ``ref`` as uint8: visible -> ``HxWx3`` RGB (grey turned RGB), infrared -> ``HxW``
    (RGB/3-channel grey turned grey). 16-bit images are scaled to 8 bits
    (:func:`lure.image_io.read_uint8`)."""
    if isinstance(ref, np.ndarray):
        arr = ref
    elif callable(ref) and not isinstance(ref, Path):
        arr = ref()
    else:
        arr = read_uint8(ref, grey=_grey(modality))
    return as_modality(arr, modality)


def as_modality(arr: np.ndarray, modality: int) -> np.ndarray:
    """Convert a uint8 array to the modality's convention (RGB HxWx3 for visible, HxW for infrared)."""
    return to_layout(arr, grey=_grey(modality))


def _grey(modality: int) -> bool:
    if modality not in (VISIBLE, INFRARED):
        raise ValueError(f"modality must be 0 (visible) or 1 (infrared), got {modality!r}")
    return modality == INFRARED
