"""``lure restore``: stage-1 text-guided restoration of one image or a folder of one modality.

Examples::

    lure restore --vi dark.png --text "the picture is too dark" --out bright.png
    lure restore --ir thermal.png --task sr4 --out sharp.png
    lure restore --vi-dir hazy/ --task hz --out-dir dehazed/

Stage 1 of LURE is an all-in-one restorer: the image encoder, told the degradation in words,
maps the degraded image to the clean image's latent point, and the decoder reconstructs it. The
request goes through :func:`lure.text.parser.parse` (``--task`` sets it directly); a request that
names the other modality's degradation ("the thermal image is blurry" while restoring a visible
image) is an error listing the tasks of this modality. Visible outputs keep their colour
(RGB in, RGB out; grey in, grey out); infrared outputs are grey. Inputs, outputs, tiling, atomic
writes and exit codes are those of ``lure fuse`` (0 success, 1 some images of a folder failed,
2 bad input or request, nothing written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lure.fuse_cli import (
    InputError,
    add_common_options,
    list_images,
    load_fuser,
    report_errors,
    tiling_from_args,
)
from lure.image_io import WRITE_FORMATS, read_image, write_image
from lure.text.vocabulary import INFRARED, MODALITY_NAMES, MODALITY_TASKS, TASK_IDS, VISIBLE


def plan_task(modality: int, text: str | None, task: str | None) -> str:
    """The task for restoring an image of ``modality``: ``task`` when given, else the parsed
    request's entry for this modality. Raises :class:`InputError` when the request only names the
    other modality's degradation, or names a task this modality does not have."""
    name, other = MODALITY_NAMES[modality], MODALITY_NAMES[1 - modality]
    allowed = ", ".join(MODALITY_TASKS[modality])
    if task is not None:
        if task not in MODALITY_TASKS[modality]:
            raise InputError(f"--task {task} is not a {name} task; {name} tasks: {allowed}")
        return task
    if text is None:
        raise InputError(f"say what is wrong with the {name} image: --text \"...\" or --task ({allowed})")
    from lure.text.parser import parse

    plan = parse(text)
    if plan.detail is not None:
        raise InputError("detail words (\"make the details pop\", \"keep it natural\") set how `lure fuse` "
                         "fuses; lure restore has no detail level: describe the degradation instead")
    mine, theirs = plan.task(modality), plan.task(1 - modality)
    if mine == "pd" and theirs != "pd":
        raise InputError(f"the request names a degradation of the {other} image ({theirs}) but a {name} image "
                         f"is being restored; {name} tasks: {allowed}")
    return mine


def _output_path(args: argparse.Namespace, source: Path) -> Path:
    out = Path(args.out) if args.out else Path(f"{source.stem}_restored.png")
    if out.suffix.lower() not in WRITE_FORMATS:
        raise InputError(f"--out {out}: unsupported extension {out.suffix!r}; use one of "
                         f"{', '.join(sorted(WRITE_FORMATS))}")
    return out


def _restore_one(fuser, path: Path, modality: int, task: str, args: argparse.Namespace, out: Path,
                 progress: bool) -> Path:
    image = read_image(path, MODALITY_NAMES[modality])
    restored = fuser.restore(image, task, modality, ir_range=args.ir_range, progress=progress)
    return write_image(out, restored)


def _single(args: argparse.Namespace, modality: int, source: Path) -> int:
    task = plan_task(modality, args.text, args.task)
    out = _output_path(args, source)
    read_image(source, MODALITY_NAMES[modality])  # input checks before the model loads
    tiling = tiling_from_args(args)
    fuser = load_fuser(args, tiling, command="restore")
    written = _restore_one(fuser, source, modality, task, args, out, progress=not args.no_progress)
    print(f"wrote {written} ({MODALITY_NAMES[modality]}, task {task}, {fuser.device.type})")
    return 0


def _folder(args: argparse.Namespace, modality: int, folder: Path) -> int:
    from tqdm import tqdm

    task = plan_task(modality, args.text, args.task)
    files = list_images(folder, MODALITY_NAMES[modality])
    if not files:
        raise InputError(f"no images in {folder}")
    out_dir = Path(args.out_dir)
    fuser = load_fuser(args, tiling_from_args(args), command="restore")
    failed: list[tuple[str, str]] = []
    for stem, path in tqdm(files.items(), desc="restoring", unit="image", disable=args.no_progress):
        try:
            _restore_one(fuser, path, modality, task, args, out_dir / f"{stem}.png", progress=False)
        except ValueError as error:
            failed.append((stem, " ".join(str(error).split())))
    print(f"restored {len(files) - len(failed)} of {len(files)} {MODALITY_NAMES[modality]} images into {out_dir} "
          f"(task {task})")
    if failed:
        print(f"failed {len(failed)}:")
        for stem, reason in failed:
            print(f"  {stem}: {reason}")
    return 1 if failed else 0


def run_restore(args: argparse.Namespace) -> int:
    """Handler of ``lure restore``: the exit code; one ``lure restore: error: ...`` line on bad input."""
    return report_errors("restore", lambda: _dispatch_restore(args))


def _dispatch_restore(args: argparse.Namespace) -> int:
    sources = {"--vi": args.vi, "--ir": args.ir, "--vi-dir": args.vi_dir, "--ir-dir": args.ir_dir}
    given = [k for k, v in sources.items() if v]
    if len(given) != 1:
        raise InputError("give exactly one of --vi, --ir (one image), --vi-dir, --ir-dir (a folder)"
                         + (f"; got {', '.join(given)}" if given else ""))
    if args.text is not None and args.task is not None:
        raise InputError("give --text or --task, not both")
    option = given[0]
    modality = VISIBLE if option.startswith("--vi") else INFRARED
    if option.endswith("-dir"):
        if not args.out_dir or args.out:
            raise InputError(f"folder mode needs {option} with --out-dir (and no --out)")
        return _folder(args, modality, Path(sources[option]))
    if args.out_dir:
        raise InputError(f"{option} restores one image: use --out (or {option}-dir with --out-dir)")
    return _single(args, modality, Path(sources[option]))


def add_restore_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lure restore`` on the ``lure`` command's sub-parsers."""
    parser = subparsers.add_parser(
        "restore",
        help="restore a degraded visible or infrared image (stage 1, text-guided)",
        description="All-in-one text-guided restoration with LURE's stage-1 encoder and decoder. Tasks: "
        f"{', '.join(TASK_IDS)} (visible: {', '.join(MODALITY_TASKS[VISIBLE])}; infrared: "
        f"{', '.join(MODALITY_TASKS[INFRARED])}).",
    )
    source = parser.add_argument_group("input (exactly one)")
    source.add_argument("--vi", help="visible image (RGB or grey, 8 or 16 bit)")
    source.add_argument("--ir", help="infrared image (8 or 16 bit; 3-channel grey accepted)")
    source.add_argument("--vi-dir", help="folder of visible images")
    source.add_argument("--ir-dir", help="folder of infrared images")
    output = parser.add_argument_group("output")
    output.add_argument("--out", help="output image (default: <input stem>_restored.png in the current folder)")
    output.add_argument("--out-dir", help="output folder (<stem>.png per image) for --vi-dir/--ir-dir")
    request = parser.add_argument_group("what is wrong with the image (one of)")
    request.add_argument("--text", help='free-form request, e.g. "the image is too dark"')
    request.add_argument("--task", choices=TASK_IDS, help="task id: ll, hz, oe (visible), lc, sr4, sr8 (infrared), pd")
    add_common_options(parser, chroma=False)
    parser.set_defaults(func=run_restore)
    return parser
