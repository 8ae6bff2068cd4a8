"""Paired comparisons on the degraded sets: one LURE pass against restore-then-fuse, task
descriptions against pseudo descriptions, pair by pair.

A degraded table gives each method's *mean* ``PSNR_clean`` (dB). Whether one pass is "at least as
good as" restore-then-fuse on a handful of pairs is a question about the per-pair differences:
:func:`paired_difference` reports their mean, a seeded percentile-bootstrap confidence interval
of that mean, and on how many pairs the first method is at least as good as the second. The
evaluation stage writes one row per degraded set to ``tables/degraded_paired.md/.csv`` and the
per-pair values to ``tables/degraded_<task>_psnr_clean.csv``.

The percentile bootstrap is too narrow on very few pairs (it cannot see more spread than the
pairs show): on the real profile's 5 pairs LL+LC gave +0.56 dB [+0.12, +1.00], on all 44 held-out
pairs −0.03 [−0.29, +0.22]. Read intervals from a handful of pairs as a lower bound on the spread.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "COMPARISONS",
    "CONFIDENCE",
    "PairedDifference",
    "paired_csv",
    "paired_difference",
    "paired_markdown",
    "per_pair_csv",
]

#: Bootstrap resamples and the confidence level of the intervals.
BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE = 0.95
#: ``(name, method, baseline, shown label)``: each paired comparison of the degraded sets.
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("lure-restore_then_fuse", "lure", "restore_then_fuse", "one pass − restore then fuse"),
    ("lure-lure_pseudo", "lure", "lure_pseudo", "task − pseudo descriptions"),
)


@dataclass(frozen=True)
class PairedDifference:
    """``a − b`` over the pairs where both are finite: ``pairs`` used, ``mean`` difference,
    ``[low, high]`` the bootstrap interval of the mean, ``at_least``: pairs with ``a ≥ b``."""

    pairs: int
    mean: float
    low: float
    high: float
    at_least: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> PairedDifference:
    """Compare two methods scored on the same pairs (``a[i]`` and ``b[i]`` on pair ``i``, e.g.
    ``PSNR_clean`` in dB). The interval is the percentile bootstrap of the mean difference
    (``resamples`` draws of the pairs with replacement from ``numpy``'s generator seeded with
    ``seed``); one pair gives the difference itself as both ends. Pairs where either value is
    NaN or infinite are left out. Raises ``ValueError`` for unequal lengths, no finite pair, or
    ``resamples`` / ``confidence`` out of range."""
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"resamples must be >= 1 and confidence in (0, 1), got {resamples}, {confidence}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    if diff.size == 0:
        raise ValueError("no pair has finite values for both methods")
    mean = float(diff.mean())
    if diff.size == 1:
        low = high = mean
    else:
        rng = np.random.default_rng(seed)
        means = diff[rng.integers(0, diff.size, size=(resamples, diff.size))].mean(axis=1)
        tail = (1.0 - confidence) / 2.0
        low, high = (float(v) for v in np.quantile(means, [tail, 1.0 - tail]))
    return PairedDifference(int(diff.size), mean, low, high, int((diff >= 0).sum()))


def _signed(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:+.2f}"


def paired_markdown(
    results: Mapping[str, Mapping[str, PairedDifference]], title: str, notes: Sequence[str] = ()
) -> str:
    """The Markdown table: one row per degraded set (``results``: set -> comparison name of
    :data:`COMPARISONS` -> difference), per comparison the mean, the interval and ``pairs ≥``."""
    header = ["set", "pairs"]
    for _, _, _, label in COMPARISONS:
        header += [f"{label} (dB)", f"{round(CONFIDENCE * 100)} % interval", "pairs ≥"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|"]
    for task, row in results.items():
        cells = [task.upper(), str(max((d.pairs for d in row.values()), default=0))]
        for name, *_ in COMPARISONS:
            d = row.get(name)
            cells += (["–"] * 3 if d is None else
                      [_signed(d.mean), f"[{_signed(d.low)}, {_signed(d.high)}]", f"{d.at_least}/{d.pairs}"])
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def paired_csv(results: Mapping[str, Mapping[str, PairedDifference]]) -> str:
    """CSV: ``set`` then, per comparison ``<name>``, ``<name>_pairs``, ``_mean``, ``_low``,
    ``_high``, ``_at_least`` (full precision; empty when a comparison is missing)."""
    fields = ("pairs", "mean", "low", "high", "at_least")
    rows = []
    for task, row in results.items():
        values = []
        for name, *_ in COMPARISONS:
            d = row.get(name)
            values += [""] * len(fields) if d is None else [repr(getattr(d, f)) for f in fields]
        rows.append([task, *values])
    return _csv_text(["set", *[f"{name}_{f}" for name, *_ in COMPARISONS for f in fields]], rows)


def per_pair_csv(keys: Sequence[str], values: Mapping[str, Sequence[float]]) -> str:
    """CSV: ``pair`` (its key) then one column per method (``values``: method -> one value per
    pair, in ``keys`` order; empty cells for NaN)."""
    for method, column in values.items():
        if len(column) != len(keys):
            raise ValueError(f"method {method!r} has {len(column)} values for {len(keys)} pairs")
    rows = [[key, *["" if not math.isfinite(values[m][i]) else repr(float(values[m][i])) for m in values]]
            for i, key in enumerate(keys)]
    return _csv_text(["pair", *values], rows)
