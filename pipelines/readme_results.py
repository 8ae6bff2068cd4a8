"""The README's results table, generated from the committed evaluation tables, never typed.

``python -m pipelines.readme_results`` rewrites the block between ``<!-- results:begin -->`` and
``<!-- results:end -->`` in ``README.md`` from ``results/real/tables/vanilla_<set>.csv`` (written by
the evaluate stage of the ``real`` profile); ``--check`` exits 1 when the README's copy differs
(``tests/test_readme_results.py`` runs it). The table: per held-out set, every row's mean rank
over the paper's five vanilla-table metrics, over detail and contrast, and over all ten
(:data:`lure.evaluation.tables.RANK_GROUPS`; 1 = best), then the shipped model's and the best
published method's SF, AG and SD, the infrared warm-target contrast each keeps, and (from
``detail_curve_<set>.csv``) the ends of the detail control.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from lure.evaluation.tables import RANK_GROUPS
from lure.fileio import atomic_write_text
from lure.paths import REPO_ROOT

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
TABLES = REPO_ROOT / "results" / "real" / "tables"
#: Held-out sets in README order: (table slug, label).
SETS = (("roadscene-test", "RoadScene held-out"), ("llvip-test", "LLVIP test"), ("msrs-test", "MSRS"))
#: Rows in README order: (method id in the tables, label); rows absent from a table are left out.
ROWS = (("lure", "**LURE (shipped `lure-real`)**"), ("fused:GIFNet", "GIFNet (CVPR 2025)"),
        ("fused:DAFusion", "DAFusion (2025)"), ("average", "pixel average"), ("max", "pixel max"),
        ("densefuse_l1", "DenseFuse l1 rule on our latents"), ("model:demo", "demo model"))
DETAIL = ("SF", "AG", "SD")
TARGET = "IR_target_contrast"


def _short(method: str) -> str:
    return "LURE" if method == "lure" else method.split(":", 1)[1]


def _read(slug: str, tables: Path) -> tuple[dict[str, dict[str, float]], int]:
    """method -> column -> value of ``vanilla_<slug>.csv``, and its pair count."""
    path = tables / f"vanilla_{slug}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the evaluate stage of the real profile "
                                "(python -m pipelines.stages.evaluate --profile real --out results/real ...)")
    with open(path, newline="") as handle:
        records = list(csv.DictReader(handle))
    rows = {r["method"]: {k: float(v) for k, v in r.items() if k not in ("method", "images") and v != ""}
            for r in records}
    return rows, max(int(r["images"]) for r in records)


def _curve_ends(slug: str, label: str, tables: Path) -> str | None:
    """``<label> a / b / c (rank) → ...`` from the faithful and crisp ends of ``detail_curve_<slug>.csv``."""
    path = tables / f"detail_curve_{slug}.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: float(r["detail"]))
    cells = [" / ".join(f"{float(r[c]):.1f}" for c in DETAIL) + f" ({float(r['rank all-10']):.1f})"
             for r in (rows[0], rows[-1])]
    return f"{label} {cells[0]} → {cells[1]}"


def results_block(tables: Path = TABLES) -> str:
    """The Markdown between the markers (ends with a newline)."""
    ranks = list(RANK_GROUPS)
    read = {slug: _read(slug, tables) for slug, _ in SETS}
    header = ["", *[f"{label} ({read[slug][1]}): {' / '.join(r.split()[1] for r in ranks)}" for slug, label in SETS]]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(SETS) + "|"]
    for method, label in ROWS:
        if not any(method in read[slug][0] for slug, _ in SETS):
            continue
        cells = [label]
        for slug, _ in SETS:
            row = read[slug][0].get(method)
            cells.append(" / ".join(f"{row[r]:.1f}" for r in ranks) if row else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean rank among these rows (1 = best) over the paper's five metrics "
              f"({', '.join(RANK_GROUPS['rank paper-5'])}) / detail and contrast "
              f"({', '.join(RANK_GROUPS['rank detail-5'])}) / all ten. Detail of the shipped model against "
              "the sharpest published method (SF / AG / SD):"]
    for slug, label in SETS:
        rows = read[slug][0]
        published = [m for m in rows if m.startswith("fused:")]
        if "lure" not in rows or not published:
            continue
        sharpest = max(published, key=lambda m: rows[m]["SF"])
        ours, theirs = (" / ".join(f"{rows[m][c]:.1f}" for c in DETAIL) for m in ("lure", sharpest))
        lines.append(f"{label} {ours} against {sharpest.split(':', 1)[1]} {theirs};")
    lines[-1] = lines[-1].rstrip(";") + "."
    kept = []
    for slug, label in SETS:
        rows = read[slug][0]
        shown = [m for m, _ in ROWS if TARGET in rows.get(m, {}) and (m == "lure" or m.startswith("fused:"))]
        if shown:
            kept.append(f"{label} " + ", ".join(f"{_short(m)} {rows[m][TARGET]:.2f}" for m in shown))
    if kept:
        lines.append("Infrared warm-target contrast kept (`IR_target_contrast`, 1 = all of it): " + "; ".join(kept) + ".")
    ends = [line for slug, label in SETS if (line := _curve_ends(slug, label, tables))]
    if ends:
        lines.append("The detail control's ends, `--detail 0` → `--detail 1`, SF / AG / SD and rank all-10: "
                     + "; ".join(ends) + " (`detail_curve_*.md`).")
    lines.append("Generated by `python -m pipelines.readme_results` from `results/real/tables/vanilla_*.csv`.")
    return "\n".join(lines) + "\n"


def rewrite(readme: Path, block: str) -> str:
    """``readme``'s text with the block between the markers replaced."""
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{block}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    parser.add_argument("--tables", type=Path, default=TABLES)
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's block is stale")
    args = parser.parse_args(argv)
    try:
        text = rewrite(args.readme, results_block(args.tables))
    except (FileNotFoundError, ValueError) as error:
        print(f"readme_results: error: {error}", file=sys.stderr)
        return 2
    if args.check:
        if text != args.readme.read_text():
            print(f"readme_results: {args.readme} is stale: run python -m pipelines.readme_results", file=sys.stderr)
            return 1
        return 0
    atomic_write_text(args.readme, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
