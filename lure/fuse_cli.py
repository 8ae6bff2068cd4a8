"""``lure fuse``: fuse one infrared/visible pair, or two folders of pairs matched by file name.

Examples::

    lure fuse --ir ir.png --vi vi.jpg --text "the visible image is too dark" --out fused.png
    lure fuse --ir ir.tif --vi vi.png --vi-task oe --ir-task lc
    lure fuse --ir-dir data/ir --vi-dir data/vi --out-dir fused/

The request text goes through :func:`lure.text.parser.parse`; ``--vi-task``/``--ir-task`` set
(or override) the plan directly. Outputs are 8-bit images with the visible image's size and
colour (see :mod:`lure.inference`), written under a temporary name and renamed into place, so a
failed or killed run never leaves a partial file. Exit codes: 0 success, 1 some pairs of a
folder run failed (the others are written), 2 bad input or request (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lure import image_io
from lure.image_io import WRITE_FORMATS, read_image, write_image
from lure.text.vocabulary import INFRARED, MODALITY_TASKS, VISIBLE


class InputError(ValueError):
    """A problem with the user's input; the message is one line naming the file or option."""


def image_size(array: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an image array."""
    return int(array.shape[1]), int(array.shape[0])


#: Size ratios (visible / infrared, both sides) for which a smaller infrared image is upsampled.
SR_FACTORS = {4: "sr4", 8: "sr8"}


def infrared_scale(ir: np.ndarray, vi: np.ndarray) -> int | None:
    """``4`` or ``8`` when the infrared image is that many times smaller than the visible one on
    both sides (each side within one factor's rounding), ``1`` for equal sizes, else ``None``."""
    (iw, ih), (vw, vh) = image_size(ir), image_size(vi)
    if (iw, ih) == (vw, vh):
        return 1
    for factor in SR_FACTORS:
        if 0 <= vw - factor * iw < factor and 0 <= vh - factor * ih < factor:
            return factor
    return None


def upsample_infrared(ir: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic resize of an 8/16-bit infrared image to ``size = (width, height)``, same dtype."""
    from PIL import Image

    grey = ir if ir.ndim == 2 else ir[:, :, :3].mean(axis=2) if ir.shape[2] > 1 else ir[:, :, 0]
    top = 255.0 if ir.dtype == np.uint8 else 65535.0
    up = np.asarray(Image.fromarray(np.asarray(grey, dtype=np.float32), mode="F").resize(size, Image.BICUBIC))
    return np.clip(np.round(up), 0, top).astype(ir.dtype)


def check_pair(ir: np.ndarray, vi: np.ndarray, ir_path: Path, vi_path: Path) -> int:
    """The infrared scale factor of a pair (:func:`infrared_scale`); an error naming both sizes
    for any other mismatch."""
    factor = infrared_scale(ir, vi)
    if factor is None:
        (iw, ih), (vw, vh) = image_size(ir), image_size(vi)
        raise InputError(
            f"infrared {ir_path.name} is {iw}x{ih} but visible {vi_path.name} is {vw}x{vh}: "
            "the pair must be registered to the same size (or the infrared image 4 or 8 times smaller on both sides)"
        )
    return factor


def match_infrared(ir: np.ndarray, vi: np.ndarray, ir_path: Path, vi_path: Path, plan, explicit_ir_task: bool):
    """``(infrared at the visible size, plan, note)``: a 4x/8x smaller infrared image is upsampled
    bicubically and, unless the request named an infrared task, its task becomes ``sr4``/``sr8``;
    ``note`` says so (``None`` for equal sizes)."""
    from lure.text.vocabulary import TaskPlan

    factor = check_pair(ir, vi, ir_path, vi_path)
    if factor == 1:
        return ir, plan, None
    up = upsample_infrared(ir, image_size(vi))
    task = SR_FACTORS[factor]
    if plan.infrared == "pd" and not explicit_ir_task:
        plan = TaskPlan(visible=plan.visible, infrared=task, detail=plan.detail)
        how = f"infrared task {task}"
    else:
        how = f"infrared task {plan.infrared} as requested"
    (iw, ih), (vw, vh) = image_size(ir), image_size(vi)
    return up, plan, (f"note: infrared {ir_path.name} is {iw}x{ih}, {factor}x smaller than visible {vi_path.name} "
                      f"({vw}x{vh}): upsampled bicubically, {how}")


def low_range_note(ir: np.ndarray, ir_path: Path, ir_range: str) -> str | None:
    """A hint when a 16-bit infrared image uses under 1/16 of the 16-bit range with full scaling."""
    if ir.dtype == np.uint16 and ir_range == "full" and int(ir.max()) - int(ir.min()) < 4096:
        return (
            f"note: 16-bit infrared {ir_path.name} spans only {int(ir.min())}..{int(ir.max())} of 0..65535; "
            "if these are raw sensor counts, add --ir-range stretch"
        )
    return None


# ----------------------------------------------------------------------------- the command
@dataclass
class PairResult:
    stem: str
    output: Path | None = None
    reason: str | None = None


def _plan(args: argparse.Namespace):
    from lure.inference import Fuser
    from lure.text.parser import parse
    from lure.text.vocabulary import TaskPlan

    plan = parse(args.text) if args.text is not None else TaskPlan()
    if args.detail is not None:
        plan = TaskPlan(plan.visible, plan.infrared, args.detail)
    return Fuser.resolve_plan(plan, args.vi_task, args.ir_task)


def detail_level(value: str) -> float:
    """``--detail`` as a float in [0, 1] (argparse type: a bad value is one usage line)."""
    try:
        level = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; give a level from 0 (faithful) to 1 (crisp)") from None
    if not 0.0 <= level <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]; 0 is faithful, 1 crisp")
    return level


def _detail_words(fuser, plan) -> str:
    """``, detail X`` for the summary line of a model with detail control ("" otherwise)."""
    if not fuser.has_detail_control:
        return ""
    level = fuser.detail_default if plan.detail is None else plan.detail
    return f", detail {level:g}{' (default)' if plan.detail is None else ''}"


def tiling_from_args(args: argparse.Namespace):
    from lure.inference import TilingConfig

    base = TilingConfig()
    return TilingConfig(
        mode=args.tile,
        tile=args.tile_size or base.tile,
        overlap=base.overlap if args.tile_overlap is None else args.tile_overlap,
        min_pixels=base.min_pixels,
    )


def load_fuser(args: argparse.Namespace, tiling, command: str = "fuse"):
    """The :class:`~lure.inference.Fuser` of the default shipped weights, or of what ``--checkpoint``
    names (``pipeline``, a shipped name, a path: :func:`lure.weights.resolve_checkpoint`); says
    which on stdout."""
    from lure import inference
    from lure.weights import resolve_checkpoint

    try:
        chosen = resolve_checkpoint(args.checkpoint, pipeline=inference.DEFAULT_CHECKPOINT)
    except FileNotFoundError as error:
        raise InputError(str(error)) from None
    print(f"lure {command}: using {chosen.origin}")
    return inference.Fuser.from_checkpoint(chosen.path, tiling=tiling, text_backbone=_text_backbone())


def _text_backbone() -> str | None:
    """``text_encoder.backbone`` of the repository's params.yaml (the encoder the pipeline trained
    with), or ``None`` (the packaged all-MiniLM-L6-v2) when there is no params.yaml."""
    try:
        from lure.config import read_params

        return (read_params().get("text_encoder") or {}).get("backbone")
    except Exception:  # no or unreadable params.yaml: the packaged default encoder
        return None


def _fuse_one(
    fuser, ir: np.ndarray, vi: np.ndarray, plan, args: argparse.Namespace, out: Path, progress: bool
) -> Path:
    fused = fuser.fuse(ir, vi, plan=plan, chroma=args.chroma, ir_range=args.ir_range, progress=progress)
    return write_image(out, fused)


def _single(args: argparse.Namespace) -> int:
    ir_path, vi_path = Path(args.ir), Path(args.vi)
    out = Path(args.out) if args.out else Path(f"{vi_path.stem}_fused.png")
    if out.suffix.lower() not in WRITE_FORMATS:
        raise InputError(
            f"--out {out}: unsupported extension {out.suffix!r}; use one of "
            f"{', '.join(sorted(WRITE_FORMATS))}"
        )
    plan = _plan(args)
    tiling = tiling_from_args(args)
    ir, vi = read_image(ir_path, "infrared"), read_image(vi_path, "visible")
    note = low_range_note(ir, ir_path, args.ir_range)
    ir, plan, scale_note = match_infrared(ir, vi, ir_path, vi_path, plan, args.ir_task is not None)
    for line in (note, scale_note):
        if line:
            print(line, file=sys.stderr)
    fuser = load_fuser(args, tiling)
    fuser.check_detail(plan.detail)
    height, width = vi.shape[:2]
    written = _fuse_one(fuser, ir, vi, plan, args, out, progress=not args.no_progress)
    mode = "tiled" if tiling.active(height, width) else "whole image"
    print(
        f"wrote {written} ({width}x{height}, visible: {plan.visible}, infrared: {plan.infrared}"
        f"{_detail_words(fuser, plan)}, {mode}, {fuser.device.type})"
    )
    return 0


def list_images(folder: Path, role: str) -> dict[str, Path]:
    """Image files of ``folder`` by stem (an error when it is missing)."""
    if not folder.is_dir():
        raise InputError(f"{role} folder {folder} does not exist")
    return image_io.list_images(folder)


def match_pairs(ir_files: dict[str, Path], vi_files: dict[str, Path]) -> tuple[list[str], list[PairResult]]:
    """Stems present in both folders, and a skip entry for each file without a partner."""
    pairs, ir_only, vi_only = image_io.pair_by_stem(ir_files, vi_files)
    skipped = [PairResult(p.stem, reason=f"no visible image for infrared {p.name}") for p in ir_only]
    skipped += [PairResult(p.stem, reason=f"no infrared image for visible {p.name}") for p in vi_only]
    return [stem for stem, _, _ in pairs], skipped


def _folder(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    ir_dir, vi_dir, out_dir = Path(args.ir_dir), Path(args.vi_dir), Path(args.out_dir)
    plan = _plan(args)
    tiling = tiling_from_args(args)
    ir_files, vi_files = list_images(ir_dir, "infrared"), list_images(vi_dir, "visible")
    stems, skipped = match_pairs(ir_files, vi_files)
    if not stems:
        raise InputError(f"no pairs: no file name (without extension) appears in both {ir_dir} and {vi_dir}")
    fuser = load_fuser(args, tiling)
    fuser.check_detail(plan.detail)
    failed: list[PairResult] = []
    done = 0
    for stem in tqdm(stems, desc="fusing", unit="pair", disable=args.no_progress):
        try:
            ir, vi = read_image(ir_files[stem], "infrared"), read_image(vi_files[stem], "visible")
            note = low_range_note(ir, ir_files[stem], args.ir_range)
            ir, pair_plan, scale_note = match_infrared(ir, vi, ir_files[stem], vi_files[stem], plan,
                                                       args.ir_task is not None)
            for line in (note, scale_note):
                if line:
                    tqdm.write(line, file=sys.stderr)
            _fuse_one(fuser, ir, vi, pair_plan, args, out_dir / f"{stem}.png", progress=False)
            done += 1
        except ValueError as error:
            failed.append(PairResult(stem, reason=str(error)))
    print(
        f"fused {done} of {len(stems)} matched pairs into {out_dir} (visible: {plan.visible}, "
        f"infrared: {plan.infrared}{_detail_words(fuser, plan)})"
    )
    problems = skipped + failed
    if problems:
        print(f"skipped {len(problems)}:")
        for item in problems:
            print(f"  {item.stem}: {item.reason}")
    return 1 if failed else 0


def run_fuse(args: argparse.Namespace) -> int:
    """Handler of ``lure fuse``: returns the exit code; prints one ``lure fuse: error: ...`` line
    on bad input instead of raising."""
    return report_errors("fuse", lambda: _dispatch_fuse(args))


def _dispatch_fuse(args: argparse.Namespace) -> int:
    folder_args = (args.ir_dir, args.vi_dir, args.out_dir)
    if any(folder_args):
        if not all(folder_args) or args.ir or args.vi or args.out:
            raise InputError("folder mode needs --ir-dir, --vi-dir and --out-dir together (and no --ir/--vi/--out)")
        return _folder(args)
    if not (args.ir and args.vi):
        raise InputError("give --ir and --vi (one pair) or --ir-dir, --vi-dir and --out-dir (folders)")
    return _single(args)


def report_errors(command: str, body) -> int:
    """Run ``body()`` (returning an exit code); a bad input (``ValueError``, ``OSError``, e.g.
    :class:`InputError` or an instruction error) becomes one ``lure <command>: error: ...`` line on
    stderr and exit code 2, Ctrl-C exit code 130 (outputs are atomic, so nothing partial is left)."""
    try:
        return body()
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"lure {command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lure {command}: interrupted (no partial output was left)", file=sys.stderr)
        return 130


def add_fuse_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lure fuse`` on the ``lure`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "fuse",
        help="fuse an infrared/visible pair (or two folders of pairs)",
        description="Degradation-aware infrared/visible fusion with a trained LURE checkpoint. Runs on the "
        "GPU when one is visible, otherwise on the CPU.",
    )
    pair = parser.add_argument_group("one pair")
    pair.add_argument("--ir", help="infrared image (8- or 16-bit PNG/TIFF/JPEG; 3-channel grey accepted)")
    pair.add_argument("--vi", help="visible image (RGB or grey), same size as the infrared image")
    pair.add_argument("--out", help="output image (default: <visible stem>_fused.png in the current folder)")
    folders = parser.add_argument_group("folders (pairs matched by file name without extension)")
    folders.add_argument("--ir-dir", help="folder of infrared images")
    folders.add_argument("--vi-dir", help="folder of visible images")
    folders.add_argument("--out-dir", help="output folder (<stem>.png per pair)")
    request = parser.add_argument_group("what is wrong with the images")
    request.add_argument(
        "--text", help='free-form request, e.g. "the visible image is dark, infrared is blurry"'
    )
    request.add_argument(
        "--vi-task",
        choices=MODALITY_TASKS[VISIBLE],
        help="visible task (overrides --text): pd clean, ll low light, hz haze, oe over-exposure",
    )
    request.add_argument(
        "--ir-task",
        choices=MODALITY_TASKS[INFRARED],
        help="infrared task (overrides --text): pd clean, lc low contrast, sr4/sr8 super-resolution",
    )
    look = parser.add_argument_group("how the fusion looks")
    look.add_argument(
        "--detail",
        type=detail_level,
        default=None,
        metavar="X",
        help="0 = faithful (closest to the sources) .. 1 = crisp (more fine detail and contrast); overrides "
        'detail words in --text ("keep it natural", "make the details pop"); default: the model\'s '
        "(`lure info --weights`). Needs a model trained with the detail control",
    )
    add_common_options(parser, chroma=True)
    parser.set_defaults(func=run_fuse)
    return parser


def add_common_options(parser: argparse.ArgumentParser, chroma: bool) -> None:
    """The options ``lure fuse`` and ``lure restore`` share: model, tiling, 16-bit scaling, progress."""
    options = parser.add_argument_group("options")
    options.add_argument(
        "--checkpoint",
        help="the model: default the default shipped weights (`lure info --weights`); `pipeline` for "
        "checkpoints/stage2/model.pt (what `make demo` / `dvc repro` trained); a shipped name; or a path",
    )
    options.add_argument(
        "--tile",
        choices=("auto", "on", "off"),
        default="auto",
        help="tiled inference: auto = only for images over ~1 megapixel (default)",
    )
    options.add_argument("--tile-size", type=int, default=None, help="tile side in pixels (default 768)")
    options.add_argument(
        "--tile-overlap", type=int, default=None, help="tile overlap in pixels (default 256)"
    )
    if chroma:
        options.add_argument(
            "--chroma",
            choices=("auto", "visible", "network"),
            default="auto",
            help="source of Cb/Cr: auto = visible input when it is clean, network output when degraded",
        )
    options.add_argument(
        "--ir-range",
        choices=("full", "stretch"),
        default="full",
        help="16-bit infrared scaling: full = /65535, stretch = the image's own min..max",
    )
    options.add_argument("--no-progress", action="store_true", help="no progress bars")
