"""Is a retrained model the same as another one, bit for bit? Compares the model tensors of two
checkpoints (pipeline checkpoints or shipped weights files; training state is ignored).

Usage (after ``dvc exp run -S profile=real`` retrained the shipped model)::

    python -m pipelines.compare_weights checkpoints/stage2/model.pt --shipped lure-real
    python -m pipelines.compare_weights runA/checkpoints/stage1/model.pt runB/checkpoints/stage1/model.pt

Exit status 0 when the models are identical, 1 when they differ (the largest differences are
listed), 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lure.weights import compare_weights, shipped_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compare_weights", description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a checkpoint or weights file")
    parser.add_argument("second", nargs="?", help="another one (or use --shipped)")
    parser.add_argument("--shipped", metavar="NAME", help="compare with the shipped weights NAME of weights/manifest.json")
    parser.add_argument("--show", type=int, default=10, help="differing tensors to list (largest first)")
    args = parser.parse_args(argv)
    if (args.second is None) == (args.shipped is None):
        parser.error("give a second checkpoint or --shipped NAME (not both)")
    second = args.second
    if args.shipped is not None:
        entries = shipped_weights()
        if args.shipped not in entries:
            parser.error(f"--shipped {args.shipped}: no such weights in weights/manifest.json "
                         f"(shipped: {', '.join(sorted(entries)) or 'none'})")
        second = entries[args.shipped]["path"]
    for path in (args.first, second):
        if not Path(path).is_file():
            parser.error(f"{path} does not exist")
    try:
        result = compare_weights(args.first, second)
    except ValueError as error:
        parser.error(str(error))
    if result.identical:
        print(f"identical: {result.tensors} tensors of {args.first} and {second} are bit-identical")
        return 0
    print(f"different: {args.first} and {second}")
    if result.config_differences:
        print("  configuration ('checkpoint has' = the second, 'expected' = the first):")
    for line in result.config_differences:
        print(f"    {line}")
    for label, names in (("only in the first", result.only_in_first), ("only in the second", result.only_in_second)):
        if names:
            print(f"  {len(names)} tensors {label}: {', '.join(names[:args.show])}")
    if result.differing:
        print(f"  {len(result.differing)} of {result.tensors} shared tensors differ; largest max |a - b|:")
        for name, diff in sorted(result.differing.items(), key=lambda kv: -kv[1])[:args.show]:
            print(f"    {name}: {diff:.3g}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
