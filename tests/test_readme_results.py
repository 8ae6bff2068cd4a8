"""The README's results table is the one the committed evaluation tables give."""

from __future__ import annotations

import csv
import shutil

from lure.paths import REPO_ROOT
from pipelines import readme_results


def test_readme_results_block_is_current():
    assert readme_results.main(["--check"]) == 0, "README.md's results table is stale: run python -m pipelines.readme_results"


def test_the_block_follows_the_tables_and_a_stale_readme_is_caught(tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(REPO_ROOT / "results" / "real" / "tables", tables)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readme_results.BEGIN}\nold\n{readme_results.END}\n\nrest\n")
    assert readme_results.main(["--readme", str(readme), "--tables", str(tables), "--check"]) == 1
    assert readme_results.main(["--readme", str(readme), "--tables", str(tables)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n") and text.endswith(f"{readme_results.END}\n\nrest\n") and "old" not in text
    assert "| **LURE (shipped `lure-real`)** |" in text and "RoadScene held-out (" in text
    path = tables / "vanilla_msrs-test.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    next(r for r in rows if r["method"] == "lure")["SF"] = "99.0"  # another evaluation: another block
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert readme_results.main(["--readme", str(readme), "--tables", str(tables), "--check"]) == 1
    assert readme_results.main(["--readme", str(readme), "--tables", str(tmp_path / "none")]) == 2
