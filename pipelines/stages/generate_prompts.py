"""DVC stage ``prompts``: run the generate-prompts flow in-process.

Usage: ``python -m pipelines.stages.generate_prompts [--params params.yaml] [--out prompts/generated.json]``
"""

from __future__ import annotations

import argparse
import json

from pipelines.flows.generate_prompts import generate_prompts, read_prompts_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None, help="params.yaml to read the prompts section from")
    parser.add_argument("--out", default="prompts/generated.json", help="output JSON path")
    args = parser.parse_args(argv)
    summary = generate_prompts(params=read_prompts_params(args.params), out=args.out)
    kept = {key: f"{s['kept']}/{s['candidates']}" for key, s in summary["stats"].items()}
    print(json.dumps({"out": summary["out"], "kept": kept, "s_per_call": round(summary["s_per_call"], 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
