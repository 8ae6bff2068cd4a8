"""DVC stage entry: ``python -m pipelines.stages.evaluate``.

Reads the resolved ``params.yaml`` and runs :func:`lure.evaluation.runner.evaluate` with the
pipeline's final model (``checkpoints/stage2/model.pt``); writes tables, grids, fused images and
``results/metrics.json``.
"""

from __future__ import annotations

import argparse
import sys

from lure.config import load_params
from lure.evaluation.runner import evaluate
from lure.runtime import retain_freed_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=None, help="params.yaml (default: the repository's)")
    parser.add_argument("--profile", default=None, help="override the profile selected in params.yaml")
    parser.add_argument("--checkpoint", default="checkpoints/stage2/model.pt")
    parser.add_argument("--out", default="results", help="output folder")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    retain_freed_memory()
    try:
        params = load_params(args.params, profile=args.profile)
        result = evaluate(
            params, args.checkpoint, out_dir=args.out, data_root=args.data_root, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"evaluate: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    tables = len(result["vanilla"]) + len(result["degraded"]) + bool(result.get("paired"))
    print(f"evaluate: {tables} tables in {args.out} ({result['seconds']:.0f} s)")
    for note in result["notes"]:
        print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
