"""DVC stage entry: ``python -m pipelines.stages.train stage1|stage2``.

Reads the resolved ``params.yaml`` and runs (or resumes) one training stage; works the same
under ``torchrun --nproc_per_node=N -m pipelines.stages.train stage1``.
"""

from __future__ import annotations

import argparse
import sys

from lure.config import load_params
from lure.runtime import retain_freed_memory
from lure.training.trainer import STAGES, NonFiniteLossError, StageOutputs, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--params", default=None, help="params.yaml (default: the repository's)")
    parser.add_argument("--profile", default=None, help="override the profile selected in params.yaml")
    parser.add_argument("--root", default=".", help="folder receiving checkpoints/ and dvclive/")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--device", default=None,
                        help="cpu or cuda (default: a GPU when visible); under torchrun each process takes "
                             "cuda:LOCAL_RANK; cuda:N only for a single process")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="train on a CPU although the profile requires a GPU (stageN.require_gpu)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--refine-from", default=None, metavar="CKPT",
                        help="stage1 only: start the large-crop refinement (stage1.refine_steps) from this "
                             "first-phase model.pt instead of training the first phase again")
    args = parser.parse_args(argv)
    retain_freed_memory()
    params = load_params(args.params, profile=args.profile)
    try:
        metrics = train(args.stage, params, StageOutputs.default(args.stage, args.root), data_root=args.data_root,
                        device=args.device, progress=not args.no_progress, refine_from=args.refine_from,
                        allow_cpu=args.allow_cpu)
    except (NonFiniteLossError, FileNotFoundError, ValueError) as error:
        print(f"train {args.stage}: error: {error}", file=sys.stderr)
        return 1
    if metrics:
        print(" ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if not k.startswith("rule_")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
