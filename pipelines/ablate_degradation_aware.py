"""Degradation-aware stage 2 ablation: does training the fusion module on degraded pairs (with
their task descriptions, against the clean sources) close the gap between one LURE pass and
restore-then-fuse? Writes one table (Markdown + CSV + JSON).

Usage::

    python -m pipelines.ablate_degradation_aware --profile real \\
        --stage1 runs/real/checkpoints/stage1/model.pt --steps 150 --pairs 3 \\
        --data-root data --out results/real/ablation_degradation_aware

Each variant is the profile's ``stage2`` section with the keys of one entry of :data:`VARIANTS`
(``stage2.degraded_fraction``, ``stage2.consistency_weight``) overridden; it trains under
``runs/ablation/<variant>`` on the same frozen stage-1 weights (:func:`pipelines.ablate_stage2.run_variant`).
Every degraded set of ``evaluate.tasks`` (first ``--pairs`` pairs of ``evaluate.degraded_from``)
is then fused three ways — one pass with the task descriptions, one pass with pseudo
descriptions, restore-then-fuse — and scored by PSNR against the variant's own fusion of the
clean pair (as the evaluate stage does).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lure.config import load_params
from lure.paths import display_path
from lure.runtime import retain_freed_memory

#: name -> stage2 overrides (ours).
VARIANTS: dict[str, dict] = {
    "clean pairs (paper)": {"degraded_fraction": 0.0, "consistency_weight": 0.0},
    "50 % degraded": {"degraded_fraction": 0.5, "consistency_weight": 0.0},
    "50 % degraded + consistency 1": {"degraded_fraction": 0.5, "consistency_weight": 1.0},
}
#: column -> method of :func:`lure.evaluation.baselines.run_method`.
METHODS = {"one pass": "lure", "pd texts": "lure_pseudo", "restore+fuse": "restore_then_fuse"}


def psnr_uint8(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = float(np.mean((output.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return 10.0 * float(np.log10(255.0**2 / max(mse, 1e-10)))


def score_degraded_sets(checkpoint: Path, sets: dict[str, list[dict]], backbone: str | None) -> dict[str, dict]:
    """``{task: {column: mean PSNR}}`` of the three fusions of each degraded set."""
    from lure.evaluation.baselines import run_method
    from lure.inference import Fuser
    from lure.text.vocabulary import TaskPlan

    fuser = Fuser.from_checkpoint(checkpoint, text_backbone=backbone)
    out: dict[str, dict] = {}
    for task, samples in sets.items():
        values: dict[str, list[float]] = {c: [] for c in METHODS}
        for s in samples:
            reference = fuser.fuse(s["ir_clean"], s["vi_clean"], TaskPlan())
            for column, method in METHODS.items():
                fused = run_method(method, fuser, s["ir"], s["vi"], s["vi_task"], s["ir_task"])
                values[column].append(psnr_uint8(fused, reference))
        out[task] = {c: float(np.mean(v)) for c, v in values.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="real")
    parser.add_argument("--stage1", required=True, help="frozen stage-1 checkpoint")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pairs", type=int, default=3, help="pairs per degraded set")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="subset of the variants")
    parser.add_argument("--root", default="runs/ablation")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--out", default="results/real/ablation_degradation_aware")
    args = parser.parse_args(argv)
    retain_freed_memory()
    from lure.evaluation.pair_sets import degraded_samples, load_pair_set
    from lure.evaluation.tables import write_table
    from lure.fileio import atomic_write_text
    from pipelines.ablate_stage2 import run_variant

    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        print(f"ablate_degradation_aware: error: unknown variant(s) {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    params = load_params(profile=args.profile)
    evaluate = params["evaluate"]
    source = load_pair_set(evaluate["degraded_from"], args.data_root, 0)
    if source is None or not source.pairs:
        print(f"ablate_degradation_aware: error: pair set {evaluate['degraded_from']} not found under "
              f"{args.data_root}", file=sys.stderr)
        return 1
    seed = int(params.get("seed", 0))
    sets = {t: degraded_samples(source, t, args.data_root, seed, args.pairs)[0] for t in evaluate["tasks"]}
    backbone = (params.get("text_encoder") or {}).get("backbone")
    results: dict[str, dict] = {}
    for name in args.variants:
        checkpoint = run_variant(name, VARIANTS[name], params, Path(args.stage1), Path(args.root),
                                 Path(args.data_root), args.steps)
        results[name] = score_degraded_sets(checkpoint, sets, backbone)
        print(name, json.dumps(results[name]), flush=True)
    rows, labels = {}, {}
    for name, per_task in results.items():
        for task, values in per_task.items():
            key = f"{name} / {task}"
            rows[key] = {**values, "one pass - restore+fuse": values["one pass"] - values["restore+fuse"]}
            labels[key] = f"{name} / {task.upper()}"
    columns = (*METHODS, "one pass - restore+fuse")
    notes = [f"stage 2 trained {args.steps} steps per variant on the frozen stage-1 model {display_path(args.stage1)}; "
             f"first {args.pairs} pairs of each degraded set of {evaluate['degraded_from']}; PSNR (dB) against the "
             "variant's own fusion of the clean pair",
             "variants: stage2.degraded_fraction (share of degraded training pairs) and stage2.consistency_weight"]
    write_table(args.out, f"Degradation-aware stage 2 ablation ({args.profile} profile)", rows, columns, labels,
                {k: args.pairs for k in rows}, notes)
    atomic_write_text(Path(f"{args.out}.json"), json.dumps({"variants": {n: VARIANTS[n] for n in results},
                                                            "results": results}, indent=2))
    print(f"wrote {args.out}.md/.csv/.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
