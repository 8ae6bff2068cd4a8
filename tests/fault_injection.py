"""Run ``pipelines.stages.train`` with a NaN loss injected on one rank (for the multi-process tests):

    torchrun --nproc_per_node=2 tests/fault_injection.py --nan-rank 1 --nan-step 3 -- stage1 --params ...

On rank ``--nan-rank`` the stage objective's loss of step ``--nan-step`` (counted from 1) becomes
NaN; everything else is the real training stage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lure.training.objectives import CombinedObjective  # noqa: E402
from pipelines.stages import train  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nan-rank", type=int, required=True)
    parser.add_argument("--nan-step", type=int, required=True)
    parser.add_argument("train_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if int(os.environ.get("RANK", "0")) == args.nan_rank:
        original, calls = CombinedObjective.forward, [0]

        def forward(self, inputs):
            total, parts = original(self, inputs)
            calls[0] += 1
            return (total * float("nan"), parts) if calls[0] == args.nan_step else (total, parts)

        CombinedObjective.forward = forward
    return train.main([a for a in args.train_args if a != "--"])


if __name__ == "__main__":
    sys.exit(main())
