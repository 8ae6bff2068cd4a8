"""DVC stage ``build_data``: run the build-datasets flow in-process on the ``data`` section.

Usage: ``python -m pipelines.stages.build_data [--params params.yaml] [--profile demo] [--out data]``
Writes ``<out>/shards/...`` (layout: :mod:`data_prep.shards`) and prints the summary as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipelines.flows.build_datasets import build_datasets, resolve_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None, help="params.yaml (default: the repository's)")
    parser.add_argument("--profile", default=None, help="profile to use (default: the file's 'profile')")
    parser.add_argument("--out", default="data", help="output root; shards go to <out>/shards")
    args = parser.parse_args(argv)
    from lure.config import load_params

    config = resolve_config(load_params(args.params, args.profile))
    summary = build_datasets(config=config, out_dir=args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
