"""Scale simulator: the paper's data sets in their published layouts, with procedural content.

``python -m data_prep.simulate --dataset NAME|all --fraction F --out DIR [--seed S] [--workers N]
[--config-out FILE]`` writes, for each registry id (``data_prep/registry.yaml``; ``reside`` = the
three RESIDE ids, ``all`` = every id with a ``scale`` block), a tree that the data set's own parser
(:mod:`data_prep.sources`) reads exactly as it reads the published archive: the same folder and
file names, formats, image sizes and channel layouts, at ``F`` times the published image count
(``scale.splits``; at least one item per split). Trees go to ``DIR/<data set>/<published top
folder>`` where ``<data set>`` is the paper profile's data set name (``reside`` holds ITS, OTS and
SOTS side by side), so the paper's ``data.datasets`` entries can point at ``DIR/<data set>`` with
``root:`` (:func:`flow_config`; ``--config-out`` writes that ``data`` section as JSON for
``python -m pipelines.flows.build_datasets run --config``).

The layouts, one per data set: docs/data-layout.md#simulated-paper-data-sets.

Content: each scene is :func:`data_prep.sources.demo.render_scene` rendered at a small size
(96 px high), upsampled bicubically to the published size, plus seeded sensor noise; degraded
inputs (low light, haze, exposure levels, low contrast, noise) are cheap closed-form functions of
the clean scene. Everything is deterministic given ``--seed`` (image seed = sha256 of seed, data
set, split and index). PNGs are written with zlib level 1 and JPEGs at quality 95 (decoding cost
hardly depends on either). Counts: ``n = max(1, floor(F * published + 0.5))`` per split, in scene
units where one clean image has several inputs (RESIDE clear images, Exposure-Errors scenes);
:func:`expected_records` gives the records each parser must then return.

A tree is written into ``<target>.partial-<pid>`` and renamed into place when complete, with a
``.lure-sim.json`` marker (id, fraction, seed, counts); a later call with the same parameters
reuses it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from data_prep.download import load_registry
from data_prep.simulated_content import content, save, scene

VERSION = "sim-v1"
MARKER = ".lure-sim.json"
#: registry id -> (paper data set name, published top folder)
TARGETS = {
    "lol": ("lol", "LOLdataset"),
    "reside-its": ("reside", "ITS"),
    "reside-ots": ("reside", "OTS"),
    "reside-sots": ("reside", "SOTS"),
    "exposure-errors": ("exposure_errors", "Exposure_Errors"),
    "ems": ("ems", "EMS"),
    "llvip": ("llvip", "LLVIP"),
    "msrs": ("msrs", "MSRS-main"),
    "m3fd": ("m3fd", "M3FD_Fusion"),
    "roadscene": ("roadscene", "RoadScene-master"),
}
ALIASES = {"reside": ["reside-its", "reside-ots", "reside-sots"], "exposure_errors": ["exposure-errors"]}
#: registry ids sharing one data set folder: the parser option selecting each one's part
SUBSETS = {"reside-its": ("subsets", "ITS"), "reside-ots": ("subsets", "OTS"), "reside-sots": ("subsets", "SOTS")}
#: LOL's eval15 names (the our485 names avoid them)
LOL_EVAL15 = [1, 22, 23, 55, 79, 111, 146, 179, 493, 547, 665, 669, 748, 778, 780]
OTS_A = (0.8, 0.85, 0.9, 0.95, 1.0)
OTS_BETA = (0.04, 0.06, 0.08, 0.1, 0.12, 0.16, 0.2)
EXPOSURE_LEVELS = {"0": 0.0, "N1": -1.0, "N1.5": -1.5, "P1": 1.0, "P1.5": 1.5}
EXPOSURE_SPLITS = {"training": "train", "validation": "val", "testing": "test"}


def scaled(n: int, fraction: float) -> int:
    """The simulated count of a published count ``n``: ``max(1, floor(fraction * n + 0.5))``."""
    return max(1, int(math.floor(float(fraction) * int(n) + 0.5)))


def image_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed from ``seed`` and ``parts`` (data set, split, index, ...)."""
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def varied_size(seed: int, typical: list[int], size_range: list[list[int]] | None) -> tuple[int, int]:
    """``typical`` or, when the registry gives a range, a seeded size inside it."""
    if not size_range:
        return int(typical[0]), int(typical[1])
    rng = np.random.default_rng(seed ^ 0x512E)
    (w0, h0), (w1, h1) = size_range
    return int(rng.integers(w0, w1 + 1)), int(rng.integers(h0, h1 + 1))


# ----------------------------------------------------------------------------- one scene's files
def _pair_job(seed: int, size: tuple[int, int], files: list[tuple[str, str, str]]) -> int:
    """Write ``files`` ``(path, what, mode)`` of one scene; ``what`` is ``ir``, ``vi`` or a degradation."""
    ir, vi = scene(seed, *size)
    rng = np.random.default_rng(seed ^ 0xD1E)
    for path, what, mode in files:
        save(Path(path), content(what, ir, vi, rng), mode)
    return len(files)


Job = tuple[int, tuple[int, int], list[tuple[str, str, str]]]


# ----------------------------------------------------------------------------- per data set
def _lol(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    train_names = [n for n in range(1, 100000) if n not in LOL_EVAL15][: scaled(sc["splits"]["train"], f)]
    eval_names = LOL_EVAL15[: scaled(sc["splits"]["test"], f)]
    for folder, names in (("our485", train_names), ("eval15", eval_names)):
        for n in names:
            files = [(str(base / folder / "high" / f"{n}.png"), "vi", "RGB"),
                     (str(base / folder / "low" / f"{n}.png"), "dark", "RGB")]
            yield image_seed(seed, "lol", folder, n), size, files


def _reside_its(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    for i in range(1, scaled(sc["clear"], f) + 1):
        s = image_seed(seed, "its", i)
        rng = np.random.default_rng(s)
        files = [(str(base / "clear" / f"{i}.png"), "vi", "RGB")]
        for k in range(1, int(sc["hazy_per_clear"]) + 1):
            airlight = round(float(rng.uniform(0.7, 1.0)), 5)
            files.append((str(base / "hazy" / f"{i}_{k}_{airlight:.5f}.png"), f"haze:{airlight},{0.04 + 0.02 * k}", "RGB"))
        yield s, size, files


def _reside_ots(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    per = int(sc["hazy_per_clear"])
    combos = [(a, b) for a in OTS_A for b in OTS_BETA][:per]
    for i in range(1, scaled(sc["clear"], f) + 1):
        s = image_seed(seed, "ots", i)
        files = [(str(base / "clear" / f"{i:04d}.jpg"), "vi", "RGB")]
        files += [(str(base / "hazy" / f"{i:04d}_{a}_{b}.jpg"), f"haze:{a},{b}", "RGB") for a, b in combos]
        yield s, varied_size(s, sc["size"], sc.get("size_range")), files


def _reside_sots(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    indoor, outdoor = sc["subsets"]["indoor"], sc["subsets"]["outdoor"]
    per_in = int(indoor["hazy"]) // int(indoor["clear"])
    for j in range(scaled(indoor["clear"], f)):
        i = 1400 + j
        s = image_seed(seed, "sots-indoor", i)
        files = [(str(base / "indoor" / "gt" / f"{i}.png"), "vi", "RGB")]
        files += [(str(base / "indoor" / "hazy" / f"{i}_{k}.png"), f"haze:0.9,{0.04 + 0.02 * k}", "RGB")
                  for k in range(1, per_in + 1)]
        yield s, tuple(indoor["size"]), files
    for i in range(1, scaled(outdoor["clear"], f) + 1):
        s = image_seed(seed, "sots-outdoor", i)
        a, b = OTS_A[i % len(OTS_A)], OTS_BETA[i % len(OTS_BETA)]
        files = [(str(base / "outdoor" / "gt" / f"{i:04d}.png"), "vi", "RGB"),
                 (str(base / "outdoor" / "hazy" / f"{i:04d}_{a}_{b}.jpg"), f"haze:{a},{b}", "RGB")]
        yield s, varied_size(s, outdoor["size"], outdoor.get("size_range")), files


def _exposure(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    levels = int(sc.get("levels", 5))
    experts = "abcde"[: int(sc.get("test_experts", 5))]
    for folder, split in EXPOSURE_SPLITS.items():
        for j in range(scaled(int(sc["splits"][split]) // levels, f)):
            s = image_seed(seed, "expo", folder, j)
            name = f"a{j + 1:04d}-sim_{folder[:2]}{j + 1:05d}"
            files = [(str(base / folder / "INPUT_IMAGES" / f"{name}_{lv}.JPG"), f"ev:{ev}", "RGB")
                     for lv, ev in EXPOSURE_LEVELS.items()]
            if folder == "testing":
                files += [(str(base / folder / f"expert_{e}_testing_set" / f"{name}.jpg"), "vi", "RGB") for e in experts]
            else:
                files.append((str(base / folder / "GT_IMAGES" / f"{name}.jpg"), "vi", "RGB"))
            # portrait or landscape, max side 512 (registry size_range)
            size = tuple(sc["size"]) if j % 3 else tuple(reversed(sc["size"]))
            yield s, size, files


#: EMS degradation folder -> (degraded side, content of the degraded image)
EMS_CONTENT = {"ir_low_contrast": ("Infrared", "ir_lc"), "ir_noise": ("Infrared", "ir_noise"),
               "ir_stripe_noise": ("Infrared", "ir_noise"), "low_light": ("Visible", "dark"),
               "over_exposure": ("Visible", "ev:1.5"), "haze": ("Visible", "haze:0.9,0.12"),
               "rain": ("Visible", "vi_noise"), "blur": ("Visible", "vi_noise"), "random_noise": ("Visible", "vi_noise")}


def _ems(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    for deg, count in sc["degradations"].items():
        side, content = EMS_CONTENT.get(deg.lower(), ("Visible", "vi_noise"))
        for j in range(scaled(count, f)):
            s = image_seed(seed, "ems", deg, j)
            stem = f"{j + 1:05d}"
            d = base / "train" / deg
            files = [(str(d / "Infrared_gt" / f"{stem}.png"), "ir", "L"),
                     (str(d / "Visible_gt" / f"{stem}.png"), "vi", "RGB"),
                     (str(d / "Infrared" / f"{stem}.png"), content if side == "Infrared" else "ir", "L"),
                     (str(d / "Visible" / f"{stem}.png"), content if side == "Visible" else "vi", "RGB")]
            text = d / "text" / f"{stem}.txt"
            text.parent.mkdir(parents=True, exist_ok=True)
            text.write_text(f"This is a {deg.replace('_', ' ').lower()} image pair.\n")
            yield s, size, files
    for j in range(scaled(sc["splits"]["test"], f)):
        stem = f"{j + 1:05d}"
        yield (image_seed(seed, "ems", "eval", j), size,
               [(str(base / "eval" / "Infrared" / f"{stem}.png"), "ir", "L"),
                (str(base / "eval" / "Visible" / f"{stem}.png"), "vi", "RGB")])


def _llvip(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    for split, first in (("train", 10001), ("test", 190001)):
        for j in range(scaled(sc["splits"][split], f)):
            stem = f"{first + j:06d}"
            yield (image_seed(seed, "llvip", split, j), size,
                   [(str(base / "infrared" / split / f"{stem}.jpg"), "ir", "RGB"),
                    (str(base / "visible" / split / f"{stem}.jpg"), "vi", "RGB")])


def _msrs(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    for split in ("train", "test"):
        for j in range(scaled(sc["splits"][split], f)):
            stem = f"{j + 1:05d}{'DN'[j % 2]}"
            yield (image_seed(seed, "msrs", split, j), size,
                   [(str(base / split / "ir" / f"{stem}.png"), "ir", "L"),
                    (str(base / split / "vi" / f"{stem}.png"), "vi", "RGB")])


def _m3fd(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    size = tuple(sc["size"])
    for j in range(scaled(sc["splits"]["test"], f)):
        yield (image_seed(seed, "m3fd", j), size,
               [(str(base / "Ir" / f"{j:05d}.png"), "ir", "L"), (str(base / "Vis" / f"{j:05d}.png"), "vi", "RGB")])


def _roadscene(base: Path, sc: dict, f: float, seed: int) -> Iterable[Job]:
    for j in range(scaled(sc["splits"]["test"], f)):
        s = image_seed(seed, "roadscene", j)
        stem = f"FLIR_{6 + 12 * j:05d}"
        yield (s, varied_size(s, sc["size"], sc.get("size_range")),
               [(str(base / "cropinfrared" / f"{stem}.jpg"), "ir", "L"),
                (str(base / "crop_LR_visible" / f"{stem}.jpg"), "vi", "RGB")])


BUILDERS: dict[str, Callable[[Path, dict, float, int], Iterable[Job]]] = {
    "lol": _lol, "reside-its": _reside_its, "reside-ots": _reside_ots, "reside-sots": _reside_sots,
    "exposure-errors": _exposure, "ems": _ems, "llvip": _llvip, "msrs": _msrs, "m3fd": _m3fd, "roadscene": _roadscene,
}


# ----------------------------------------------------------------------------- expected records
def expected_records(source_id: str, fraction: float, registry: dict | None = None) -> dict[str, dict[str, int]]:
    """``{"stage1": {split: n}, "fusion": {split: n}}`` the source's parser must return for a
    tree simulated at ``fraction`` (default parser options: ``emit_pd`` true)."""
    sc = (registry or load_registry())[source_id]["scale"]
    f = fraction
    stage1: dict[str, int] = {}
    fusion: dict[str, int] = {}
    if source_id == "lol":
        stage1 = {"train": 2 * scaled(sc["splits"]["train"], f), "test": 2 * scaled(sc["splits"]["test"], f)}
    elif source_id in ("reside-its", "reside-ots"):
        n = scaled(sc["clear"], f)
        stage1 = {"train": n * int(sc["hazy_per_clear"]) + n}
    elif source_id == "reside-sots":
        ind, out = sc["subsets"]["indoor"], sc["subsets"]["outdoor"]
        n_in, n_out = scaled(ind["clear"], f), scaled(out["clear"], f)
        stage1 = {"test": n_in * (int(ind["hazy"]) // int(ind["clear"]) + 1) + 2 * n_out}
    elif source_id == "exposure-errors":
        levels = int(sc.get("levels", 5))
        stage1 = {split: 3 * scaled(int(n) // levels, f) for split, n in sc["splits"].items()}  # P1, P1.5, pd
    elif source_id == "ems":
        from data_prep.sources.ems import task_of

        used = [n for deg, n in sc["degradations"].items() if task_of(deg) is not None]
        stage1 = {"train": sum(2 * scaled(n, f) for n in used)}  # task + pd
        fusion = {"test": scaled(sc["splits"]["test"], f)}
    else:
        fusion = {split: scaled(n, f) for split, n in sc["splits"].items()}
    return {"stage1": stage1, "fusion": fusion}


def source_ids(names: Iterable[str], registry: dict | None = None) -> list[str]:
    """Registry ids of ``names`` (ids, ``reside``, ``exposure_errors`` or ``all``)."""
    registry = registry or load_registry()
    out: list[str] = []
    for name in names:
        if name == "all":
            ids = [sid for sid in registry if "scale" in registry[sid] and sid in BUILDERS]
        else:
            ids = ALIASES.get(name, [name])
        for sid in ids:
            if sid not in BUILDERS:
                raise ValueError(f"simulate: unknown data set {name!r}; known: {', '.join([*BUILDERS, *ALIASES, 'all'])}")
            if sid not in out:
                out.append(sid)
    return out


def tree_root(out: str | Path, source_id: str) -> Path:
    """The folder the paper profile's data set entry should get as ``root`` (``DIR/<data set>``)."""
    return Path(out) / TARGETS[source_id][0]


# ----------------------------------------------------------------------------- writing
def simulate(source_id: str, fraction: float, out: str | Path, seed: int = 0, workers: int = 1,
             registry: dict | None = None) -> dict:
    """Write (or reuse) the simulated tree of ``source_id``; returns its marker (counts, timing)."""
    if not 0 < float(fraction) <= 1:
        raise ValueError(f"simulate: fraction must be in (0, 1], got {fraction}")
    registry = registry or load_registry()
    sc = registry[source_id]["scale"]
    dataset, top = TARGETS[source_id]
    target = Path(out) / dataset / top
    params = {"id": source_id, "fraction": float(fraction), "seed": int(seed), "version": VERSION}
    marker_path = target / MARKER
    if marker_path.is_file():
        marker = json.loads(marker_path.read_text())
        if {k: marker.get(k) for k in params} == params:
            return marker | {"reused": True}
        shutil.rmtree(target)
    partial_dir = target.with_name(f"{top}.partial-{os.getpid()}")
    shutil.rmtree(partial_dir, ignore_errors=True)
    start, cpu0 = time.perf_counter(), time.process_time()
    jobs = list(BUILDERS[source_id](partial_dir, sc, float(fraction), int(seed)))
    for _, _, files in jobs:
        for path, _, _ in files:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            n_files = sum(pool.map(_run_job, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        n_files = sum(map(_run_job, jobs))
    marker = params | {"scenes": len(jobs), "images": n_files, "expected": expected_records(source_id, fraction, registry),
                       "seconds": round(time.perf_counter() - start, 2),
                       "cpu_seconds_main": round(time.process_time() - cpu0, 2)}
    (partial_dir / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial_dir, target)
    return marker | {"reused": False}


def _run_job(job: Job) -> int:
    return _pair_job(*job)


def flow_config(out: str | Path, source_ids_: Iterable[str], profile: str = "paper", params: str | None = None,
                **overrides: object) -> dict:
    """The ``data`` section of ``profile`` with its data sets pointed at the simulated trees under
    ``out`` (``root:`` instead of ``registry:``); data sets not simulated are dropped, and so are
    derived and degraded sets whose sources are missing; a data set of several registry ids
    (RESIDE) of which only some are asked for gets the parser option selecting them (``subsets``).
    ``overrides`` replace top-level keys."""
    from lure.config import load_params

    data = dict(load_params(params, profile)["data"])
    ids = set(source_ids_)
    datasets = {}
    for name, entry in (data.get("datasets") or {}).items():
        reg = entry.get("registry")
        reg_ids = reg if isinstance(reg, list) else [reg] if reg else []
        if reg_ids and any(r in ids for r in reg_ids):
            new = {k: v for k, v in entry.items() if k != "registry"}
            new["root"] = str(tree_root(out, next(r for r in reg_ids if r in ids)))
            chosen = [r for r in reg_ids if r in ids]
            if len(chosen) < len(reg_ids) and all(r in SUBSETS for r in chosen):
                new[SUBSETS[chosen[0]][0]] = [SUBSETS[r][1] for r in chosen]  # only the simulated parts
            datasets[name] = new
    data["datasets"] = datasets
    derived = {}
    for name, spec in (data.get("derived") or {}).items():
        src = spec.get("from")
        src = src if isinstance(src, list) else [src]
        if all(s in datasets for s in src):
            derived[name] = spec
    data["derived"] = derived
    degraded = dict(data.get("degraded_eval") or {})
    if degraded:
        degraded["datasets"] = [d for d in degraded.get("datasets", []) if d in datasets]
        data["degraded_eval"] = degraded
    data.update(overrides)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="simulate the paper's data sets in their published layouts")
    parser.add_argument("--dataset", action="append", required=True,
                        help="registry id (lol, reside-its, reside-ots, reside-sots, exposure-errors, ems, llvip, "
                             "msrs, m3fd, roadscene), 'reside', or 'all'; repeatable")
    parser.add_argument("--fraction", type=float, required=True, help="fraction of the published size, (0, 1]")
    parser.add_argument("--out", required=True, help="output folder (trees go to OUT/<data set>/...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes writing images")
    parser.add_argument("--config-out", default=None,
                        help="write the paper profile's data section pointing at the trees (JSON) here")
    args = parser.parse_args(argv)
    registry = load_registry()
    ids = source_ids(args.dataset, registry)
    report = {sid: simulate(sid, args.fraction, args.out, args.seed, args.workers, registry) | {
        "root": str(tree_root(args.out, sid))} for sid in ids}
    if args.config_out:
        cfg = flow_config(args.out, ids)
        Path(args.config_out).write_text(json.dumps(cfg, indent=2, sort_keys=True))
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
