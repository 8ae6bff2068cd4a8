"""Clean and degraded pair sets of the evaluation stage.

A clean pair set is named ``<dataset>/<split>`` (the fusion shards under
``<data_root>/shards/<dataset>/<split>``) or ``folder:<path>`` (``ir/`` and ``vi/`` sub-folders
matched by file stem; relative paths resolve against the repository root). Pairs are
``(key, infrared uint8 HxW, visible uint8 HxWx3)``.

A degraded set of task ``t`` (e.g. ``ll``, ``oe+lc``) is read from
``<data_root>/shards/<dataset>-degraded/<t>`` when built, otherwise made on the fly from the
clean pairs with the seed rule of the shards (:func:`data_prep.seeding.sample_seed`), so both
give the same images. Nothing here imports the dataset parsers (:mod:`data_prep.sources`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lure.image_io import list_images, mean_grey, pair_by_stem, read_image, reduce_to_8bit, to_rgb
from lure.paths import REPO_ROOT, display_path
from lure.text.vocabulary import DEGRADED_EVAL_TASKS

__all__ = ["PairSet", "PairSets", "degraded_samples", "load_pair_set", "resolve_path", "slug"]

Pair = tuple[str, np.ndarray, np.ndarray]


def slug(name: str) -> str:
    """File-name form of a set or task name: ``demo/test`` -> ``demo-test``, ``oe+lc`` -> ``oe_lc``,
    ``folder:../shared/data/roadscene`` -> ``roadscene``."""
    if name.startswith("folder:"):
        name = Path(name[len("folder:") :]).name or "folder"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name.replace("+", "_").replace("/", "-")).strip("-")


def resolve_path(path: str | Path, base: Path = REPO_ROOT) -> Path:
    """``path`` with ``~`` expanded; a relative path is taken relative to ``base``."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


@dataclass
class PairSet:
    """A clean pair set: its spec, file-name slug and pairs ``(key, ir uint8 HxW, vi uint8 HxWx3)``."""

    spec: str
    slug: str
    pairs: list[Pair]


def _folder_pairs(folder: Path, limit: int) -> Iterator[Pair]:
    """The registered pairs of ``folder/{ir,vi}`` by stem as uint8 (infrared ``HxW``: channels
    averaged, visible ``HxWx3``); pairs of different sizes are left out."""
    for side in ("ir", "vi"):
        if not (folder / side).is_dir():
            raise FileNotFoundError(f"pair set folder {folder / side} does not exist")
    pairs, _, _ = pair_by_stem(list_images(folder / "ir"), list_images(folder / "vi"))
    for stem, ir_path, vi_path in pairs[: limit or None]:
        ir = reduce_to_8bit(mean_grey(read_image(ir_path, "infrared")))
        vi = np.ascontiguousarray(to_rgb(reduce_to_8bit(read_image(vi_path, "visible")))[:, :, :3])
        if ir.shape[:2] != vi.shape[:2]:
            continue
        yield stem, ir, vi


def load_pair_set(spec: str, data_root: str | Path = "data", max_pairs: int = 0) -> PairSet | None:
    """The first ``max_pairs`` pairs (0 = all) of ``spec`` (``<dataset>/<split>`` or
    ``folder:<path>``), or ``None`` when the set is absent."""
    if spec.startswith("folder:"):
        folder = resolve_path(spec[len("folder:") :])
        if not (folder / "ir").is_dir() or not (folder / "vi").is_dir():
            return None
        return PairSet(spec, slug(spec), list(_folder_pairs(folder, max_pairs)))
    split_dir = Path(data_root) / "shards" / spec
    if not (split_dir / "manifest.json").is_file():
        return None
    from lure.data.loaders import iter_fusion_pairs, shard_urls

    urls = shard_urls(split_dir, kind="fusion")
    pairs = list(itertools.islice(iter_fusion_pairs(urls), max_pairs or None)) if urls else []
    return PairSet(spec, slug(spec), pairs)


@dataclass
class PairSets:
    """Pair sets loaded once each (first ``max_pairs`` pairs) from ``data_root``; a set that is
    absent or empty adds a note to ``notes`` the first time it is asked for."""

    data_root: Path
    max_pairs: int
    notes: list[str]
    _loaded: dict[str, PairSet | None] = field(default_factory=dict)

    def get(self, spec: str) -> PairSet | None:
        """The set ``spec`` when it has pairs, else ``None``."""
        if spec not in self._loaded:
            pair_set = load_pair_set(spec, self.data_root, self.max_pairs)
            if pair_set is None:
                self.notes.append(f"pair set {spec}: not found (build it first); skipped")
            elif not pair_set.pairs:
                self.notes.append(f"pair set {spec}: no pairs; skipped")
            self._loaded[spec] = pair_set
        pair_set = self._loaded[spec]
        return pair_set if pair_set is not None and pair_set.pairs else None


def degraded_samples(
    pair_set: PairSet, task: str, data_root: str | Path, seed: int, max_pairs: int = 0
) -> tuple[list[dict], str]:
    """The first ``max_pairs`` (0 = all) degraded pairs of ``task`` — dicts with ``key, ir, vi,
    ir_clean, vi_clean, vi_task, ir_task`` (uint8) — and where they came from (``"shards <dir>"``
    or ``"built on the fly from <set> (seed <seed>)"``)."""
    if not pair_set.spec.startswith("folder:"):
        dataset = pair_set.spec.split("/")[0]
        split_dir = Path(data_root) / "shards" / f"{dataset}-degraded" / task
        if (split_dir / "manifest.json").is_file():
            from lure.data.loaders import iter_degraded_pairs, shard_urls

            samples = list(
                itertools.islice(iter_degraded_pairs(shard_urls(split_dir, kind="fusion")), max_pairs or None)
            )
            return samples, f"shards {display_path(split_dir)}"
    from data_prep.degradations import degrade_pair
    from data_prep.seeding import sample_seed

    vi_task, ir_task = DEGRADED_EVAL_TASKS[task]
    samples = []
    for key, ir, vi in pair_set.pairs[: max_pairs or None]:
        ir_d, vi_d = degrade_pair(ir, vi, vi_task, ir_task, sample_seed(seed, key, task))
        samples.append(
            {
                "key": key,
                "ir": ir_d,
                "vi": vi_d,
                "ir_clean": ir,
                "vi_clean": vi,
                "vi_task": vi_task,
                "ir_task": ir_task,
            }
        )
    return samples, f"built on the fly from {pair_set.spec} (seed {seed})"
