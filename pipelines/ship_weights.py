"""Ship a trained model with the project: ``weights/<name>.pt`` plus its ``weights/manifest.json`` entry.

Usage (after ``dvc exp run -S profile=real``, i.e. the pipeline trained and evaluated a profile)::

    python -m pipelines.ship_weights --name lure-real --profile real --default \\
        --training stage1_wall_s=3000 --training stage2_wall_s=600

The entry records the file's sha256 and size, the profile and its model configuration and
parameter counts, the git commit of the code (and whether the training code had uncommitted
changes), the training data (each training set's shard-manifest sha256, and a location-free
content hash of every source folder), the held-out metrics of ``results/metrics.json`` and any
``--training key=value`` facts (wall times, steps). It then rewrites the model card
``weights/README.md`` (:mod:`lure.model_card`) from the manifest; ``--card`` only rewrites the card::

    python -m pipelines.ship_weights --card

Not a DVC stage on purpose: ``make demo`` must never overwrite the shipped weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from lure.config import load_params
from lure.fileio import sha256_file
from lure.model_card import write_card
from lure.paths import REPO_ROOT, display_path
from lure.weights import WEIGHTS_DIR, export_weights, folder_digest, write_manifest_entry


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def training_data(params: dict, data_root: Path) -> dict:
    """Training sets' shard-manifest sha256 and the source folders' content hashes."""
    from pipelines.flows.build_datasets import resolve_root

    sets = {}
    for stage in ("stage1", "stage2"):
        for item in params[stage]["train_sets"]:
            manifest = data_root / "shards" / item / "manifest.json"
            if manifest.is_file():
                info = json.loads(manifest.read_text())
                kind = "stage1" if stage == "stage1" else "fusion"
                sets[item] = {"manifest_sha256": sha256_file(manifest), "samples": info.get(kind, {}).get("count"),
                              "shards": {e["name"]: e["sha256"] for e in info.get(kind, {}).get("shards", [])}}
    sources = {}
    for name, entry in (params["data"].get("datasets") or {}).items():
        if "root" in entry:
            root = resolve_root(str(entry["root"]))
            if root is not None and root.is_dir():
                sources[name] = {"root": str(entry["root"]), **folder_digest(root)}
    return {"train_sets": sets, "sources": sources}


def heldout_metrics(metrics_path: Path) -> dict:
    """The evaluation stage's metrics (vanilla and degraded tables), as written."""
    return json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", action="store_true",
                        help="only (re)write the model card weights/README.md from weights/manifest.json")
    parser.add_argument("--name", help="weights name; the file is weights/<name>.pt (required unless --card)")
    parser.add_argument("--profile", help="the params.yaml profile that trained it (required unless --card)")
    parser.add_argument("--checkpoint", default="checkpoints/stage2/model.pt")
    parser.add_argument("--metrics", default="results/metrics.json")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--default", action="store_true", help="make it the weights lure fuse/restore use")
    parser.add_argument("--code-commit", default=None,
                        help="commit of the code that trained it (default: HEAD, checked for uncommitted changes)")
    parser.add_argument("--training", action="append", default=[], metavar="KEY=VALUE",
                        help="a training fact to record (repeatable), e.g. stage1_wall_s=3000")
    args = parser.parse_args(argv)
    if args.card:
        print(f"wrote {display_path(write_card())}")
        return 0
    if not args.name or not args.profile:
        parser.error("--name and --profile are required (or --card to rewrite the model card only)")
    params = load_params(profile=args.profile)
    out = WEIGHTS_DIR / f"{args.name}.pt"
    exported = export_weights(args.checkpoint, out)
    if exported["profile"] != args.profile:
        print(f"ship_weights: error: {args.checkpoint} was trained with profile {exported['profile']!r}, "
              f"not {args.profile!r}", file=sys.stderr)
        out.unlink()
        return 2
    dirty = "" if args.code_commit else _git("status", "--porcelain", "--", "lure", "data_prep", "pipelines",
                                             "params.yaml")
    entry = {
        "file": out.name, **exported,
        "code_commit": _git("rev-parse", args.code_commit or "HEAD"), "code_uncommitted_changes": bool(dirty),
        "training": {k: _value(v) for k, v in (item.split("=", 1) for item in args.training)},
        "training_data": training_data(params, Path(args.data_root)),
        "heldout_metrics": heldout_metrics(Path(args.metrics)),
    }
    write_manifest_entry(args.name, entry, default=args.default)
    card = write_card()
    print(f"wrote {out} ({exported['bytes'] / 1e6:.1f} MB, sha256 {exported['sha256']}), its manifest entry "
          f"and the model card {display_path(card)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
