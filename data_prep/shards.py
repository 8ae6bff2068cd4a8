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
from collections.abc import Iterable, Sequence
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


def stage1_sample(record: Stage1Record) -> dict[str, bytes]:
    """The tar members of one stage-1 triplet (``lq`` upsampled bicubically to ``hq``'s size if needed)."""
    hq = load_image(record.hq, record.modality)
    lq = load_image(record.lq, record.modality)
    meta = {"key": record.key, "task": record.task, "modality": record.modality,
            "modality_name": MODALITY_NAMES[record.modality], "source": record.source, "name": record.name}
    if lq.shape[:2] != hq.shape[:2]:
        meta["lq_size"] = list(lq.shape[:2])
        lq = _resize_to(lq, hq.shape[:2])
    return {"lq.png": encode_png(lq), "hq.png": encode_png(hq), "json": json.dumps(meta, sort_keys=True).encode()}


def fusion_sample(record: FusionRecord) -> dict[str, bytes]:
    """The tar members of one fusion pair (infrared resized to the visible size if they differ)."""
    vi = load_image(record.vi, VISIBLE)
    ir = load_image(record.ir, INFRARED)
    meta = {"key": record.key, "source": record.source, "name": record.name}
    if ir.shape[:2] != vi.shape[:2]:
        meta["ir_size"] = list(ir.shape[:2])
        ir = _resize_to(ir, vi.shape[:2])
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


def build_shard(directory: str | Path, kind: str, index: int, records: Sequence[Stage1Record | FusionRecord]) -> dict:
    """Encode ``records`` one at a time into shard ``index`` of ``kind`` in ``directory``; returns its
    entry for the manifest (with ``per_task`` counts for stage 1)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encode = stage1_sample if kind == "stage1" else fusion_sample
    # a generator: one sample encoded, written, dropped at a time (memory: one sample, not one shard)
    entry = write_shard(directory / shard_name(kind, index), ((r.key, encode(r)) for r in records))
    if kind == "stage1":
        entry["per_task"] = dict(sorted(Counter(f"{r.task}/{MODALITY_NAMES[r.modality]}" for r in records).items()))
    else:
        tasks = Counter(f"{r.extra['vi_task']}+{r.extra['ir_task']}" for r in records if "vi_task" in r.extra)
        if tasks:
            entry["per_task"] = dict(sorted(tasks.items()))
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


def generation_params(config: dict) -> dict:
    """The generation parameters recorded in manifests (and hashed): seed and shard sizing."""
    return {"seed": config.get("seed", 0), "samples_per_shard": int(config.get("samples_per_shard", 256)),
            "min_shards": int(config.get("min_shards", 2)), "png_compress_level": PNG_COMPRESS_LEVEL}


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

    generation = generation_params(config or {})
    split_dir = Path(out_dir) / "shards" / dataset / split
    records = split_records(parsed, split)
    keys = {kind: [r.key for r in recs] for kind, recs in records.items()}
    input_hash = split_input_hash(parsed.fingerprint, generation, keys)
    counts: dict = {kind: len(recs) for kind, recs in records.items() if recs}
    if split_is_current(split_dir, input_hash):
        return counts | {"rewritten": False}
    entries: dict[str, list[dict]] = {"stage1": [], "fusion": []}
    jobs = [(kind, i, recs[a:b]) for kind, recs in records.items()
            for i, (a, b) in enumerate(plan_shards(len(recs), generation["samples_per_shard"], generation["min_shards"]))]
    for kind, index, recs in tqdm(jobs, desc=f"{dataset}/{split}", unit="shard", leave=False):
        entries[kind].append(build_shard(split_dir, kind, index, recs))
    write_manifest(split_dir, dataset=dataset, split=split, input_hash=input_hash, shards=entries,
                   source_versions=source_versions(parsed, versions),
                   generation=generation, skipped=parsed.skipped)
    return counts | {"rewritten": True}
