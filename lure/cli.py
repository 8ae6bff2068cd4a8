"""The ``lure`` command line: ``lure info``, ``lure fuse``, ``lure restore`` and ``lure doctor``."""

from __future__ import annotations

import argparse
import json
import sys

from lure.config import load_params, model_config
from lure.runtime import retain_freed_memory


def _cmd_info(args: argparse.Namespace) -> int:
    from lure.info import model_info
    from lure.weights import default_shipped, shipped_weights, verify

    weights = shipped_weights()
    default = (default_shipped() or {}).get("name")
    shipped = [{"name": name, "file": e["file"], "profile": e.get("profile"), "sha256": e["sha256"],
                "parameters": e.get("parameters"), "default": name == default, "verified": verify(e),
                "detail_default": _detail_default(e)}
               for name, e in weights.items()]
    if args.weights:
        if args.json:
            print(json.dumps(shipped, indent=2))
        else:
            _print_weights(shipped)
        return 0
    params = load_params(args.params, profile=args.profile)
    info = model_info(model_config(params), latency=args.latency, height=args.height, width=args.width)
    info = {"profile": params["profile"], **info, "shipped_weights": shipped}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        p = info["parameters"]
        print(f"profile {info['profile']}: {p['total'] / 1e6:.2f} M parameters "
              f"(text projection {p['text_projection'] / 1e6:.3f} M, encoder {p['encoder'] / 1e6:.2f} M, "
              f"decoder {p['decoder'] / 1e6:.2f} M, fusion {p['fusion'] / 1e6:.2f} M)")
        print(f"{info['gflops']:.1f} GFLOPs per {args.width}x{args.height} pair")
        if args.latency:
            print(f"CPU latency {info['latency_s'] * 1000:.0f} ms ({info['threads']} threads)")
        _print_weights(shipped)
    return 0


def _detail_default(entry: dict) -> float | None:
    """The default detail level of a shipped model with detail control (``None``: no control)."""
    config = entry.get("model_config") or {}
    return float(config.get("detail_default", 0.0)) if config.get("detail_control") else None


def _print_weights(shipped: list[dict]) -> None:
    from lure.weights import PIPELINE_CHECKPOINT

    if not shipped:
        print("shipped weights: none")
    else:
        print("shipped weights (weights/manifest.json):")
    for w in shipped:
        count = w.get("parameters")
        count = count.get("total") if isinstance(count, dict) else count
        params = f"{count / 1e6:.2f} M parameters, " if count else ""
        state = "ok" if w["verified"] else "MISSING OR MODIFIED"
        detail = ("" if w.get("detail_default") is None
                  else f"--detail 0..1 (default {w['detail_default']:g}), ")
        print(f"  {w['name']}{' (default)' if w['default'] else ''}: {w['file']}, profile {w['profile']}, "
              f"{params}{detail}sha256 {w['sha256'][:12]}... {state}")
    default = next((w["name"] for w in shipped if w["default"]), None)
    trained = "trained" if PIPELINE_CHECKPOINT.is_file() else "not trained yet (make demo)"
    if default:
        print(f"lure fuse / lure restore use {default}; --checkpoint NAME picks another shipped file, "
              f"--checkpoint pipeline the pipeline's model checkpoints/stage2/model.pt ({trained})")
    else:
        print(f"lure fuse / lure restore use the pipeline's model checkpoints/stage2/model.pt ({trained})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lure", description="LURE degradation-aware infrared/visible fusion")
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameter counts and forward GFLOPs of a profile")
    info.add_argument("--profile", default=None, help="profile in params.yaml (default: its `profile` key)")
    info.add_argument("--params", default=None, help="path to params.yaml (default: the repository's)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--latency", action="store_true", help="also time one forward pass on this CPU")
    info.add_argument("--height", type=int, default=480)
    info.add_argument("--width", type=int, default=640)
    info.add_argument("--weights", action="store_true", help="only list the shipped weights")
    info.set_defaults(func=_cmd_info)

    from lure.doctor import add_doctor_parser
    from lure.fuse_cli import add_fuse_parser
    from lure.restore_cli import add_restore_parser

    add_doctor_parser(sub)
    add_fuse_parser(sub)
    add_restore_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    retain_freed_memory()
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as error:
        print(f"lure {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
