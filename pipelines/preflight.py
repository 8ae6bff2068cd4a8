"""``python -m pipelines.preflight [options]``: the same as ``lure doctor [options]``.

Checks this machine, the data sets and the batches for a profile and estimates its training time
before a long run (what it reports, units and options: :mod:`lure.doctor`). Exit status 0, or 2
with one line on stderr for a bad profile or parameter file.
"""

from __future__ import annotations

import sys

from lure.cli import main as lure_main


def main(argv: list[str] | None = None) -> int:
    return lure_main(["doctor", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
