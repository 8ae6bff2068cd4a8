"""Paper-style result tables: methods as rows, metrics as columns, means over images.

:func:`write_table` writes ``<stem>.md`` (a Markdown table with a title, the best value of each
column in bold, arrows for the better direction, notes below) and ``<stem>.csv`` (``method``,
one column per metric at full precision, ``images``; empty cells for missing values). Both are
written atomically.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from lure.fileio import atomic_write_text

__all__ = ["LOWER_IS_BETTER", "RANK_GROUPS", "format_markdown", "format_csv", "mean_ranks", "mean_rows",
           "rank_columns", "write_table"]

#: The metric families a vanilla table ranks its rows by: the paper's vanilla-table metrics,
#: detail and contrast, and all ten together (column name -> metrics).
RANK_GROUPS: dict[str, tuple[str, ...]] = {
    "rank paper-5": ("CC", "SCD", "PSNR", "SSIM", "MS_SSIM"),
    "rank detail-5": ("EN", "SD", "SF", "AG", "MI"),
    "rank all-10": ("CC", "SCD", "PSNR", "SSIM", "MS_SSIM", "EN", "SD", "SF", "AG", "MI"),
}
#: Metrics where lower is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"MSE", "NIQE", "mean rank", *RANK_GROUPS})
#: Decimals shown in Markdown per metric (default 3).
DECIMALS = {"detail": 2, "IR_target_contrast": 2, "EN": 2, "SD": 2, "SF": 2, "AG": 2, "PSNR": 2, "MSE": 4, "NIQE": 2, "PSNR_clean": 2, "musiq": 2}


def mean_rows(per_image: Mapping[str, Sequence[Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Method -> list of per-image metric dicts  =>  method -> metric -> mean over the images
    whose value is finite (NaN when none is)."""
    out: dict[str, dict[str, float]] = {}
    for method, records in per_image.items():
        keys = list(dict.fromkeys(k for r in records for k in r))
        row = {}
        for key in keys:
            values = [
                float(r[key]) for r in records if r.get(key) is not None and math.isfinite(float(r[key]))
            ]
            row[key] = sum(values) / len(values) if values else float("nan")
        out[method] = row
    return out


def mean_ranks(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str]) -> dict[str, float]:
    """Each row's rank per column (1 = best: the highest value, the lowest for
    :data:`LOWER_IS_BETTER`; tied rows share the best of their ranks), averaged over ``columns``.
    A row missing a finite value in a column gets NaN."""
    totals = {name: 0.0 for name in rows}
    for column in columns:
        values = {n: r.get(column) for n, r in rows.items()}
        finite = sorted((v for v in values.values() if v is not None and math.isfinite(v)),
                        reverse=column not in LOWER_IS_BETTER)
        for name, value in values.items():
            ok = value is not None and math.isfinite(value)
            totals[name] += 1 + finite.index(value) if ok else float("nan")
    return {name: total / len(columns) for name, total in totals.items()}


def rank_columns(rows: Mapping[str, Mapping[str, float]],
                 groups: Mapping[str, Sequence[str]] = RANK_GROUPS) -> dict[str, dict[str, float]]:
    """``rows`` with one mean-rank column per group (:func:`mean_ranks`) added to each row; a
    group whose metrics the rows lack is left out."""
    present = {c for r in rows.values() for c in r}
    out = {name: dict(row) for name, row in rows.items()}
    for column, metrics in groups.items():
        if set(metrics) <= present:
            for name, rank in mean_ranks(rows, metrics).items():
                out[name][column] = rank
    return out


#: Columns that describe a row rather than score it (never marked best).
SETTING_COLUMNS = frozenset({"detail"})


def _best(rows: Mapping[str, Mapping[str, float]], column: str) -> float | None:
    if column in SETTING_COLUMNS:
        return None
    values = [r.get(column) for r in rows.values()]
    values = [v for v in values if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return None
    return min(values) if column in LOWER_IS_BETTER else max(values)


def _fmt(value: float | None, column: str) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{DECIMALS.get(column, 3)}f}"


def format_markdown(
    title: str,
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[str],
    labels: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A Markdown table (``rows``: method -> metric -> value) with the best value per column in bold."""
    labels = labels or {}
    header = ["Method", *[c if c in SETTING_COLUMNS else f"{c} {'↓' if c in LOWER_IS_BETTER else '↑'}"
                          for c in columns]]
    if counts is not None:
        header.append("images")
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|",
    ]
    best = {c: _best(rows, c) for c in columns}
    for method, row in rows.items():
        cells = [labels.get(method, method)]
        for c in columns:
            text = _fmt(row.get(c), c)
            value = row.get(c)
            if (
                best[c] is not None
                and value is not None
                and math.isfinite(value)
                and text == _fmt(best[c], c)
            ):
                text = f"**{text}**"
            cells.append(text)
        if counts is not None:
            cells.append(str(counts.get(method, 0)))
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def format_csv(
    rows: Mapping[str, Mapping[str, float]], columns: Sequence[str], counts: Mapping[str, int] | None = None
) -> str:
    """CSV text: ``method``, one column per metric (``repr`` precision), ``images`` when ``counts``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", *columns, *(["images"] if counts is not None else [])])
    for method, row in rows.items():
        values = []
        for c in columns:
            v = row.get(c)
            values.append("" if v is None or not math.isfinite(v) else repr(float(v)))
        writer.writerow([method, *values, *([counts.get(method, 0)] if counts is not None else [])])
    return buffer.getvalue()


def write_table(
    stem: str | os.PathLike,
    title: str,
    rows: Mapping[str, Mapping[str, float]],
    columns: Sequence[str],
    labels: Mapping[str, str] | None = None,
    counts: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.csv``; returns their paths."""
    stem = Path(stem)
    md = atomic_write_text(
        stem.parent / f"{stem.name}.md", format_markdown(title, rows, columns, labels, counts, notes)
    )
    cs = atomic_write_text(stem.parent / f"{stem.name}.csv", format_csv(rows, columns, counts))
    return md, cs
