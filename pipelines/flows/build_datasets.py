"""Prefect flow ``build-datasets``: fetch, verify, parse, degrade and shard every data set.

Runs in-process without a server (the DVC stage ``build_data`` calls it so) or as a served
deployment::

    export PREFECT_HOME=$PWD/.prefect PREFECT_API_URL=http://127.0.0.1:4200/api PREFECT_SERVER_ANALYTICS_ENABLED=false
    prefect server start --host 127.0.0.1 --port 4200 &           # 1. a local Prefect server
    python -m pipelines.flows.build_datasets serve --name local &  # 2. serve the deployment
    prefect deployment run build-datasets/local --watch           # 3. run it (params from params.yaml)

Structure: one ``prepare-source`` task per data set (download with retries on network errors,
sha256 check, safe extraction; cached by the source's input hash), then per split one
``write-shard`` task per shard (cached by the shard's input hash) — these run concurrently
through the flow's task runner — then the split's manifest. Splits whose manifest already has the
same input hash are left untouched (nothing rewritten). Output layout: :mod:`data_prep.shards`.

Manifests and cache keys record what the data is, never where it lay: source files enter by
relative name and sha256 of their bytes, local roots as configured (``@shared/...``) or by folder
name, so the same pairs in any folder (any mtimes) give byte-identical shards and manifests.

Task runner: ``data.task_runner`` (or the ``task_runner`` parameter) is ``threads`` (default,
Prefect's ``ThreadPoolTaskRunner``; ``task_runner_options: {max_workers: N}``), ``dask``
(``prefect-dask``'s ``DaskTaskRunner``, options e.g. ``{address: tcp://scheduler:8786}`` or
``{cluster_class: dask_jobqueue.SLURMCluster, cluster_kwargs: {...}}``; ``pip install prefect-dask``)
or ``ray`` (``prefect-ray``'s ``RayTaskRunner``, options e.g. ``{address: ray://head:10001}``;
``pip install prefect-ray``). Shards are written by the workers, so with a distributed runner
``out_dir`` must be on storage every worker sees.

Config (the ``data`` section of the resolved params)::

    seed: 0                      # degradation / demo seed
    samples_per_shard: 256       # max samples per tar
    min_shards: 2                # at least this many shards per split and kind (loader workers)
    task_runner: threads         # threads | dask | ray
    task_runner_options: {}
    registry: null               # registry YAML (default data_prep/registry.yaml)
    datasets:                    # name -> source entry
      demo: {source: demo, train: 48, test: 8, height: 128, width: 160}
      roadscene: {source: folder, root: "@shared/roadscene", split: test, optional: true}
      lol: {source: lol, registry: lol}
      reside: {source: reside, registry: [reside-its, reside-ots, reside-sots]}
    derived:                     # name -> derived set
      llvip-sr: {kind: super_resolution, from: llvip, factors: [4, 8]}
      m3fd-haze: {kind: haze, from: m3fd, names: null}
      real-restoration: {kind: restoration, from: [roadscene, llvip], variants: 2}
    degraded_eval: {datasets: [demo], split: test, tasks: [ll, hz, oe, lc, sr4, sr8, oe+lc, ll+lc]}

A source entry has ``source`` (a parser of :mod:`data_prep.sources`), and ``root`` (a folder;
``@shared/...`` is the shared real-data folder) or ``registry`` (id(s) in the registry); every
other key is passed to the parser. ``optional: true`` skips a data set whose root is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from data_prep import derived as derived_sets
from data_prep import shards as shard_io
from data_prep.download import ManualDownloadRequired, ensure_source, is_network_error, load_registry
from data_prep.sources import ParsedSource, get_parser
from data_prep.sources.base import portable_messages
from lure.fileio import atomic_write_text, sha256_file
from lure.paths import REPO_ROOT, shared_data_dir
from pipelines.flows.task_runners import make_task_runner

DEMO_CONFIG: dict[str, Any] = {
    "seed": 0,
    "samples_per_shard": 256,
    "min_shards": 2,
    "datasets": {"demo": {"source": "demo", "train": 48, "test": 8, "height": 128, "width": 160}},
    "degraded_eval": {"datasets": ["demo"], "split": "test"},
}


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # outside a run (flow.fn / tests)
        return logging.getLogger("lure.build_datasets")


class Opaque:
    """Carries records into tasks without Prefect walking (or hashing) every element."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


# ----------------------------------------------------------------------------- config
def resolve_config(config: dict | None) -> dict:
    """The ``data`` section: ``config`` may be that section, the whole resolved params (with a
    ``data`` key) or ``None`` (read params.yaml, falling back to the demo defaults)."""
    if config is None:
        config = _read_params()
    if "data" in config and "datasets" not in config:
        data = dict(config["data"] or {})
        data.setdefault("seed", config.get("seed", 0))
        return data
    return dict(config)


def _read_params() -> dict:
    try:
        from lure.config import load_params
    except ImportError:  # lure.config not there: read params.yaml ourselves
        load_params = None
    try:
        if load_params is not None:
            return load_params()
        import yaml

        raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text()) or {}
        profile = (raw.get("profiles") or {}).get(raw.get("profile", "demo"), {})
        return {"seed": raw.get("seed", 0), **profile}
    except FileNotFoundError:
        return {"data": DEMO_CONFIG}


def resolve_root(root: str) -> Path | None:
    """A dataset root: ``@shared/<rel>`` -> the shared data folder (``None`` when absent); relative
    paths are taken from the current directory."""
    if root.startswith("@shared"):
        base = shared_data_dir()
        return None if base is None else base / root.removeprefix("@shared").lstrip("/")
    return Path(root).expanduser()


def portable_root(root: str) -> str:
    """How a local root is recorded in manifests: ``@shared/...`` and relative roots as configured,
    an absolute root by its folder name only (manifests record no location)."""
    if root.startswith("@shared"):
        return root
    path = Path(root).expanduser()
    return path.name if path.is_absolute() else path.as_posix()


# ----------------------------------------------------------------------------- tasks
def _retry_on_network_error(task_obj, task_run, state) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 (the task's own exception)
        return is_network_error(exc)
    return False


def _source_cache_key(context, parameters: dict) -> str:
    entry = parameters["entry"]
    reg = parameters.get("registry_path") or ""
    payload = json.dumps([parameters["name"], entry, parameters["data_dir"], reg], sort_keys=True, default=str)
    return "prepare-source-" + hashlib.sha256(payload.encode()).hexdigest()


@task(name="prepare-source", retries=3, retry_delay_seconds=[1, 5, 20], retry_condition_fn=_retry_on_network_error,
      cache_policy=NO_CACHE)
def prepare_source(name: str, entry: dict, data_dir: str, registry_path: str | None = None) -> dict:
    """Make one data set's root(s) available: local ``root`` checked, or registry archives fetched,
    verified and extracted. Returns ``{"roots": [...], "versions": [...], "missing": reason | None}``."""
    entry = dict(entry)
    if "root" in entry:
        root = resolve_root(str(entry["root"]))
        if root is None or not root.exists():
            reason = f"{name}: root {entry['root']} not found"
            if entry.get("optional"):
                return {"roots": [], "versions": [], "missing": reason + " (optional, skipped)"}
            raise FileNotFoundError(reason + "; fix data.datasets." + name + ".root in params.yaml")
        return {"roots": [str(root)], "versions": [{"root": portable_root(str(entry["root"]))}], "missing": None}
    if "registry" in entry:
        registry = load_registry(registry_path)
        ids = entry["registry"] if isinstance(entry["registry"], list) else [entry["registry"]]
        roots, versions = [], []
        for sid in ids:
            root, info = ensure_source(sid, data_dir, registry)
            if not info["pinned"]:
                _log().warning("%s: registry source %s has no pinned sha256; downloaded file has sha256 %s "
                               "(pin it in data_prep/registry.yaml)", name, sid, info["sha256"])
            roots.append(str(root))
            versions.append(info)
        return {"roots": roots, "versions": versions, "missing": None}
    return {"roots": [None], "versions": [], "missing": None}  # generated sources (demo)


def _shard_cache_key(context, parameters: dict) -> str:
    return "write-shard-" + parameters["shard_hash"]


@task(name="write-shard", cache_key_fn=_shard_cache_key, persist_result=True, retries=1, retry_delay_seconds=1)
def write_shard_task(directory: str, kind: str, index: int, records: Opaque, shard_hash: str,
                     generation: dict | None = None) -> dict:
    """Encode and atomically write one shard; returns its manifest entry (cached by ``shard_hash``,
    which covers ``generation``)."""
    generation = generation or {}
    return shard_io.build_shard(directory, kind, index, records.value, shard_io.patch_spec(generation),
                                int(generation.get("seed", 0)))


# ----------------------------------------------------------------------------- building
def _merge(parts: list[ParsedSource]) -> ParsedSource:
    if len(parts) == 1:
        return parts[0]
    out = ParsedSource(version="; ".join(p.version for p in parts))
    for p in parts:
        for split, recs in p.stage1.items():
            out.stage1.setdefault(split, []).extend(recs)
        for split, recs in p.fusion.items():
            out.fusion.setdefault(split, []).extend(recs)
        out.skipped.extend(p.skipped)
    out.fingerprint = hashlib.sha256("".join(p.fingerprint for p in parts).encode()).hexdigest()
    return out


def parse_dataset(name: str, entry: dict, roots: list[str | None], seed: int) -> ParsedSource:
    """Run the dataset's parser on each root and merge the results."""
    options = {k: v for k, v in entry.items() if k not in ("source", "root", "registry", "optional", "patches")}
    parser = get_parser(entry.get("source", name))
    if entry.get("source") == "demo":
        options.setdefault("seed", seed)
    if entry.get("source") == "folder":
        options.setdefault("name", name)
    parsed = _merge([parser(root, **options) for root in roots])
    # skipped-file messages name absolute paths; manifests keep them relative to the data set's folders
    folders = [*roots, *((options.get("splits") or {}).values() if isinstance(options.get("splits"), dict) else [])]
    parsed.skipped = portable_messages(parsed.skipped, folders)
    return parsed


def build_split(out_dir: Path, dataset: str, split: str, parsed: ParsedSource, config: dict,
                versions: list | dict | None) -> dict:
    """Write one split's shards (concurrent tasks) and manifest, unless it is already current."""
    log = _log()
    split_dir = out_dir / "shards" / dataset / split
    records = shard_io.split_records(parsed, split)
    generation = shard_io.generation_params(config, dataset, split)
    keys = {kind: [r.key for r in recs] for kind, recs in records.items()}
    input_hash = shard_io.split_input_hash(parsed.fingerprint, generation, keys)
    counts = {kind: len(recs) * (generation.get("patches") or {}).get("per_image", 1) for kind, recs in records.items() if recs}
    if shard_io.split_is_current(split_dir, input_hash):
        log.info("%s/%s: unchanged (manifest input hash matches), nothing rewritten", dataset, split)
        return counts
    split_dir.mkdir(parents=True, exist_ok=True)
    futures = {}
    for kind, recs in records.items():
        plan = shard_io.plan_shards(len(recs), generation["samples_per_shard"], generation["min_shards"])
        for index, (start, stop) in enumerate(plan):
            # no location in the key: a cached entry whose file is missing or differs is rewritten below
            shard_hash = hashlib.sha256(f"{input_hash}:{dataset}/{split}:{kind}:{index}:{start}:{stop}".encode()).hexdigest()
            futures[(kind, index)] = (shard_hash, recs[start:stop],
                                      write_shard_task.submit(str(split_dir), kind, index, Opaque(recs[start:stop]), shard_hash,
                                                              generation))
    results: dict[tuple[str, int], dict] = {}
    redo = {}
    for (kind, index), (shard_hash, recs, future) in tqdm(futures.items(), desc=f"{dataset}/{split}", unit="shard",
                                                          leave=False):
        entry = future.result()
        path = split_dir / entry["name"]
        if not path.is_file() or sha256_file(path) != entry["sha256"]:  # cached entry, file gone/changed
            redo[(kind, index)] = write_shard_task.with_options(refresh_cache=True).submit(
                str(split_dir), kind, index, Opaque(recs), shard_hash, generation)  # rewritten concurrently
        else:
            results[(kind, index)] = entry
    results.update({key: future.result() for key, future in redo.items()})
    entries: dict[str, list[dict]] = {"stage1": [], "fusion": []}
    for kind, index in futures:
        entries[kind].append(results[(kind, index)])
    shard_io.write_manifest(split_dir, dataset=dataset, split=split, input_hash=input_hash, shards=entries,
                            source_versions=shard_io.source_versions(parsed, versions),
                            generation=generation, skipped=parsed.skipped)
    log.info("%s/%s: wrote %s (%d shards)", dataset, split, counts, sum(len(v) for v in entries.values()))
    return counts


@flow(name="build-datasets-shards")
def _build_all(config: dict, out_dir: str) -> dict:
    """Inner flow (runs with the selected task runner): every data set, derived and degraded set."""
    log = _log()
    out = Path(out_dir)
    seed = int(config.get("seed", 0))
    datasets: dict[str, dict] = dict(config.get("datasets") or {})
    registry_path = config.get("registry")
    prepared = {name: prepare_source.submit(name, entry, str(out), registry_path) for name, entry in datasets.items()}
    parsed: dict[str, ParsedSource] = {}
    versions: dict[str, list] = {}
    manual: list[str] = []
    summary: dict[str, dict] = {}
    for name, future in prepared.items():
        try:
            info = future.result()
        except ManualDownloadRequired as err:
            manual.append(str(err))
            continue
        if info["missing"]:
            log.warning("%s", info["missing"])
            continue
        parsed[name] = parse_dataset(name, datasets[name], info["roots"], seed)
        versions[name] = info["versions"]
        if parsed[name].skipped:
            log.warning("%s: %d item(s) skipped, e.g. %s", name, len(parsed[name].skipped), parsed[name].skipped[0])
    for name, spec in (config.get("derived") or {}).items():
        sources = spec.get("from", "")
        sources = list(sources) if isinstance(sources, list | tuple) else [sources]
        missing = [s for s in sources if s not in parsed]
        if missing:
            log.warning("derived set %s: its source(s) %s not built, skipped", name, missing)
            continue
        base = _merge([parsed[s] for s in sources])
        kind = spec.get("kind")
        if kind == "restoration":
            parsed[name] = derived_sets.restoration_set(base, spec.get("tasks"), int(spec.get("variants", 1)), seed, name)
        elif kind == "super_resolution":
            parsed[name] = derived_sets.super_resolution_set(base, tuple(spec.get("factors", (4, 8))), seed,
                                                             bool(spec.get("emit_pd", False)), name)
        elif kind == "haze":
            parsed[name] = derived_sets.haze_set(base, seed, spec.get("names"), spec.get("split", "test"), name)
        else:
            raise ValueError(f"derived set {name}: kind must be restoration, super_resolution or haze, got {kind!r}")
        versions[name] = [v for s in sources for v in versions.get(s, [])]
    degraded = config.get("degraded_eval") or {}
    for name in degraded.get("datasets", []) or []:
        if name not in parsed:
            log.warning("degraded evaluation sets of %s: data set not built, skipped", name)
            continue
        parsed[f"{name}-degraded"] = derived_sets.degraded_sets(parsed[name], degraded.get("split", "test"),
                                                                degraded.get("tasks"), seed)
        versions[f"{name}-degraded"] = versions.get(name, [])
    for name, source in parsed.items():
        summary[name] = {}
        for split in source.splits():
            summary[name][split] = build_split(out, name, split, source, config, versions.get(name))
    atomic_write_text(out / "shards" / "summary.json", json.dumps(summary, indent=2, sort_keys=True))
    if manual:
        raise ManualDownloadRequired("\n".join(manual))
    return summary


@flow(name="build-datasets")
def build_datasets(config: dict | None = None, out_dir: str = "data", task_runner: str | None = None) -> dict:
    """Build every configured data set into WebDataset shards under ``<out_dir>/shards``.

    ``config``: the ``data`` section (or the whole resolved params; ``None`` reads params.yaml).
    ``task_runner`` overrides ``data.task_runner`` (``threads``, ``dask``, ``ray``). Returns
    ``{dataset: {split: {"stage1"/"fusion": count}}}``. Data sets that need a manual download
    are reported in one message (what to fetch, where to put it) after the others are built.
    """
    cfg = resolve_config(config)
    runner = make_task_runner(task_runner or cfg.get("task_runner"), cfg.get("task_runner_options"))
    summary = _build_all.with_options(task_runner=runner)(cfg, str(out_dir))
    return summary


def main(argv: list[str] | None = None) -> int:
    """``serve``: serve the deployment; ``run``: run the flow in-process."""
    parser = argparse.ArgumentParser(description="build-datasets flow: serve a deployment or run in-process")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in ("serve", "run"):
        p = sub.add_parser(cmd)
        p.add_argument("--params", default=None, help="params.yaml to read the data section from")
        p.add_argument("--profile", default=None, help="params profile (default: the file's)")
        p.add_argument("--config", default=None, help="JSON file holding the data section (overrides --params)")
        p.add_argument("--out-dir", default="data", help="output root (shards go to <out-dir>/shards)")
        p.add_argument("--task-runner", default=None, choices=["threads", "dask", "ray"])
        if cmd == "serve":
            p.add_argument("--name", default="local", help="deployment name: run it as build-datasets/<name>")
    args = parser.parse_args(argv)
    if args.config:
        cfg = json.loads(Path(args.config).read_text())
    else:
        try:
            from lure.config import load_params

            cfg = load_params(args.params, args.profile)
        except (ImportError, FileNotFoundError):
            cfg = _read_params()
    cfg = resolve_config(cfg)
    out_dir = str(Path(args.out_dir).resolve())
    if args.command == "serve":
        build_datasets.serve(name=args.name, parameters={"config": cfg, "out_dir": out_dir,
                                                         "task_runner": args.task_runner})
        return 0
    print(json.dumps(build_datasets(cfg, out_dir, args.task_runner), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
