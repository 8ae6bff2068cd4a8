"""Published methods' fused images as rows of the vanilla tables, and the tables' mean ranks."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lure.evaluation.baselines import pixel_average
from lure.evaluation.pair_sets import PairSet
from lure.evaluation.reference_fusions import ReferenceFusions, reference_fusions
from lure.evaluation.tables import RANK_GROUPS, mean_ranks, rank_columns
from lure.image_io import write_image
from tests.test_evaluation_steps import _pair, _run


def test_mean_ranks_follow_each_metrics_direction_and_share_ties():
    rows = {"a": {"SD": 50.0, "MSE": 0.02}, "b": {"SD": 40.0, "MSE": 0.01}, "c": {"SD": 50.0, "MSE": 0.03}}
    assert mean_ranks(rows, ["SD"]) == {"a": 1.0, "b": 3.0, "c": 1.0}  # ties share the best rank
    assert mean_ranks(rows, ["MSE"]) == {"a": 2.0, "b": 1.0, "c": 3.0}  # lower is better
    assert mean_ranks(rows, ["SD", "MSE"]) == {"a": 1.5, "b": 2.0, "c": 2.0}
    rows["c"]["MSE"] = float("nan")
    assert math.isnan(mean_ranks(rows, ["SD", "MSE"])["c"])


def test_rank_columns_add_the_three_families_when_their_metrics_are_there():
    metrics = RANK_GROUPS["rank all-10"]
    rows = {m: {k: float(i + (k == "SF") * 10 * (m == "sharp")) for k in metrics}
            for i, m in enumerate(["soft", "sharp", "flat"])}
    ranked = rank_columns(rows)
    assert set(ranked["soft"]) == set(metrics) | set(RANK_GROUPS)
    assert ranked["flat"]["rank paper-5"] == 1.0 and ranked["soft"]["rank paper-5"] == 3.0
    assert ranked["sharp"]["rank detail-5"] == pytest.approx((2 + 2 + 1 + 2 + 2) / 5)  # first on SF only
    assert rank_columns({"x": {"EN": 1.0}}) == {"x": {"EN": 1.0}}  # no family complete: no rank column


def _write_references(root, pairs, fuse=pixel_average, slug="demo-test"):
    for key, ir, vi in pairs:
        write_image(root / slug / f"{key.split('_', 1)[1]}.png", fuse(ir, vi))


def test_reference_fusions_score_like_the_same_images_computed_here(tmp_path):
    """A folder holding pixel averages of the pairs scores exactly as the pixel-average row; a
    folder without the set is left out with one note; the table gains three rank columns."""
    from lure.evaluation.sections import vanilla_section

    pairs = [(f"demo_{n:02d}", *_pair(n)) for n in range(3)]
    _write_references(tmp_path / "published", pairs)
    (tmp_path / "other").mkdir()
    run = _run(tmp_path, reference_fusions={"Published": str(tmp_path / "published"),
                                            "Absent": str(tmp_path / "other")})
    rows = vanilla_section(run, PairSet("demo/test", "demo-test", pairs), "grid.png")
    np.testing.assert_equal(rows["fused:Published"], rows["average"])  # NaN NIQE on both
    assert "fused:Absent" not in rows
    assert any(n.startswith("reference fusions Absent: no folder") for n in run.report.notes)
    table = (run.report.out_dir / "tables" / "vanilla_demo-test.md").read_text()
    assert "| Published (precomputed) |" in table and "rank all-10 ↓" in table
    with open(run.report.out_dir / "tables" / "vanilla_demo-test.csv", newline="") as handle:
        csv_rows = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows["fused:Published"]["rank all-10"]) == float(csv_rows["average"]["rank all-10"])


def test_a_missing_or_wrong_size_reference_image_is_named(tmp_path):
    from lure.evaluation.sections import vanilla_section

    pairs = [(f"demo_{n:02d}", *_pair(n)) for n in range(2)]
    _write_references(tmp_path / "published", pairs[:1])
    run = _run(tmp_path, reference_fusions={"Published": str(tmp_path / "published")})
    with pytest.raises(FileNotFoundError, match=r"reference fusions Published: .*demo-test/01.png is missing"):
        vanilla_section(run, PairSet("demo/test", "demo-test", pairs), "grid.png")
    write_image(tmp_path / "published" / "demo-test" / "01.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(ValueError, match=r"01.png is 12x10 but the pair demo_01 is 64x48"):
        vanilla_section(run, PairSet("demo/test", "demo-test", pairs), "grid.png")


def test_pair_keys_map_to_file_stems(tmp_path):
    source = ReferenceFusions("X", tmp_path, "roadscene")
    assert source.stem_of("roadscene_FLIR_00006") == "FLIR_00006" and source.stem_of("00537D") == "00537D"
    notes: list[str] = []
    assert reference_fusions({"X": str(tmp_path)}, PairSet("msrs/test", "msrs-test", []), notes) == {}
    assert len(notes) == 1


def test_shared_reference_fusions_cover_the_real_profiles_held_out_pairs(shared_data):
    """The published methods' folders hold one image per held-out pair of the real profile, at the
    pair's size (RoadScene held-out by the profile's every-fifth rule, LLVIP test at half size)."""
    from PIL import Image

    from data_prep.sources.folder import holdout_split

    stems = sorted(p.stem for p in (shared_data / "roadscene" / "ir").iterdir())
    held = sorted(holdout_split(stems, 5))
    for method in ("DAFusion", "GIFNet"):
        folder = shared_data / "reference_fusions" / method
        assert sorted(p.stem for p in (folder / "roadscene-test").iterdir()) == held
        first = sorted((shared_data / "llvip" / "test" / "ir").iterdir())[0]
        with Image.open(first) as ir, Image.open(folder / "llvip-test" / f"{first.stem}.png") as fused:
            assert fused.size == (round(ir.width * 0.5), round(ir.height * 0.5))
