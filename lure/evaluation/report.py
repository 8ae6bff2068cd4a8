"""What the evaluation stage writes: tables, grids, ``tables/summary.md`` and ``metrics.json``.

Layout under ``out_dir``: ``tables/<stem>.md`` + ``tables/<stem>.csv`` per :class:`Table`
(:func:`lure.evaluation.tables.write_table`) or laid out by its section (:meth:`Report.add_text_table`;
:meth:`Report.add_csv` for per-pair CSVs), ``grids/<name>.png``, ``tables/summary.md`` (a
header, every table in the order added, then the notes) and ``metrics.json`` (``vanilla`` ->
set -> method -> metric, ``degraded`` -> task -> ..., ``paired`` and ``restoration`` when scored;
NaN as ``null``). Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lure.evaluation.grid import save_grid
from lure.evaluation.io import atomic_write_json
from lure.evaluation.tables import format_markdown, write_table
from lure.fileio import atomic_write_text

__all__ = ["Report", "Table"]


@dataclass(frozen=True)
class Table:
    """One result table: methods (``rows``: method -> metric -> value) x ``columns``, written as
    ``tables/<stem>.md/.csv``; ``labels``: method -> shown name; ``counts``: method -> images."""

    stem: str
    title: str
    rows: Mapping[str, Mapping[str, float]]
    columns: Sequence[str]
    labels: Mapping[str, str] | None = None
    counts: Mapping[str, int] | None = None
    notes: Sequence[str] = ()

    def markdown(self) -> str:
        """The table as the Markdown section of ``summary.md``."""
        return format_markdown(self.title, self.rows, self.columns, self.labels, self.counts, self.notes)


@dataclass
class Report:
    """Collects the outputs of one evaluation under ``out_dir``: the files written, the summary
    sections and the notes (one line each: what was skipped and why)."""

    out_dir: Path
    header: str
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)

    def add_table(self, table: Table) -> None:
        """Write ``table`` (Markdown + CSV) and add it to the summary."""
        self.files += write_table(
            self.out_dir / "tables" / table.stem,
            table.title,
            table.rows,
            table.columns,
            table.labels,
            table.counts,
            table.notes,
        )
        self.sections.append(table.markdown())

    def add_text_table(self, stem: str, markdown: str, csv_text: str) -> None:
        """Write ``tables/<stem>.md`` and ``.csv`` as they are and add the Markdown to the summary
        (for tables :class:`Table` does not lay out)."""
        self.files.append(atomic_write_text(self.out_dir / "tables" / f"{stem}.md", markdown))
        self.add_csv(stem, csv_text)
        self.sections.append(markdown)

    def add_csv(self, stem: str, csv_text: str) -> None:
        """Write ``tables/<stem>.csv`` only (per-pair values; not in the summary)."""
        self.files.append(atomic_write_text(self.out_dir / "tables" / f"{stem}.csv", csv_text))

    def add_grid(
        self,
        name: str,
        rows: Sequence[Sequence[np.ndarray]],
        labels: Sequence[str],
        title: str,
        crop: int | tuple[int, int],
        focus: str,
    ) -> Path:
        """Write the qualitative grid ``grids/<name>`` (:func:`lure.evaluation.grid.save_grid`)."""
        path = save_grid(self.out_dir / "grids" / name, rows, labels, title, crop, focus)
        self.files.append(path)
        return path

    def summary(self) -> str:
        """``summary.md``: the header, every table, then the notes."""
        sections = [self.header, *self.sections]
        if self.notes:
            sections.append("## Notes\n\n" + "\n".join(f"- {n}" for n in self.notes) + "\n")
        return "\n".join(sections)

    def finish(self, metrics: Mapping[str, Any]) -> None:
        """Write ``tables/summary.md`` and ``metrics.json`` (``metrics``)."""
        self.files.append(atomic_write_text(self.out_dir / "tables" / "summary.md", self.summary()))
        self.files.append(atomic_write_json(self.out_dir / "metrics.json", metrics))
