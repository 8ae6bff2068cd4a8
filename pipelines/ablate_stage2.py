"""Stage-2 loss ablation: train the fusion module once per loss variant on the frozen stage-1
model and score each on held-out pairs; writes one table (Markdown + CSV).

Usage::

    python -m pipelines.ablate_stage2 --profile real --stage1 runs/real/checkpoints/stage1/model.pt \\
        --steps 200 --out results/real/ablation_stage2

Each variant is the profile's ``stage2`` section with the keys of one entry of :data:`VARIANTS`
overridden (and ``steps``); it trains under ``runs/ablation/<variant>`` with the same seed, data
and stage-1 weights, then fuses the pairs of ``--pairs`` (default: the profile's first evaluation
set, e.g. the held-out RoadScene pairs) with pseudo descriptions and scores them with the
reference metrics. The variant with the lowest mean rank over the metric columns is marked as chosen.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lure.config import load_params
from lure.paths import display_path
from lure.runtime import retain_freed_memory

#: name -> stage2 overrides (ours): the U2Fusion-role term, the max-intensity term, their weights.
VARIANTS: dict[str, dict] = {
    "colour+grad": {"perceptual": "none", "perceptual_weight": 0.0, "intensity_weight": 0.0},
    "+intensity": {"perceptual": "none", "perceptual_weight": 0.0, "intensity_weight": 1.0},
    "+structure": {"perceptual": "structure", "perceptual_weight": 1.0, "intensity_weight": 0.0},
    "+latent": {"perceptual": "latent", "perceptual_weight": 1.0, "intensity_weight": 0.0},
    "+intensity+structure": {"perceptual": "structure", "perceptual_weight": 1.0, "intensity_weight": 1.0},
    "+intensity+latent": {"perceptual": "latent", "perceptual_weight": 1.0, "intensity_weight": 1.0},
    "+intensity+structure x0.3": {"perceptual": "structure", "perceptual_weight": 0.3, "intensity_weight": 1.0},
}
COLUMNS = ("EN", "SD", "SF", "AG", "SCD", "Qabf", "VIF", "SSIM", "MS_SSIM")


def run_variant(name: str, overrides: dict, params: dict, stage1: Path, root: Path, data_root: Path,
                steps: int, crop: int | None = None) -> Path:
    """Train stage 2 with ``overrides`` under ``root/<name>``; returns the final checkpoint."""
    from lure.training.trainer import StageOutputs, train

    run = dict(params)
    run["stage2"] = {**params["stage2"], **overrides, "steps": steps, "eval_every": 10**9}
    if crop:
        run["stage2"]["crop"] = crop
    folder = root / "".join(c if c.isalnum() else "_" for c in name)
    outputs = StageOutputs(folder / "checkpoints" / "stage2", folder / "dvclive" / "stage2")
    outputs.stage1_model_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(stage1, outputs.stage1_model_path)
    if not outputs.model_path.is_file():
        train("stage2", run, outputs, data_root=data_root, progress=True)
    return outputs.model_path


def score(checkpoint: Path, pairs: list, backbone: str | None) -> dict[str, float]:
    """Mean reference metrics of LURE (pseudo descriptions) on ``pairs``."""
    from lure.evaluation.scoring import Scorer
    from lure.evaluation.tables import mean_rows
    from lure.inference import Fuser

    fuser = Fuser.from_checkpoint(checkpoint, text_backbone=backbone)
    scorer = Scorer(None, [], [])
    rows = [scorer(fuser.fuse(ir, vi), ir, vi) for _key, ir, vi in pairs]
    return mean_rows({"x": rows})["x"]


def mean_ranks(rows: dict[str, dict[str, float]], columns: tuple[str, ...]) -> dict[str, float]:
    """Each row's rank (1 = highest value) per column, averaged over ``columns`` (ties share the best rank)."""
    ranks = {n: 0.0 for n in rows}
    for c in columns:
        values = sorted((r[c] for r in rows.values()), reverse=True)
        for n, r in rows.items():
            ranks[n] += 1 + values.index(r[c])
    return {n: v / len(columns) for n, v in ranks.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="real")
    parser.add_argument("--stage1", required=True, help="frozen stage-1 checkpoint")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--crop", type=int, default=None, help="training crop (default: the profile's)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="subset of the variants")
    parser.add_argument("--pairs", default=None, help="pair set to score (default: evaluate.pair_sets[0])")
    parser.add_argument("--max-pairs", type=int, default=0, help="score the first N pairs only (0 = all)")
    parser.add_argument("--root", default="runs/ablation")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="results/real/ablation_stage2")
    args = parser.parse_args(argv)
    retain_freed_memory()
    from lure.evaluation.pair_sets import load_pair_set
    from lure.evaluation.tables import write_table

    params = load_params(profile=args.profile)
    spec = args.pairs or params["evaluate"]["pair_sets"][0]
    pair_set = load_pair_set(spec, args.data_root, args.max_pairs)
    if pair_set is None or not pair_set.pairs:
        print(f"ablate_stage2: error: pair set {spec} not found under {args.data_root}", file=sys.stderr)
        return 1
    backbone = (params.get("text_encoder") or {}).get("backbone")
    rows: dict[str, dict[str, float]] = {}
    for name in args.variants:
        checkpoint = run_variant(name, VARIANTS[name], params, Path(args.stage1), Path(args.root),
                                 Path(args.data_root), args.steps, args.crop)
        rows[name] = score(checkpoint, pair_set.pairs, backbone)
        print(name, " ".join(f"{c}={rows[name][c]:.3f}" for c in COLUMNS), flush=True)
    ranks = mean_ranks(rows, COLUMNS)
    best = min(ranks, key=ranks.get)
    labels = {n: f"{n} (intensity {VARIANTS[n]['intensity_weight']:g}, {VARIANTS[n]['perceptual']} "
                 f"{VARIANTS[n]['perceptual_weight']:g}){' **chosen**' if n == best else ''}" for n in rows}
    for n in rows:
        rows[n]["mean rank"] = ranks[n]
    notes = [f"stage 2 trained {args.steps} steps per variant (crop {args.crop or params['stage2']['crop']}) on the "
             f"frozen stage-1 model {display_path(args.stage1)}; colour weight 1, gradient weight "
             f"{params['stage2']['gradient_weight']}; scored on {spec} ({len(pair_set.pairs)} held-out pairs, "
             "pseudo descriptions), means over pairs",
             "mean rank: the variant's rank per metric column averaged over the nine columns (1 = best); "
             "the lowest mean rank is chosen; in brackets: stage2.intensity_weight, stage2.perceptual (the "
             "U2Fusion-role term) and stage2.perceptual_weight"]
    columns = (*COLUMNS, "mean rank")
    write_table(args.out, f"Stage-2 loss ablation ({args.profile} profile)", rows, columns, labels,
                {n: len(pair_set.pairs) for n in rows}, notes)
    from lure.fileio import atomic_write_text

    atomic_write_text(Path(f"{args.out}.json"), json.dumps({"chosen": best, "overrides": VARIANTS[best],
                                                            "rows": rows}, indent=2, default=str))
    print(f"wrote {args.out}.md/.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
