"""WebDataset shard writing: atomic tars, one manifest per split, skip when inputs are unchanged.

Output layout (training and evaluation rely on it)::

    data/shards/<dataset>/<split>/stage1-%06d.tar   stage-1 triplets
    data/shards/<dataset>/<split>/fusion-%06d.tar   fusion pairs
    data/shards/<dataset>/<split>/manifest.json     counts, per-task counts, sha256 per shard,
                                                    source versions and content fingerprint,
                                                    generation parameters (no paths, no times)
    data/shards/<dataset>-degraded/<task>/fusion-%06d.tar + manifest.json
                                                    degraded evaluation sets (task in ll, hz, oe,
                                                    lc, sr4, sr8, oe+lc, ll+lc)

Sample members (one sample per key; keys hold only ``[A-Za-z0-9_-]``):

* stage 1: ``lq.png``, ``hq.png`` (RGB for visible, single-channel for infrared; ``lq`` has
  ``hq``'s size), ``json`` = ``{"task", "modality" (0 visible / 1 infrared), "modality_name",
  "source", "name" (original file), "key"}``;
* fusion: ``ir.png`` (single channel), ``vi.png`` (RGB, same size), ``json`` =
  ``{"source", "name", "key", ...}``; degraded sets add ``ir_clean.png``, ``vi_clean.png`` and json
  fields ``vi_task``, ``ir_task``.

Atomicity: each tar is written to ``<name>.tar.tmp`` in the same folder, fsynced, then renamed;
the manifest (listing every shard with its sha256) is written last, the same way. A killed run
leaves at most ``*.tmp`` files (removed by the next run) or complete shards without a manifest
(never read: loaders list shards from the manifest). Tars are byte-deterministic (fixed mtime,
owner and member order), so the same inputs give the same sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep.sources.base import FusionRecord, Stage1Record, as_modality, load_image
from lure import image_io
from lure.fileio import atomic_open, atomic_write_bytes, sha256_file
from lure.text.vocabulary import INFRARED, MODALITY_NAMES, VISIBLE

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("stage1", "fusion")
PNG_COMPRESS_LEVEL = 1


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``HxW`` (grey) or ``HxWx3`` (RGB) array at the shards' compression level."""
    return image_io.encode_png(image, PNG_COMPRESS_LEVEL)


def _resize_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(shape):
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BICUBIC))


@dataclass(frozen=True)
class PatchSpec:
    """Pre-cut patches: each image (pair, triplet) is stored as ``per_image`` aligned ``size x size``
    windows instead of whole, at seeded random positions. Training crops (e.g. 128 px) are then cut
    from a 256 px patch, so a loader worker decodes a patch instead of a 1280x1024 image."""

    size: int
    per_image: int

    @classmethod
    def from_config(cls, value: dict | None) -> PatchSpec | None:
        """``{size, per_image}`` of a data set's ``patches`` entry, or ``None``."""
        if not value:
            return None
        unknown = set(value) - {"size", "per_image", "splits"}
        if unknown:
            raise ValueError(f"patches: unknown key(s) {sorted(unknown)}; valid: size, per_image, splits")
        spec = cls(int(value["size"]), int(value["per_image"]))
        if spec.size < 8 or spec.per_image < 1:
            raise ValueError(f"patches: size must be >= 8 and per_image >= 1, got {value}")
        return spec

    def windows(self, height: int, width: int, key: str, seed: int = 0) -> list[tuple[int, int, int, int]]:
        """``(top, left, h, w)`` of each patch of a ``height x width`` image; a side shorter than
        ``size`` is taken whole. Positions depend only on ``seed`` and the sample ``key``."""
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little"))
        h, w = min(self.size, height), min(self.size, width)
        return [(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w)
                for _ in range(self.per_image)]


def patch_samples(key: str, images: dict[str, np.ndarray], meta: dict, spec: PatchSpec, seed: int = 0
                  ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The samples ``<key>_p<i>`` of the aligned patches of ``images`` (``{member name: array}``, one
    size); each sample's JSON is ``meta`` plus its ``patch`` window ``[top, left, h, w]``."""
    height, width = next(iter(images.values())).shape[:2]
    for i, (top, left, h, w) in enumerate(spec.windows(height, width, key, seed)):
        members = {name: encode_png(np.ascontiguousarray(image[top:top + h, left:left + w]))
                   for name, image in images.items()}
        members["json"] = json.dumps(meta | {"key": f"{key}_p{i}", "patch": [top, left, h, w]},
                                     sort_keys=True).encode()
        yield f"{key}_p{i}", members


def _stage1_arrays(record: Stage1Record) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(lq, hq, meta)`` of one triplet, ``lq`` upsampled bicubically to ``hq``'s size if needed."""
    hq = load_image(record.hq, record.modality)
    lq = load_image(record.lq, record.modality)
    meta = {"key": record.key, "task": record.task, "modality": record.modality,
            "modality_name": MODALITY_NAMES[record.modality], "source": record.source, "name": record.name}
    if lq.shape[:2] != hq.shape[:2]:
        meta["lq_size"] = list(lq.shape[:2])
        lq = _resize_to(lq, hq.shape[:2])
    return lq, hq, meta


def _fusion_arrays(record: FusionRecord) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(ir, vi, meta)`` of one pair, infrared resized to the visible size if they differ."""
    vi = load_image(record.vi, VISIBLE)
    ir = load_image(record.ir, INFRARED)
    meta = {"key": record.key, "source": record.source, "name": record.name}
    if ir.shape[:2] != vi.shape[:2]:
        meta["ir_size"] = list(ir.shape[:2])
        ir = _resize_to(ir, vi.shape[:2])
    return ir, vi, meta


def stage1_sample(record: Stage1Record) -> dict[str, bytes]:
    """The tar members of one stage-1 triplet (``lq`` upsampled bicubically to ``hq``'s size if needed)."""
    lq, hq, meta = _stage1_arrays(record)
    return {"lq.png": encode_png(lq), "hq.png": encode_png(hq), "json": json.dumps(meta, sort_keys=True).encode()}


def stage1_patches(record: Stage1Record, spec: PatchSpec, seed: int = 0) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The patch samples of one stage-1 triplet (:func:`patch_samples`)."""
    lq, hq, meta = _stage1_arrays(record)
    return patch_samples(record.key, {"lq.png": lq, "hq.png": hq}, meta, spec, seed)


def fusion_patches(record: FusionRecord, spec: PatchSpec, seed: int = 0) -> Iterator[tuple[str, dict[str, bytes]]]:
    """The patch samples of one fusion pair (:func:`patch_samples`; extra clean images and
    degradation fields are not carried: patches are for training sets)."""
    ir, vi, meta = _fusion_arrays(record)
    return patch_samples(record.key, {"ir.png": ir, "vi.png": vi}, meta, spec, seed)


def fusion_sample(record: FusionRecord) -> dict[str, bytes]:
    """The tar members of one fusion pair (infrared resized to the visible size if they differ)."""
    ir, vi, meta = _fusion_arrays(record)
    members = {"ir.png": encode_png(ir), "vi.png": encode_png(vi)}
    for name, value in record.extra.items():
        if name in ("ir_clean", "vi_clean"):
            modality = INFRARED if name == "ir_clean" else VISIBLE
            img = as_modality(value, modality) if isinstance(value, np.ndarray) else load_image(value, modality)
            members[f"{name}.png"] = encode_png(_resize_to(img, vi.shape[:2]))
        else:
            meta[name] = value
    members["json"] = json.dumps(meta, sort_keys=True).encode()
    return members


def write_shard(path: str | Path, samples: Iterable[tuple[str, dict[str, bytes]]]) -> dict:
    """Write ``samples`` (``(key, {member: bytes})``) as one tar at ``path``, atomically.

    Returns ``{"name", "count", "sha256", "bytes"}``. Members are ``<key>.<member>``, in the
    given sample order and sorted member order, with mtime 0 and owner 0 (deterministic bytes).
    ``samples`` may be a generator: each sample is written as soon as it is produced, so only one
    sample's bytes are held in memory (the tar goes to the temporary file as it grows).
    """
    path = Path(path)
    count = 0
    with atomic_open(path) as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for key, members in samples:
                count += 1
                if "." in key or "/" in key:
                    raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
                for member in sorted(members):
                    data = members[member]
                    info = tarfile.TarInfo(f"{key}.{member}")
                    info.size, info.mtime, info.mode = len(data), 0, 0o444
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(data))
    return {"name": path.name, "count": count, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def plan_shards(n_records: int, samples_per_shard: int, min_shards: int = 1) -> list[tuple[int, int]]:
    """Split ``n_records`` into contiguous ``[start, stop)`` ranges: at most ``samples_per_shard`` each,
    at least ``min_shards`` ranges when there are that many records (so more loader workers find
    a shard each); sizes differ by at most one."""
    if n_records <= 0:
        return []
    n = max(math.ceil(n_records / max(1, samples_per_shard)), min(max(1, min_shards), n_records))
    bounds = [round(i * n_records / n) for i in range(n + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(n)]


def shard_name(kind: str, index: int) -> str:
    """``stage1-000000.tar`` / ``fusion-000000.tar``."""
    if kind not in KINDS:
        raise ValueError(f"shard kind must be one of {KINDS}, got {kind!r}")
    return f"{kind}-{index:06d}.tar"


def build_shard(directory: str | Path, kind: str, index: int, records: Sequence[Stage1Record | FusionRecord],
                patches: PatchSpec | None = None, seed: int = 0) -> dict:
    """Encode ``records`` one at a time into shard ``index`` of ``kind`` in ``directory`` (whole
    images, or the pre-cut ``patches`` of each); returns its entry for the manifest (with
    ``per_task`` counts for stage 1, in samples)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # a generator: one sample encoded, written, dropped at a time (memory: one image, not one shard)
    if patches is None:
        encode = stage1_sample if kind == "stage1" else fusion_sample
        samples: Iterable = ((r.key, encode(r)) for r in records)
    else:
        cut = stage1_patches if kind == "stage1" else fusion_patches
        samples = (sample for r in records for sample in cut(r, patches, seed))
    entry = write_shard(directory / shard_name(kind, index), samples)
    per_record = patches.per_image if patches else 1
    if kind == "stage1":
        counts = Counter(f"{r.task}/{MODALITY_NAMES[r.modality]}" for r in records)
        entry["per_task"] = {task: n * per_record for task, n in sorted(counts.items())}
    else:
        tasks = Counter(f"{r.extra['vi_task']}+{r.extra['ir_task']}" for r in records if "vi_task" in r.extra)
        if tasks:
            entry["per_task"] = {task: n * per_record for task, n in sorted(tasks.items())}
    return entry


def split_input_hash(fingerprint: str, generation: dict, keys: dict[str, list[str]]) -> str:
    """The hash deciding whether a split must be rebuilt: source fingerprint, generation
    parameters, sample keys per kind and the shard format version."""
    payload = json.dumps({"fingerprint": fingerprint, "generation": generation, "keys": keys,
                          "format": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def source_versions(parsed, versions: list | None = None) -> dict:
    """The manifest's ``source_versions``: the parser's version string, the sources' version records
    (registry id, archive sha256, or the local root as configured) and the input ``fingerprint``
    (sha256 over the source files' relative names and content hashes and the parser options)."""
    return {"parser": parsed.version, "sources": list(versions or []), "fingerprint": parsed.fingerprint}


def read_manifest(split_dir: str | Path) -> dict | None:
    """The split's manifest, or ``None`` when absent or unreadable."""
    path = Path(split_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def split_is_current(split_dir: str | Path, input_hash: str, verify: bool = False) -> bool:
    """True when the split's manifest has ``input_hash`` and every listed shard exists with its
    recorded size (and sha256 when ``verify``): the split can be left untouched."""
    split_dir = Path(split_dir)
    manifest = read_manifest(split_dir)
    if not manifest or manifest.get("input_hash") != input_hash:
        return False
    for kind in KINDS:
        for shard in manifest.get(kind, {}).get("shards", []):
            path = split_dir / shard["name"]
            if not path.is_file() or path.stat().st_size != shard["bytes"]:
                return False
            if verify and sha256_file(path) != shard["sha256"]:
                return False
    return True


def write_manifest(split_dir: str | Path, *, dataset: str, split: str, input_hash: str,
                   shards: dict[str, list[dict]], source_versions: dict, generation: dict,
                   skipped: list[str] | None = None) -> dict:
    """Write ``manifest.json`` atomically, then delete shards and temporary files of this split
    that it does not list (left by an earlier, larger or interrupted build). Returns the manifest."""
    split_dir = Path(split_dir)
    # no timestamp: the same inputs give a byte-identical manifest, so DVC hashes data/shards the
    # same on every machine
    manifest: dict = {"format": FORMAT_VERSION, "dataset": dataset, "split": split, "input_hash": input_hash}
    for kind in KINDS:
        entries = sorted(shards.get(kind, []), key=lambda e: e["name"])
        per_task: Counter = Counter()
        for e in entries:
            per_task.update(e.get("per_task", {}))
        manifest[kind] = {"count": sum(e["count"] for e in entries), "per_task": dict(sorted(per_task.items())),
                          "shards": entries}
    manifest["source_versions"] = source_versions
    manifest["generation"] = generation
    manifest["skipped"] = {"count": len(skipped or []), "examples": list(skipped or [])[:50]}
    atomic_write_bytes(split_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    listed = {e["name"] for kind in KINDS for e in manifest[kind]["shards"]}
    for path in split_dir.iterdir():
        stale_shard = path.suffix == ".tar" and path.name.split("-")[0] in KINDS and path.name not in listed
        if stale_shard or path.name.endswith(".tmp"):
            path.unlink()
    return manifest


def manifest_shard_paths(split_dir: str | Path, kind: str | None = None) -> list[Path]:
    """Absolute paths of the shards a split's manifest lists (``kind`` ``stage1``/``fusion``/``None`` = both)."""
    split_dir = Path(split_dir)
    manifest = read_manifest(split_dir)
    if manifest is None:
        raise FileNotFoundError(f"no readable {MANIFEST} in {split_dir}; build the data set first (dvc repro build_data)")
    kinds = KINDS if kind is None else (kind,)
    return [split_dir / e["name"] for k in kinds for e in manifest.get(k, {}).get("shards", [])]


def generation_params(config: dict, dataset: str | None = None, split: str | None = None) -> dict:
    """The generation parameters recorded in manifests (and hashed): seed, shard sizing and, when the
    data set's (or derived set's) entry asks for them for this split, its pre-cut ``patches`` (:class:`PatchSpec`;
    ``patches.splits``, default ``[train]``: evaluation splits stay whole)."""
    generation = {"seed": config.get("seed", 0), "samples_per_shard": int(config.get("samples_per_shard", 256)),
                  "min_shards": int(config.get("min_shards", 2)), "png_compress_level": PNG_COMPRESS_LEVEL}
    entry = ((config.get("datasets") or {}).get(dataset) or (config.get("derived") or {}).get(dataset)) if dataset else None
    patches = (entry or {}).get("patches")
    spec = PatchSpec.from_config(patches) if split in (patches or {}).get("splits", ["train"]) else None
    if spec is not None:
        generation["patches"] = {"size": spec.size, "per_image": spec.per_image}
    return generation


def patch_spec(generation: dict) -> PatchSpec | None:
    """The :class:`PatchSpec` of :func:`generation_params`' result, or ``None`` (whole images)."""
    return PatchSpec.from_config(generation.get("patches"))


def split_records(parsed, split: str) -> dict[str, list]:
    """``{"stage1": [...], "fusion": [...]}`` of one split, checking that sample keys are unique."""
    records = {"stage1": parsed.stage1.get(split, []), "fusion": parsed.fusion.get(split, [])}
    for kind, recs in records.items():
        seen: set[str] = set()
        dup = [r.key for r in recs if r.key in seen or seen.add(r.key)]
        if dup:
            raise ValueError(f"split {split!r}: duplicate sample keys in {kind}: {dup[:3]}")
    return records


def write_parsed_split(out_dir: str | Path, dataset: str, split: str, parsed, config: dict | None = None,
                       versions: list | None = None) -> dict:
    """Sequentially write one split of ``parsed`` to ``<out_dir>/shards/<dataset>/<split>`` (what the
    Prefect flow does with concurrent tasks). Returns ``{"stage1"/"fusion": count, "rewritten": bool}``."""
    from tqdm import tqdm

    generation = generation_params(config or {}, dataset, split)
    split_dir = Path(out_dir) / "shards" / dataset / split
    records = split_records(parsed, split)
    keys = {kind: [r.key for r in recs] for kind, recs in records.items()}
    input_hash = split_input_hash(parsed.fingerprint, generation, keys)
    counts: dict = {kind: len(recs) * (generation.get("patches") or {}).get("per_image", 1) for kind, recs in records.items() if recs}
    if split_is_current(split_dir, input_hash):
        return counts | {"rewritten": False}
    entries: dict[str, list[dict]] = {"stage1": [], "fusion": []}
    jobs = [(kind, i, recs[a:b]) for kind, recs in records.items()
            for i, (a, b) in enumerate(plan_shards(len(recs), generation["samples_per_shard"], generation["min_shards"]))]
    for kind, index, recs in tqdm(jobs, desc=f"{dataset}/{split}", unit="shard", leave=False):
        entries[kind].append(build_shard(split_dir, kind, index, recs, patch_spec(generation), generation["seed"]))
    write_manifest(split_dir, dataset=dataset, split=split, input_hash=input_hash, shards=entries,
                   source_versions=source_versions(parsed, versions),
                   generation=generation, skipped=parsed.skipped)
    return counts | {"rewritten": True}
