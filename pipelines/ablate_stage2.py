"""Stage-2 loss ablation: train the fusion module once per loss variant on the frozen stage-1
model and score each on held-out pairs; writes one summary table and one table per pair set
(Markdown + CSV).

Usage::

    python -m pipelines.ablate_stage2 --profile real --stage1 runs/real/checkpoints/stage1/model.pt \\
        --steps 400 --out results/real/ablation_stage2

Each variant is the profile's ``stage2`` section with the keys of one entry of :data:`VARIANTS`
overridden (and ``steps``); it trains under ``runs/ablation/<variant>`` with the same seed, data
and stage-1 weights, then fuses the pairs of each set of ``--pairs`` (default: every set of the
profile's ``evaluate.pair_sets``, e.g. RoadScene held-out, LLVIP test and MSRS) with pseudo
descriptions and scores them with the reference metrics. ``--reuse NAME=CKPT`` scores an
existing stage-2 checkpoint as variant NAME instead of training it (e.g. the shipped weights);
``--tables-from OUT.json`` writes the tables of a finished ablation again without scoring.
Per set, each variant gets its mean rank over the metric columns; the variant with the lowest
average of those ranks over the sets is marked as chosen.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lure.config import load_params
from lure.evaluation.tables import mean_ranks
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
    "+intensity x2+structure": {"perceptual": "structure", "perceptual_weight": 1.0, "intensity_weight": 2.0},
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


def parse_reuse(items: list[str], variants: dict[str, dict]) -> dict[str, Path]:
    """``NAME=CKPT`` entries of ``--reuse`` -> ``{NAME: Path(CKPT)}``; unknown names and missing files are errors."""
    reuse: dict[str, Path] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or name not in variants:
            raise ValueError(f"--reuse {item!r}: expected NAME=CKPT with NAME one of {sorted(variants)}")
        if not Path(path).is_file():
            raise ValueError(f"--reuse {item!r}: checkpoint {path} does not exist")
        reuse[name] = Path(path)
    return reuse


def summary_rows(per_set: dict[str, dict[str, dict[str, float]]], columns: tuple[str, ...]
                 ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Per variant: Qabf and SD of each set and ``mean rank``, the average over the sets of the
    variant's mean rank in that set; returns them and the sets' ranks ``{variant: {set: rank}}``.
    ``per_set``: ``{set: {variant: {metric: value}}}``."""
    summary: dict[str, dict[str, float]] = {}
    set_ranks: dict[str, dict[str, float]] = {}
    for name, rows in per_set.items():
        ranks = mean_ranks(rows, columns)
        for variant, row in rows.items():
            summary.setdefault(variant, {}).update({f"{name} Qabf": row["Qabf"], f"{name} SD": row["SD"]})
            set_ranks.setdefault(variant, {})[name] = ranks[variant]
    for variant, row in summary.items():
        row["mean rank"] = sum(set_ranks[variant].values()) / len(per_set)
    return summary, set_ranks


def write_ablation(out: Path, run: dict) -> None:
    """Write ``out``.md/.csv (summary over the sets), ``out``_<set>.md/.csv and ``out``.json from
    ``run``: ``profile``, ``sets`` (``[{slug, spec, pairs}]``), ``trained`` (how the variants were
    trained, a note), ``reused`` (variant names scored from existing checkpoints) and ``per_set``
    (``{slug: {variant: {metric: value}}}``). The JSON holds ``run`` too, so ``--tables-from`` can
    write the tables again without scoring."""
    from lure.evaluation.tables import write_table
    from lure.fileio import atomic_write_text

    per_set, sets, reused = run["per_set"], run["sets"], set(run["reused"])
    summary, set_ranks = summary_rows(per_set, COLUMNS)
    best = min(summary, key=lambda n: summary[n]["mean rank"])

    def label(n: str) -> str:
        v = VARIANTS[n]
        return (f"{n} (intensity {v['intensity_weight']:g}, {v['perceptual']} {v['perceptual_weight']:g})"
                f"{' reused' if n in reused else ''}{' **chosen**' if n == best else ''}")

    labels = {n: label(n) for n in summary}
    rank_note = ("mean rank: the variant's rank per metric column (EN, SD, SF, AG, SCD, Qabf, VIF, SSIM, MS-SSIM) "
                 "averaged over the nine columns (1 = best); in brackets: stage2.intensity_weight, "
                 "stage2.perceptual (the U2Fusion-role term) and stage2.perceptual_weight")
    for st in sets:
        rows = per_set[st["slug"]]
        table = {n: {**r, "mean rank": set_ranks[n][st["slug"]]} for n, r in rows.items()}
        write_table(out.parent / f"{out.name}_{st['slug']}", f"Stage-2 loss ablation on {st['spec']} ({run['profile']} profile)",
                    table, (*COLUMNS, "mean rank"), labels, {n: st["pairs"] for n in rows},
                    [f"{run['trained']}; pseudo descriptions, means over {st['pairs']} held-out pairs", rank_note])
    sets_note = "; ".join(f"{st['spec']}: {st['pairs']} held-out pairs" for st in sets)
    per_set_ranks = "; ".join(f"{n} " + " / ".join(f"{set_ranks[n][st['slug']]:.2f}" for st in sets) for n in summary)
    summary_columns = (*[f"{st['slug']} {c}" for st in sets for c in ("Qabf", "SD")], "mean rank")
    write_table(out, f"Stage-2 loss ablation ({run['profile']} profile), all held-out sets", summary, summary_columns,
                labels, {n: sum(st["pairs"] for st in sets) for n in summary},
                [run["trained"], f"scored with pseudo descriptions on {sets_note}; per-set tables: {out.name}_<set>.md",
                 "mean rank: the average over the sets of the variant's mean rank in that set (per-set tables; "
                 "1 = best in every metric); the lowest is chosen. Per set ("
                 + " / ".join(st["slug"] for st in sets) + f"): {per_set_ranks}"])
    atomic_write_text(out.parent / f"{out.name}.json",
                      json.dumps({"chosen": best, "overrides": VARIANTS[best], "summary": summary,
                                  "set_ranks": set_ranks, "run": run}, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="real")
    parser.add_argument("--stage1", default=None, help="frozen stage-1 checkpoint (required unless --tables-from)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--crop", type=int, default=None, help="training crop (default: the profile's)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="subset of the variants")
    parser.add_argument("--pairs", nargs="*", default=None,
                        help="pair sets to score (default: every set of evaluate.pair_sets)")
    parser.add_argument("--max-pairs", type=int, default=0, help="score the first N pairs of each set only (0 = all)")
    parser.add_argument("--reuse", nargs="*", default=[], metavar="NAME=CKPT",
                        help="score this stage-2 checkpoint as variant NAME instead of training it")
    parser.add_argument("--root", default="runs/ablation")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="results/real/ablation_stage2")
    parser.add_argument("--tables-from", default=None, metavar="JSON",
                        help="write the tables again from the .json of a finished ablation (no training or scoring)")
    args = parser.parse_args(argv)
    if args.tables_from:
        try:
            run = json.loads(Path(args.tables_from).read_text())["run"]
        except (OSError, ValueError, KeyError) as error:
            print(f"ablate_stage2: error: {args.tables_from} is not an ablation .json with a 'run' entry ({error})",
                  file=sys.stderr)
            return 1
        write_ablation(Path(args.out), run)
        print(f"wrote {args.out}.md/.csv and one table per set")
        return 0
    if args.stage1 is None:
        print("ablate_stage2: error: --stage1 CKPT is required (the frozen stage-1 checkpoint)", file=sys.stderr)
        return 1
    retain_freed_memory()
    from lure.evaluation.pair_sets import load_pair_set

    unknown = [n for n in args.variants if n not in VARIANTS]
    if unknown:
        print(f"ablate_stage2: error: unknown variant(s) {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 1
    try:
        reuse = parse_reuse(args.reuse, VARIANTS)
    except ValueError as error:
        print(f"ablate_stage2: error: {error}", file=sys.stderr)
        return 1
    params = load_params(profile=args.profile)
    pair_sets = []
    for spec in args.pairs or params["evaluate"]["pair_sets"]:
        pair_set = load_pair_set(spec, args.data_root, args.max_pairs)
        if pair_set is None or not pair_set.pairs:
            print(f"ablate_stage2: error: pair set {spec} not found under {args.data_root}", file=sys.stderr)
            return 1
        pair_sets.append(pair_set)
    backbone = (params.get("text_encoder") or {}).get("backbone")
    per_set: dict[str, dict[str, dict[str, float]]] = {ps.slug: {} for ps in pair_sets}
    for name in args.variants:
        checkpoint = reuse.get(name) or run_variant(name, VARIANTS[name], params, Path(args.stage1), Path(args.root),
                                                    Path(args.data_root), args.steps, args.crop)
        for ps in pair_sets:
            per_set[ps.slug][name] = row = score(checkpoint, ps.pairs, backbone)
            print(name, ps.slug, " ".join(f"{c}={row[c]:.3f}" for c in COLUMNS), flush=True)
    trained = (f"stage 2 trained {args.steps} steps per variant (crop {args.crop or params['stage2']['crop']}) on the "
               f"frozen stage-1 model {display_path(args.stage1)}; colour weight 1, gradient weight "
               f"{params['stage2']['gradient_weight']}")
    if reuse:
        trained += "; reused (not trained here): " + ", ".join(f"{n} = {display_path(p)}" for n, p in reuse.items())
    sets = [{"slug": ps.slug, "spec": ps.spec, "pairs": len(ps.pairs)} for ps in pair_sets]
    write_ablation(Path(args.out), {"profile": args.profile, "sets": sets, "trained": trained,
                                    "reused": sorted(reuse), "per_set": per_set})
    print(f"wrote {args.out}.md/.csv and one table per set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
