"""Shard loaders for training and evaluation (layout: :mod:`data_prep.shards`).

URLs follow WebDataset conventions: a local path, ``http(s)://...`` (streamed with ``curl``) or
``pipe:<command writing the tar to stdout>`` (e.g. ``pipe:aws s3 cp s3://bucket/x.tar -``), so
a cluster can stream shards from object storage. :func:`shard_urls` lists a split's shards from its
``manifest.json`` (a folder, a manifest path or an ``http(s)`` manifest URL; shard URLs are
resolved relative to the manifest).

Training loaders yield batches of float32 tensors in [0, 1], shape ``(B, 3, crop, crop)`` for
BOTH modalities (infrared repeated to 3 channels; grey visible turned RGB), with the same random
crop and flips on the two images of a pair:

* :func:`stage1_loader` — ``{"lq", "hq", "modality" (LongTensor, 0 visible / 1 infrared), "task",
  "key"}``; an endless stream of randomly resampled shards mixed per task with ``task_weights``
  (``epoch_length`` batches per ``iter()``, endless when ``None``);
* :func:`fusion_loader` — ``{"ir", "vi", "key"}``; one shuffled pass over the shards per ``iter()``
  in a single process, an endless stream of shuffled passes when the shards are split (below).

With ``with_statistics`` both also carry ``<image>_stats``: the whole image's
:func:`~lure.models.global_correction.image_statistics` ``(B, 3, STATS_PER_CHANNEL)``, computed
before the crop (for a model with ``global_correction``).

Shards are split between the ``P = world_size * max(1, workers)`` *parts* of a training run
(part ``k = rank * max(1, workers) + w`` for loader worker ``w``), as WebDataset's
``split_by_node`` and ``split_by_worker`` would: each round over the shards is one permutation
drawn from ``(seed, epoch)`` (the same on every rank), of which part ``k`` reads ``[k::P]``, so the
parts read disjoint samples and each reads only its own shards. With fewer shards than parts each
shard is read as ``ceil(P / shards)`` interleaved sample slices (every part then reads whole shards
to keep its slice; a warning says to rebuild with ``data.min_shards >= P``).

A training stream's batches are a function of its seed, the epoch, ``world_size`` and ``workers``
(of the seed and the epoch alone when ``P == 1``); :meth:`ShardLoader.iterate` starts any epoch at
any batch, so a resumed training run with the same ``world_size`` and ``workers`` reads exactly
the batches the uninterrupted run would have read.

Evaluation iterators read full-size uint8 images in shard order, single process:
:func:`iter_fusion_pairs`, :func:`iter_stage1_samples`, :func:`iter_degraded_pairs`.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from lure.data.augment import apply_pair, paired_crop_flip, whole_view
from lure.image_io import chw_tensor, decode_image, float_to_uint8, to_grey, to_rgb
from lure.models.global_correction import array_statistics
from lure.text.vocabulary import INFRARED, VISIBLE

MANIFEST = "manifest.json"


# ----------------------------------------------------------------------------- URLs
def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://", "pipe:"))


def shard_urls(split_dir_or_manifest: str | Path, kind: str | None = None) -> list[str]:
    """The shard URLs a split's manifest lists (``kind``: ``"stage1"``, ``"fusion"`` or ``None`` = all).

    Accepts a split folder, a ``manifest.json`` path or an ``http(s)`` URL of either.
    """
    src = str(split_dir_or_manifest)
    if src.startswith(("http://", "https://")):
        url = src if src.endswith(".json") else src.rstrip("/") + "/" + MANIFEST
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310
            manifest = json.loads(response.read())
        base = url.rsplit("/", 1)[0] + "/"
        join = lambda name: urllib.parse.urljoin(base, name)  # noqa: E731
    else:
        path = Path(src)
        path = path if path.suffix == ".json" else path / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} at {path}; build the data set first (dvc repro build_data "
                                    "or python -m pipelines.stages.build_data)")
        manifest = json.loads(path.read_text())
        join = lambda name: str(path.parent.resolve() / name)  # noqa: E731
    kinds = ("stage1", "fusion") if kind is None else (kind,)
    return [join(e["name"]) for k in kinds for e in manifest.get(k, {}).get("shards", [])]


def _as_url_list(urls: list[str] | str | Path, kind: str | None = None) -> list[str]:
    """Expand ``urls``: a split folder or manifest becomes its ``kind`` shards; brace patterns expand."""
    if isinstance(urls, str | Path):
        text = str(urls)
        if text.endswith(".json") or (not _is_remote(text) and Path(text).is_dir()):
            return shard_urls(text, kind)
        return list(wds.shardlists.expand_urls(text))
    out: list[str] = []
    for u in urls:
        out.extend(_as_url_list(u, kind))
    return out


def _raw_samples(urls: list[str], handler=wds.reraise_exception) -> Iterable[dict]:
    """Undecoded samples of ``urls`` in order, in the calling process (no worker splitting)."""
    return wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None,
                          empty_check=False, handler=handler)


def iter_fusion_pairs(urls: list[str] | str | Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Full-size fusion pairs ``(key, ir uint8 HxW, vi uint8 HxWx3)`` in shard order."""
    for s in _raw_samples(_as_url_list(urls, "fusion")):
        if "ir.png" in s:
            yield s["__key__"], to_grey(decode_image(s["ir.png"])), to_rgb(decode_image(s["vi.png"]))


def iter_degraded_pairs(urls: list[str] | str | Path) -> Iterator[dict]:
    """Degraded evaluation pairs: ``{"key", "ir", "vi", "ir_clean", "vi_clean", "vi_task", "ir_task"}``
    (infrared uint8 ``HxW``, visible uint8 ``HxWx3``, full size)."""
    for s in _raw_samples(_as_url_list(urls, "fusion")):
        if "ir.png" not in s:
            continue
        meta = json.loads(s["json"])
        ir, vi = to_grey(decode_image(s["ir.png"])), to_rgb(decode_image(s["vi.png"]))
        yield {"key": s["__key__"], "ir": ir, "vi": vi,
               "ir_clean": to_grey(decode_image(s["ir_clean.png"])) if "ir_clean.png" in s else ir,
               "vi_clean": to_rgb(decode_image(s["vi_clean.png"])) if "vi_clean.png" in s else vi,
               "vi_task": meta.get("vi_task", "pd"), "ir_task": meta.get("ir_task", "pd")}


def iter_stage1_samples(urls: list[str] | str | Path, per_task: int | None = None,
                        tasks: Iterable[str] | None = None) -> Iterator[dict]:
    """Full-size stage-1 samples ``{"key", "task", "modality", "lq", "hq"}`` (uint8; visible
    ``HxWx3``, infrared ``HxW``) in shard order.

    ``per_task``: only the first ``per_task`` samples of each task (the others are skipped without
    decoding their images); with ``tasks`` too, the reading stops once each of those tasks has
    them (a bounded validation set need not read a whole split)."""
    counts: dict[str, int] = {}
    remaining = None if per_task is None or tasks is None else set(tasks)
    for s in _raw_samples(_as_url_list(urls, "stage1")):
        if "lq.png" not in s:
            continue
        meta = json.loads(s["json"])
        task = meta["task"]
        if per_task is not None:
            if counts.get(task, 0) >= per_task:
                continue
            counts[task] = counts.get(task, 0) + 1
        conv = to_rgb if meta["modality"] == VISIBLE else to_grey
        yield {"key": s["__key__"], "task": task, "modality": int(meta["modality"]),
               "lq": conv(decode_image(s["lq.png"])), "hq": conv(decode_image(s["hq.png"]))}
        if remaining is not None and counts[task] >= per_task:
            remaining.discard(task)
            if not remaining:
                return


# ----------------------------------------------------------------------------- training streams
def _worker_id() -> int:
    info = get_worker_info()
    return info.id if info is not None else 0


def _sample_seed(seed: int, epoch: int, position: int, part: int | None = None) -> int:
    """Seed of the crop and flips of the sample at ``position`` of an epoch (of part ``part`` when
    the shards are split: ``part + 1`` last, as NumPy's SeedSequence pads its entropy with zeros,
    so that a trailing 0 would repeat another sequence, e.g. the part's mixing generator's)."""
    entropy = [seed, epoch, position] if part is None else [seed, epoch, position, part + 1]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _read_units(urls: list[str], parts: int) -> list[tuple[str, int, int]]:
    """What a round over the shards distributes: ``(url, slice, slices)``, each shard cut into
    ``ceil(parts / len(urls))`` interleaved sample slices (one, the whole shard, when there are at
    least as many shards as parts)."""
    slices = max(1, math.ceil(parts / len(urls)))
    return [(url, j, slices) for url in urls for j in range(slices)]


class _PositionedStream(IterableDataset):
    """A training stream whose samples are a function of ``(seed, epoch, world_size, workers)``
    (of ``(seed, epoch)`` alone in a single process), wherever an iteration starts.

    The stream of the run is split into ``P = world_size * nw`` parts (``nw = max(1, workers)``
    logical workers per rank; part ``k = rank * nw + w``). Each round over the shards (see
    :func:`_read_units`) is a permutation drawn from ``(seed, epoch)``, of which part ``k`` reads
    the units ``[k::P]`` (:meth:`_part_samples`); subclasses mix a part's undecoded samples with
    :meth:`_order` (all randomness drawn from the generator it receives: ``(seed, epoch, k + 1)``,
    or the shard-order generator itself when ``P == 1``) and decode one with :meth:`_decode`.

    The rank's batch ``g`` is logical worker ``g % nw``'s local batch ``g // nw`` (local sample
    ``p`` belongs to local batch ``p // batch_size``): DataLoader worker ``i`` serves logical worker
    ``(start_batch + i) % nw`` from its local batch ``(start_batch + i) // nw``, skipping the
    samples before it undecoded, so the ``DataLoader``, which collects batches from its workers in
    turn, returns the batches in order from ``start_batch``. With ``P > 1`` every part's stream is
    endless, so that no worker runs out before the others. The crop and flips of local sample ``p``
    are seeded by ``(seed, epoch, p)``, or ``(seed, epoch, p, k + 1)`` when ``P > 1``.
    """

    second = "second"
    #: The member a sample of this stream has (others, e.g. another kind's, are skipped).
    member = ""
    #: Whether the stream is endless in a single process too (with ``P > 1`` it always is).
    endless = False

    def __init__(self, urls: list[str], crop: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.urls, self.crop, self.seed = urls, crop, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch, self.batch_size, self.workers = 0, 0, 1, 0

    def _order(self, samples: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        raise NotImplementedError

    def _decode(self, s: dict, transform, sample_seed: int) -> dict:
        raise NotImplementedError

    def _part_samples(self, shard_rng: np.random.Generator, part: int, parts: int,
                      endless: bool) -> Iterator[dict]:
        """Part ``part``'s undecoded samples, round after round (one round unless ``endless``)."""
        units = _read_units(self.urls, parts)
        empty: set[int] = set()
        while True:
            for u in shard_rng.permutation(len(units))[part::parts]:
                url, index, slices = units[u]
                found = False
                for i, s in enumerate(_raw_samples([url])):
                    if i % slices == index and self.member in s:
                        found = True
                        yield s
                if not found:
                    empty.add(int(u))
                    if len(empty) == len(units):
                        raise ValueError(f"no samples with {self.member} in the {len(self.urls)} shard(s) "
                                         f"{self.urls[:3]}")
            if not endless:
                return

    def __iter__(self) -> Iterator[dict]:
        nw = max(1, self.workers)
        local_batch, worker = divmod(self.start_batch + _worker_id(), nw)
        parts, part = self.world_size * nw, self.rank * nw + worker
        if parts == 1:  # one generator for shard order and mixing, as before the split
            shard_rng = mix_rng = np.random.default_rng([self.seed, self.epoch])
        else:
            shard_rng = np.random.default_rng([self.seed, self.epoch])  # the same in every part
            mix_rng = np.random.default_rng([self.seed, self.epoch, part + 1])  # see _sample_seed
        samples = self._part_samples(shard_rng, part, parts, endless=self.endless or parts > 1)
        transform = paired_crop_flip(self.crop, seed=0, second=self.second)
        first = local_batch * self.batch_size
        for position, s in enumerate(self._order(samples, mix_rng)):
            if position < first:
                continue
            sample_seed = _sample_seed(self.seed, self.epoch, position, part if parts > 1 else None)
            transform.set_random_seed(sample_seed)
            yield self._decode(s, transform, sample_seed)


class _Stage1Stream(_PositionedStream):
    """Endless, task-mixed stream of augmented stage-1 samples; a sample of a task in
    ``whole_view_tasks`` is, with probability ``whole_view`` (drawn from its seed), first
    area-downscaled to the crop size on its shorter side (:func:`~lure.data.augment.whole_view`)."""

    second, member, endless = "hq", "lq.png", True

    def __init__(self, urls: list[str], crop: int, task_weights: dict[str, float] | None, seed: int,
                 buffer_per_task: int = 32, max_scan: int = 4096, whole_view: float = 0.0,
                 whole_view_tasks: tuple[str, ...] = (), with_statistics: bool = False,
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__(urls, crop, seed, rank, world_size)
        self.with_statistics = with_statistics
        self.task_weights = dict(task_weights) if task_weights else None
        self.buffer_per_task, self.max_scan = buffer_per_task, max_scan
        self.whole_view, self.whole_view_tasks = whole_view, tuple(whole_view_tasks)

    def _order(self, stream: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        buffers: dict[str, list[dict]] = {}
        # sorted: the draws must not depend on the order the parameter file lists the tasks in
        weights = dict(sorted(self.task_weights.items())) if self.task_weights else None

        def pull() -> None:
            s = next(stream)
            task = json.loads(s["json"])["task"]
            buf = buffers.setdefault(task, [])
            if len(buf) < self.buffer_per_task:
                buf.append(s)
            else:
                buf[int(rng.integers(len(buf)))] = s

        while True:
            if weights is None:  # natural frequencies: a plain shuffle buffer
                pull()
                tasks = [t for t, b in buffers.items() if b]
                sizes = np.array([len(buffers[t]) for t in tasks], dtype=float)
                task = tasks[int(rng.choice(len(tasks), p=sizes / sizes.sum()))]
            else:
                names = [t for t, w in weights.items() if w > 0]
                if not names:
                    raise ValueError("stage1 task_weights: no task with a positive weight is present in the shards")
                p = np.array([weights[t] for t in names], dtype=float)
                task = names[int(rng.choice(len(names), p=p / p.sum()))]
                scanned = 0
                while not buffers.get(task):
                    pull()
                    scanned += 1
                    if scanned >= self.max_scan:
                        warnings.warn(f"stage1 loader: task {task!r} has a weight but no samples in the shards; "
                                      "it is ignored", stacklevel=2)
                        weights.pop(task)
                        break
                if not buffers.get(task):
                    continue
                pull()  # keep the buffers moving
            buf = buffers[task]
            yield buf.pop(int(rng.integers(len(buf))))

    def _decode(self, s: dict, transform, sample_seed: int) -> dict:
        # the crop and flips are seeded through ``transform`` ([seed], [seed, 1]), the view by [seed, 3]
        meta = json.loads(s["json"])
        lq, hq = decode_image(s["lq.png"]), decode_image(s["hq.png"])
        if int(meta["modality"]) == INFRARED:
            lq, hq = to_grey(lq), to_grey(hq)
        else:
            lq, hq = to_rgb(lq), to_rgb(hq)
        stats = {"lq_stats": array_statistics(lq), "hq_stats": array_statistics(hq)} if self.with_statistics else {}
        if (self.whole_view > 0 and meta["task"] in self.whole_view_tasks
                and np.random.default_rng([sample_seed, 3]).random() < self.whole_view):
            lq, hq = whole_view(lq, self.crop), whole_view(hq, self.crop)
        lq, hq = apply_pair(transform, lq, hq, "hq")
        return {"lq": chw_tensor(lq), "hq": chw_tensor(hq), "modality": int(meta["modality"]),
                "task": meta["task"], "key": s["__key__"], **stats}


class _FusionPass(_PositionedStream):
    """One shuffled pass over fusion shards (shard order and a shuffle buffer) with paired crops and
    flips; with ``P > 1`` parts an endless stream of such passes, each re-permuted.

    With ``degraded_fraction`` > 0 that fraction of the pairs (drawn per sample from its seed) is
    degraded after the crop by the seeded degradation library: a visible task from
    ``pd, ll, hz, oe`` and an infrared task from ``pd, lc, sr4, sr8``, not both ``pd``
    (:data:`DEGRADED_PAIR_TASKS`); such a sample also carries the clean crops. Its statistics
    (``with_statistics``) are the whole clean images'; the degraded inputs are degraded crops, whose
    statistics the model reads from the crops themselves.

    With ``gamma_jitter`` > 0 (ours) each source image, independently with that probability, is
    replaced by ``x ** g`` (x in [0, 1]) with ``log g`` uniform in ``log gamma_range``, before its
    statistics and the crop: the fusion then sees sources brighter and darker than the training
    cameras give (a dark infrared image beside a bright visible one, as in MSRS). The loss targets
    are the jittered sources."""

    second, member = "ir", "ir.png"

    def __init__(self, urls: list[str], crop: int, seed: int, shuffle_buffer: int = 64,
                 degraded_fraction: float = 0.0, with_statistics: bool | tuple[str, ...] = False,
                 gamma_jitter: float = 0.0, gamma_range: tuple[float, float] = (0.5, 2.0),
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__(urls, crop, seed, rank, world_size)
        self.statistics_of = _statistics_modalities(with_statistics)
        self.shuffle_buffer = shuffle_buffer
        if not 0.0 <= degraded_fraction <= 1.0:
            raise ValueError(f"degraded_fraction must be in [0, 1], got {degraded_fraction!r}")
        self.degraded_fraction = float(degraded_fraction)
        if not 0.0 <= gamma_jitter <= 1.0:
            raise ValueError(f"gamma_jitter must be in [0, 1], got {gamma_jitter!r}")
        low, high = (float(g) for g in gamma_range)
        if not 0.0 < low <= high:
            raise ValueError(f"gamma_range must be two exponents 0 < low <= high, got {gamma_range!r}")
        self.gamma_jitter, self.gamma_range = float(gamma_jitter), (low, high)

    def _order(self, samples: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        buf: list[dict] = []
        for s in samples:
            buf.append(s)
            if len(buf) >= self.shuffle_buffer:
                yield buf.pop(int(rng.integers(len(buf))))
        while buf:
            yield buf.pop(int(rng.integers(len(buf))))

    def _decode(self, s: dict, transform, sample_seed: int) -> dict:
        ir, vi = to_grey(decode_image(s["ir.png"])), to_rgb(decode_image(s["vi.png"]))
        if self.gamma_jitter > 0:
            ir, vi = _gamma_jittered((ir, vi), self.gamma_jitter, self.gamma_range, sample_seed)
        images = {"visible": ("vi_stats", vi), "infrared": ("ir_stats", ir)}
        stats = {key: array_statistics(image) for m, (key, image) in images.items() if m in self.statistics_of}
        vi, ir = apply_pair(transform, vi, ir, "ir")
        sample = {"ir": chw_tensor(ir), "vi": chw_tensor(vi), "key": s["__key__"], **stats}
        if self.degraded_fraction > 0:
            # the clean crops are the loss targets; "ir"/"vi" become the degraded inputs
            sample |= {"ir_clean": sample["ir"], "vi_clean": sample["vi"]}
            sample |= _degraded_sample(ir, vi, self.degraded_fraction, sample_seed)
        return sample


def _gamma_jittered(images: tuple[np.ndarray, ...], probability: float, gamma_range: tuple[float, float],
                    sample_seed: int) -> tuple[np.ndarray, ...]:
    """Each uint8 image, with ``probability``, mapped through ``255 (x / 255) ** g`` (a 256-entry
    table), ``log g`` uniform on ``log gamma_range``; drawn from ``[sample_seed, 4]``."""
    rng = np.random.default_rng([sample_seed, 4])  # [seed], [seed, 1..3] are the crop, flips, degradations, view
    out = []
    for image in images:
        jitter, log_g = rng.random() < probability, rng.uniform(*np.log(gamma_range))
        out.append(float_to_uint8(_UINT8_LEVELS ** np.exp(log_g))[image] if jitter else image)
    return tuple(out)


#: The 256 uint8 levels as floats in [0, 1] (the domain of :func:`_gamma_jittered`'s tables).
_UINT8_LEVELS = np.arange(256, dtype=np.float64) / 255.0


def _statistics_modalities(with_statistics: bool | tuple[str, ...]) -> tuple[str, ...]:
    """The modalities whose whole-image statistics a fusion sample carries."""
    if isinstance(with_statistics, bool):
        return ("visible", "infrared") if with_statistics else ()
    unknown = set(with_statistics) - {"visible", "infrared"}
    if unknown:
        raise ValueError(f"with_statistics names unknown modalities {sorted(unknown)}; use 'visible', 'infrared'")
    return tuple(with_statistics)


#: ``(visible task, infrared task)`` pairs a degraded stage-2 sample draws from (uniformly).
DEGRADED_PAIR_TASKS: tuple[tuple[str, str], ...] = tuple(
    (v, i) for v in ("pd", "ll", "hz", "oe") for i in ("pd", "lc", "sr4", "sr8") if (v, i) != ("pd", "pd"))


def _degraded_sample(ir: np.ndarray, vi: np.ndarray, fraction: float, sample_seed: int) -> dict:
    """The tasks as ``vi_task``/``ir_task`` (both ``pd``, with probability ``1 - fraction``) and,
    when degraded, the degraded crops as ``ir``/``vi`` tensors; ``ir``/``vi`` are the uint8 crops."""
    from data_prep.degradations import degrade_pair

    rng = np.random.default_rng([sample_seed, 2])  # the crop and flips use [seed] and [seed, 1]
    vi_task, ir_task = "pd", "pd"
    if rng.random() < fraction:
        vi_task, ir_task = DEGRADED_PAIR_TASKS[int(rng.integers(len(DEGRADED_PAIR_TASKS)))]
    out: dict = {"vi_task": vi_task, "ir_task": ir_task}
    if (vi_task, ir_task) != ("pd", "pd"):
        ir_lq, vi_lq = degrade_pair(ir, vi, vi_task, ir_task, int(rng.integers(2**31)))
        out |= {"ir": chw_tensor(ir_lq), "vi": chw_tensor(vi_lq)}
    return out


def drop_inherited_thread_exit_hooks(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: forget the thread-shutdown hooks a forked worker inherits.

    Those hooks belong to the parent's threads. Prefect 3.8 registers one per background service
    and, after a fork, resets the service so that the hook fails an assertion when the worker
    exits; the worker then ends with exit code 1 and PyTorch reports "DataLoader worker exited
    unexpectedly". This happens whenever a flow (e.g. ``build-datasets``) ran earlier in the same
    process. A worker starts no threads that need such hooks, so clearing them is safe.
    """
    hooks = getattr(threading, "_threading_atexits", None)
    if isinstance(hooks, list):
        hooks.clear()


class ShardLoader:
    """Iterable over batches of a training stream (one rank's); each ``iter()`` is the next epoch (from 1).

    :meth:`iterate` reads any epoch from any batch: the batches are a function of the stream's
    seed, the epoch, its ``world_size`` and ``workers`` (of the seed and the epoch alone with one
    process and at most one worker), not of where an iteration starts, which is what lets a
    training run resume exactly (with the same ``world_size`` and ``workers``).
    """

    def __init__(self, dataset: _PositionedStream, batch_size: int, workers: int, epoch_length: int | None,
                 pin_memory: bool = False) -> None:
        self.dataset, self.batch_size, self.workers, self.epoch_length = dataset, batch_size, workers, epoch_length
        self.pin_memory = pin_memory
        self._epoch = 0

    def __len__(self) -> int:
        if self.epoch_length is None:
            raise TypeError("this loader is endless (epoch_length=None)")
        return self.epoch_length

    def __iter__(self) -> Iterator[dict]:
        self._epoch += 1
        return self.iterate(self._epoch)

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[dict]:
        """The batches of ``epoch`` from batch ``start_batch`` on (``epoch_length`` counts from the
        epoch's first batch; without one, a split stream's epoch never ends)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch} and {start_batch}")
        dataset = copy.copy(self.dataset)  # the DataLoader's workers receive this state
        dataset.epoch, dataset.start_batch, dataset.batch_size = epoch, start_batch, self.batch_size
        dataset.workers = self.workers
        # a generator of its own, so creating the loader draws nothing from the global torch RNG
        generator = torch.Generator().manual_seed(_sample_seed(self.dataset.seed, epoch, 2**32 - 1))
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers,
                            persistent_workers=False, pin_memory=self.pin_memory, generator=generator,
                            worker_init_fn=drop_inherited_thread_exit_hooks if self.workers else None)
        remaining = None if self.epoch_length is None else self.epoch_length - start_batch
        if remaining is not None and remaining <= 0:
            return
        for i, batch in enumerate(loader):
            yield batch
            if remaining is not None and i + 1 >= remaining:
                break


def _check_common(urls: list[str], crop: int, batch_size: int, workers: int, rank: int, world_size: int) -> None:
    if not urls:
        raise ValueError("no shard URLs given (is the manifest's shard list empty?)")
    if crop < 8 or batch_size < 1 or workers < 0:
        raise ValueError(f"need crop >= 8, batch_size >= 1, workers >= 0; got {crop}, {batch_size}, {workers}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size); got rank={rank}, world_size={world_size}")
    parts = world_size * max(1, workers)
    if len(urls) < parts:
        warnings.warn(f"{len(urls)} shard(s) for {parts} loader parts (world_size x workers): every part reads "
                      f"whole shards to keep 1/{math.ceil(parts / len(urls))} of their samples; rebuild the data "
                      f"with data.min_shards >= {parts} for full read efficiency", stacklevel=3)


def stage1_loader(urls: list[str] | str, crop: int, batch_size: int, workers: int, task_weights: dict[str, float] | None,
                  seed: int, epoch_length: int | None = None, whole_view: float = 0.0,
                  whole_view_tasks: tuple[str, ...] = (), with_statistics: bool = False,
                  rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> ShardLoader:
    """Batches of stage-1 triplets ``{"lq", "hq": (B,3,crop,crop) float32 [0,1], "modality": LongTensor (B,),
    "task": list[str], "key": list[str]}`` for process ``rank`` of ``world_size``.

    Shards are resampled endlessly (the order drawn from ``seed`` and the epoch, ``seed`` the same
    on every rank), split between the ranks and their workers (see :class:`_PositionedStream`);
    tasks are drawn with probabilities proportional to ``task_weights`` (``{task_id: weight}``,
    ``None`` = the data's own frequencies). ``epoch_length`` batches per ``iter()``; ``None`` =
    endless. The batches depend on ``world_size`` and ``workers`` unless both are at most 1 (see
    :class:`ShardLoader`). ``whole_view``: the probability that a sample of a task in
    ``whole_view_tasks`` shows its whole image downscaled to ``crop`` on the shorter side (0: plain
    crops; the draw does not move the crops of other samples). ``with_statistics``: add
    ``lq_stats``/``hq_stats``, the whole images' statistics. ``pin_memory``: the DataLoader's.
    """
    urls = _as_url_list(urls, "stage1")
    _check_common(urls, crop, batch_size, workers, rank, world_size)
    if not 0.0 <= whole_view <= 1.0:
        raise ValueError(f"whole_view must be a probability in [0, 1], got {whole_view}")
    stream = _Stage1Stream(urls, crop, task_weights, seed, whole_view=whole_view, whole_view_tasks=whole_view_tasks,
                           with_statistics=with_statistics, rank=rank, world_size=world_size)
    return ShardLoader(stream, batch_size, workers, epoch_length, pin_memory)


def fusion_loader(urls: list[str] | str, crop: int, batch_size: int, workers: int, seed: int,
                  degraded_fraction: float = 0.0, with_statistics: bool | tuple[str, ...] = False,
                  gamma_jitter: float = 0.0, gamma_range: tuple[float, float] = (0.5, 2.0),
                  rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> ShardLoader:
    """Batches of fusion pairs ``{"ir", "vi": (B,3,crop,crop) float32 [0,1], "key": list[str]}`` for
    process ``rank`` of ``world_size`` (``seed`` the same on every rank).

    With one process and at most one worker each ``iter()`` is one pass over the data (shard order
    and a 64-sample buffer shuffled per epoch); every batch holds ``batch_size`` pairs but the
    epoch's last. Otherwise (``world_size * max(1, workers) > 1``) the shards are split between the
    ranks and their workers and each ``iter()`` is endless: successive passes, each over the shards
    in a new order; the batches then depend on ``world_size`` and ``workers``.

    ``degraded_fraction`` > 0 (degradation-aware stage 2, ours): that fraction of the pairs is
    degraded (``ir``/``vi``), and every batch also holds the clean crops ``ir_clean``/``vi_clean``
    and the tasks ``vi_task``/``ir_task`` (lists of task ids, ``pd`` for a clean image).
    ``with_statistics``: add ``vi_stats``/``ir_stats``, the whole clean images' statistics (``True``:
    of both; a tuple of modality names, e.g. ``("infrared",)``: of those images only).
    ``gamma_jitter``/``gamma_range`` (ours): each source image, with that probability, raised to a
    random power in the range before its statistics and crop (0: the images as stored).
    ``pin_memory``: the DataLoader's."""
    urls = _as_url_list(urls, "fusion")
    _check_common(urls, crop, batch_size, workers, rank, world_size)
    stream = _FusionPass(urls, crop, seed, degraded_fraction=degraded_fraction, with_statistics=with_statistics,
                         gamma_jitter=gamma_jitter, gamma_range=gamma_range, rank=rank, world_size=world_size)
    return ShardLoader(stream, batch_size, workers, None, pin_memory)


def estimate_steps(n_samples: int, batch_size: int) -> int:
    """Batches in one pass over ``n_samples`` (the last partial batch counts)."""
    return math.ceil(n_samples / batch_size)
