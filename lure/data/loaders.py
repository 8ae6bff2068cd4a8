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
* :func:`fusion_loader` — ``{"ir", "vi", "key"}``; one shuffled pass over the shards per ``iter()``.

With ``with_statistics`` both also carry ``<image>_stats``: the whole image's
:func:`~lure.models.global_correction.image_statistics` ``(B, 3, STATS_PER_CHANNEL)``, computed
before the crop (for a model with ``global_correction``).

A training stream's batches are a function of its seed and the epoch only (not of the number of
worker processes); :meth:`ShardLoader.iterate` starts any epoch at any batch, so a resumed
training run reads exactly the batches the uninterrupted run would have read.

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


def iter_stage1_samples(urls: list[str] | str | Path) -> Iterator[dict]:
    """Full-size stage-1 samples ``{"key", "task", "modality", "lq", "hq"}`` (uint8; visible
    ``HxWx3``, infrared ``HxW``) in shard order."""
    for s in _raw_samples(_as_url_list(urls, "stage1")):
        if "lq.png" not in s:
            continue
        meta = json.loads(s["json"])
        conv = to_rgb if meta["modality"] == VISIBLE else to_grey
        yield {"key": s["__key__"], "task": meta["task"], "modality": int(meta["modality"]),
               "lq": conv(decode_image(s["lq.png"])), "hq": conv(decode_image(s["hq.png"]))}


# ----------------------------------------------------------------------------- training streams
def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def _sample_seed(seed: int, epoch: int, position: int) -> int:
    """Seed of the crop and flips of the sample at ``position`` of an epoch."""
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class _PositionedStream(IterableDataset):
    """A training stream whose samples are a function of ``(seed, epoch)`` alone, whatever the
    workers and wherever an iteration starts.

    Subclasses yield undecoded samples in the epoch's order from :meth:`_order` (all randomness
    drawn from the generator it receives) and decode one with :meth:`_decode`. Sample ``p`` belongs
    to batch ``p // batch_size``; with ``n`` workers, worker ``w`` decodes the batches
    ``start_batch + w``, ``start_batch + w + n``, ... and skips every other sample undecoded (each
    worker reads the whole order), so the ``DataLoader``, which collects batches from the workers in
    turn, returns the epoch's batches in order from ``start_batch``. The crop and flips of sample
    ``p`` are seeded by ``(seed, epoch, p)``.
    """

    second = "second"

    def __init__(self, urls: list[str], crop: int, seed: int) -> None:
        self.urls, self.crop, self.seed = urls, crop, seed
        self.epoch, self.start_batch, self.batch_size = 0, 0, 1

    def _order(self, rng: np.random.Generator) -> Iterator[dict]:
        raise NotImplementedError

    def _decode(self, s: dict, transform, sample_seed: int) -> dict:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict]:
        wid, nw = _worker()
        transform = paired_crop_flip(self.crop, seed=0, second=self.second)
        first = self.start_batch * self.batch_size
        for position, s in enumerate(self._order(np.random.default_rng([self.seed, self.epoch]))):
            if position < first or (position // self.batch_size - self.start_batch) % nw != wid:
                continue
            sample_seed = _sample_seed(self.seed, self.epoch, position)
            transform.set_random_seed(sample_seed)
            yield self._decode(s, transform, sample_seed)


class _Stage1Stream(_PositionedStream):
    """Endless, task-mixed stream of augmented stage-1 samples; a sample of a task in
    ``whole_view_tasks`` is, with probability ``whole_view`` (drawn from its seed), first
    area-downscaled to the crop size on its shorter side (:func:`~lure.data.augment.whole_view`)."""

    second = "hq"

    def __init__(self, urls: list[str], crop: int, task_weights: dict[str, float] | None, seed: int,
                 buffer_per_task: int = 32, max_scan: int = 4096, whole_view: float = 0.0,
                 whole_view_tasks: tuple[str, ...] = (), with_statistics: bool = False) -> None:
        super().__init__(urls, crop, seed)
        self.with_statistics = with_statistics
        self.task_weights = dict(task_weights) if task_weights else None
        self.buffer_per_task, self.max_scan = buffer_per_task, max_scan
        self.whole_view, self.whole_view_tasks = whole_view, tuple(whole_view_tasks)

    def _raw_stream(self, rng: np.random.Generator) -> Iterator[dict]:
        while True:  # resample shards with replacement, forever
            order = rng.permutation(len(self.urls))
            for i in order:
                yielded = False
                for s in _raw_samples([self.urls[i]]):
                    if "lq.png" in s:
                        yielded = True
                        yield s
                if not yielded and len(self.urls) == 1:
                    raise ValueError(f"no stage-1 samples (lq.png) in {self.urls[0]}")

    def _order(self, rng: np.random.Generator) -> Iterator[dict]:
        stream = self._raw_stream(rng)
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
    """One shuffled pass over fusion shards (shard order and a shuffle buffer) with paired crops and flips.

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

    second = "ir"

    def __init__(self, urls: list[str], crop: int, seed: int, shuffle_buffer: int = 64,
                 degraded_fraction: float = 0.0, with_statistics: bool | tuple[str, ...] = False,
                 gamma_jitter: float = 0.0, gamma_range: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__(urls, crop, seed)
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

    def _order(self, rng: np.random.Generator) -> Iterator[dict]:
        order = [self.urls[i] for i in rng.permutation(len(self.urls))]
        buf: list[dict] = []
        for s in _raw_samples(order):
            if "ir.png" not in s:
                continue
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
    """Iterable over batches of a training stream; each ``iter()`` is the next epoch (from 1).

    :meth:`iterate` reads any epoch from any batch: the batches are a function of the stream's
    seed and the epoch alone (not of ``workers``, nor of where an iteration starts), which is what
    lets a training run resume exactly.
    """

    def __init__(self, dataset: _PositionedStream, batch_size: int, workers: int, epoch_length: int | None) -> None:
        self.dataset, self.batch_size, self.workers, self.epoch_length = dataset, batch_size, workers, epoch_length
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
        epoch's first batch)."""
        if epoch < 0 or start_batch < 0:
            raise ValueError(f"epoch and start_batch must be >= 0, got {epoch} and {start_batch}")
        dataset = copy.copy(self.dataset)  # the DataLoader's workers receive this state
        dataset.epoch, dataset.start_batch, dataset.batch_size = epoch, start_batch, self.batch_size
        # a generator of its own, so creating the loader draws nothing from the global torch RNG
        generator = torch.Generator().manual_seed(_sample_seed(self.dataset.seed, epoch, 2**32 - 1))
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers,
                            persistent_workers=False, pin_memory=False, generator=generator,
                            worker_init_fn=drop_inherited_thread_exit_hooks if self.workers else None)
        remaining = None if self.epoch_length is None else self.epoch_length - start_batch
        if remaining is not None and remaining <= 0:
            return
        for i, batch in enumerate(loader):
            yield batch
            if remaining is not None and i + 1 >= remaining:
                break


def _check_common(urls: list[str], crop: int, batch_size: int, workers: int) -> None:
    if not urls:
        raise ValueError("no shard URLs given (is the manifest's shard list empty?)")
    if crop < 8 or batch_size < 1 or workers < 0:
        raise ValueError(f"need crop >= 8, batch_size >= 1, workers >= 0; got {crop}, {batch_size}, {workers}")


def stage1_loader(urls: list[str] | str, crop: int, batch_size: int, workers: int, task_weights: dict[str, float] | None,
                  seed: int, epoch_length: int | None = None, whole_view: float = 0.0,
                  whole_view_tasks: tuple[str, ...] = (), with_statistics: bool = False) -> Iterable[dict]:
    """Batches of stage-1 triplets ``{"lq", "hq": (B,3,crop,crop) float32 [0,1], "modality": LongTensor (B,),
    "task": list[str], "key": list[str]}``.

    Shards are resampled endlessly (the order drawn from ``seed`` and the epoch); tasks are drawn
    with probabilities proportional to ``task_weights`` (``{task_id: weight}``, ``None`` = the
    data's own frequencies). ``epoch_length`` batches per ``iter()``; ``None`` = endless. The
    batches do not depend on ``workers`` (see :class:`ShardLoader`). ``whole_view``: the probability
    that a sample of a task in ``whole_view_tasks`` shows its whole image downscaled to ``crop``
    on the shorter side (0: plain crops; the draw does not move the crops of other samples).
    ``with_statistics``: add ``lq_stats``/``hq_stats``, the whole images' statistics.
    """
    urls = _as_url_list(urls, "stage1")
    _check_common(urls, crop, batch_size, workers)
    if not 0.0 <= whole_view <= 1.0:
        raise ValueError(f"whole_view must be a probability in [0, 1], got {whole_view}")
    stream = _Stage1Stream(urls, crop, task_weights, seed, whole_view=whole_view, whole_view_tasks=whole_view_tasks,
                           with_statistics=with_statistics)
    return ShardLoader(stream, batch_size, workers, epoch_length)


def fusion_loader(urls: list[str] | str, crop: int, batch_size: int, workers: int, seed: int,
                  degraded_fraction: float = 0.0, with_statistics: bool | tuple[str, ...] = False,
                  gamma_jitter: float = 0.0, gamma_range: tuple[float, float] = (0.5, 2.0)) -> Iterable[dict]:
    """Batches of fusion pairs ``{"ir", "vi": (B,3,crop,crop) float32 [0,1], "key": list[str]}``; each
    ``iter()`` is one pass over the data (shard order and a 64-sample buffer shuffled per epoch).
    Every batch holds ``batch_size`` pairs but the epoch's last; the batches do not depend on ``workers``.

    ``degraded_fraction`` > 0 (degradation-aware stage 2, ours): that fraction of the pairs is
    degraded (``ir``/``vi``), and every batch also holds the clean crops ``ir_clean``/``vi_clean``
    and the tasks ``vi_task``/``ir_task`` (lists of task ids, ``pd`` for a clean image).
    ``with_statistics``: add ``vi_stats``/``ir_stats``, the whole clean images' statistics (``True``:
    of both; a tuple of modality names, e.g. ``("infrared",)``: of those images only).
    ``gamma_jitter``/``gamma_range`` (ours): each source image, with that probability, raised to a
    random power in the range before its statistics and crop (0: the images as stored)."""
    urls = _as_url_list(urls, "fusion")
    _check_common(urls, crop, batch_size, workers)
    stream = _FusionPass(urls, crop, seed, degraded_fraction=degraded_fraction, with_statistics=with_statistics,
                         gamma_jitter=gamma_jitter, gamma_range=gamma_range)
    return ShardLoader(stream, batch_size, workers, None)


def estimate_steps(n_samples: int, batch_size: int) -> int:
    """Batches in one pass over ``n_samples`` (the last partial batch counts)."""
    return math.ceil(n_samples / batch_size)
