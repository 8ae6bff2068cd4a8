"""lure.evaluation: tables, grids, baselines and the evaluate runner end to end on image pairs
(real RoadScene crops, or generated demo scenes in a clone without ../shared)."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from lure.config import load_params
from lure.evaluation.baselines import DEGRADED_METHODS, VANILLA_METHODS, pixel_average, pixel_max, run_method
from lure.evaluation.grid import LABEL_HEIGHT, PAD, TITLE_HEIGHT, make_grid
from lure.evaluation.pair_sets import slug
from lure.evaluation.runner import evaluate
from lure.evaluation.tables import RANK_GROUPS, format_csv, format_markdown, mean_rows
from lure.inference import Fuser
from lure.metrics import METRIC_NAMES
from tests.model_helpers import save_seeded_demo_checkpoint, write_pair_crops

TASKS = ["ll", "oe+lc"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_seeded_demo_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pair_folder(fusion_pairs, tmp_path_factory):
    """Three pairs (RoadScene, or generated without ../shared), centre-cropped to 128 x 192 (NIQE needs
    96 x 192), as ir/ and vi/ PNGs."""
    return write_pair_crops(fusion_pairs.root, tmp_path_factory.mktemp("roadscene3"), 128, 192)


@pytest.fixture(scope="module")
def evaluated(checkpoint, pair_folder, niqe_params, tmp_path_factory):
    from lure.checkpoint import save_checkpoint
    from tests.model_helpers import seeded_demo_model

    other_checkpoint = tmp_path_factory.mktemp("other") / "other.pt"
    save_checkpoint(other_checkpoint, seeded_demo_model(9), "demo")
    params = load_params(profile="demo")
    params["evaluate"] = {
        "pair_sets": [f"folder:{pair_folder}", "absent/test"],
        "degraded_from": f"folder:{pair_folder}",
        "tasks": TASKS,
        "niqe_params": str(niqe_params),
        "grid": {"crop": 96, "pairs": 2, "focus": "infrared"},
        "degraded_max_pairs": 2,
        "reference_checkpoints": {"other": str(other_checkpoint), "gone": str(checkpoint.parent / "gone.pt")},
    }
    out = tmp_path_factory.mktemp("results")
    result = evaluate(
        params, checkpoint, out_dir=out, data_root=tmp_path_factory.mktemp("data"), progress=False
    )
    return result, out, pair_folder


# ----------------------------------------------------------------------------- units
def test_mean_rows_skips_nan_and_tables_mark_the_best():
    rows = mean_rows(
        {"a": [{"EN": 1.0, "MSE": 0.2}, {"EN": float("nan"), "MSE": 0.4}], "b": [{"EN": 3.0, "MSE": 0.1}]}
    )
    assert rows["a"]["EN"] == 1.0 and rows["a"]["MSE"] == pytest.approx(0.3)
    md = format_markdown("T", rows, ["EN", "MSE"], {"a": "Method A"}, {"a": 2, "b": 1}, ["a note"])
    lines = md.splitlines()
    assert lines[0] == "### T" and "| Method | EN ↑ | MSE ↓ | images |" in md
    assert "| Method A | 1.00 | 0.3000 | 2 |" in md
    assert "| b | **3.00** | **0.1000** | 1 |" in md  # higher EN, lower MSE are better
    assert lines[-1] == "- a note"
    parsed = list(csv.reader(format_csv(rows, ["EN", "MSE"]).splitlines()))
    assert parsed[0] == ["method", "EN", "MSE"] and float(parsed[2][1]) == 3.0


def test_grid_layout_size_and_labels():
    rows = [[np.full((50, 70), 10 * i, np.uint8), np.full((50, 70, 3), 200, np.uint8)] for i in range(3)]
    grid = make_grid(rows, ["IR", "VI"], "title", crop=40)
    assert grid.shape == (TITLE_HEIGHT + LABEL_HEIGHT + 3 * 40 + 4 * PAD, 2 * 40 + 3 * PAD, 3)
    top = TITLE_HEIGHT + LABEL_HEIGHT + PAD
    assert (grid[top : top + 40, PAD : PAD + 40] == 0).all()  # row 0, IR panel (value 0)
    assert (grid[top : top + 40, 2 * PAD + 40 : 2 * PAD + 80] == 200).all()
    assert (grid[: TITLE_HEIGHT + LABEL_HEIGHT] < 128).any()  # some label text was drawn
    with pytest.raises(ValueError, match="one per label"):
        make_grid(rows, ["IR"], crop=40)


def test_pixel_baselines():
    ir = np.array([[0, 200]], np.uint8)
    vi = np.array([[[100, 100, 100], [50, 50, 50]]], np.uint8)
    assert pixel_average(ir, vi)[..., 0].tolist() == [[50, 125]]
    assert pixel_max(ir, vi)[..., 0].tolist() == [[100, 200]]
    assert pixel_max(ir, vi[..., 0]).tolist() == [[100, 200]]  # grey visible -> grey output


def test_evaluate_rejects_a_misspelled_key_before_loading_the_model(tmp_path):
    params = load_params(profile="demo")
    params["evaluate"] = {**params["evaluate"], "max_pair": 3}
    with pytest.raises(ValueError, match=r"profiles\.demo\.evaluate: unknown key 'max_pair' \(did you mean 'max_pairs'"):
        evaluate(params, tmp_path / "none.pt", out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_grid_titles_draw_without_missing_glyphs_and_focus_on_heat():
    from lure.evaluation.grid import drawable, hottest_point

    assert drawable("vanilla fusion — roadscene × 4 → “ok”") == 'vanilla fusion - roadscene x 4 -> "ok"'
    assert drawable("Café") == "Cafe"
    dash = make_grid([[np.zeros((8, 8), np.uint8)]], ["x"], "a — b", crop=8)
    plain = make_grid([[np.zeros((8, 8), np.uint8)]], ["x"], "a - b", crop=8)
    assert np.array_equal(dash, plain)  # the em dash is drawn as a dash, not as a box
    ir = np.zeros((100, 120), np.uint8)
    ir[70:80, 90:100] = 255
    row, col = hottest_point(ir, 40)
    assert abs(row - 75) <= 2 and abs(col - 95) <= 2
    grid = make_grid([[ir, ir]], ["IR", "IR"], crop=40, focus="infrared")
    top = TITLE_HEIGHT + LABEL_HEIGHT + PAD
    assert grid[top : top + 40, PAD : PAD + 40].max() == 255  # the hot block is inside the crop
    assert make_grid([[ir, ir]], ["IR", "IR"], crop=40)[top : top + 40, PAD : PAD + 40].max() == 0


def test_baselines_differ_from_each_other(checkpoint, pair_folder):
    fuser = Fuser.from_checkpoint(checkpoint, device="cpu")
    stem = sorted(p.stem for p in (pair_folder / "ir").iterdir())[0]
    ir = np.asarray(Image.open(pair_folder / "ir" / f"{stem}.png"))
    vi = np.asarray(Image.open(pair_folder / "vi" / f"{stem}.png"))
    from data_prep.degradations import degrade_pair

    ir_d, vi_d = degrade_pair(ir, vi, "ll", "sr4", seed=3)
    outputs = {m: run_method(m, fuser, ir_d, vi_d, "ll", "sr4").astype(int) for m in DEGRADED_METHODS}
    for i, a in enumerate(DEGRADED_METHODS):
        assert outputs[a].shape == vi.shape
        for b in DEGRADED_METHODS[i + 1 :]:
            assert np.abs(outputs[a] - outputs[b]).mean() > 0.05, (a, b)


# ----------------------------------------------------------------------------- end to end
def test_evaluate_writes_tables_json_grids_and_fused_images(evaluated):
    result, out, pair_folder = evaluated
    set_slug = pair_folder.name
    assert list(result["vanilla"]) == [set_slug]
    assert list(result["degraded"]) == TASKS
    assert any("absent/test" in n and "not found" in n for n in result["notes"])

    with open(out / "tables" / f"vanilla_{set_slug}.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["method"] for r in table] == [*VANILLA_METHODS, "model:other"]
    assert table[-1]["Qabf"] != table[-2]["Qabf"]  # the reference model is a model of its own
    assert any("gone.pt not found" in n for n in result["notes"])
    assert list(table[0]) == ["method", *METRIC_NAMES, "NIQE", "IR_target_contrast", *RANK_GROUPS, "images"]
    assert sorted(float(r["rank all-10"]) for r in table) != [1.0] * len(table)  # the rows are ranked
    assert all(r["images"] == "3" for r in table)
    assert all(math.isfinite(float(r["PSNR"])) and float(r["NIQE"]) > 0 for r in table)
    for task in TASKS:
        with open(out / "tables" / f"degraded_{slug(task)}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [r["method"] for r in rows] == list(DEGRADED_METHODS)
        assert all(r["images"] == "2" for r in rows)  # degraded_max_pairs
        assert list(rows[0])[-3:] == ["PSNR_clean", "SSIM_clean", "images"]
        values = {r["method"]: (float(r["PSNR_clean"]), float(r["SSIM"])) for r in rows}
        assert len(set(values.values())) == len(DEGRADED_METHODS)  # every method scores differently
        md = (out / "tables" / f"degraded_{slug(task)}.md").read_text()
        assert (
            md.startswith(f"### Degradation-aware fusion — {task.upper()}")
            and "| LURE (task descriptions) |" in md
        )

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"vanilla", "degraded", "paired"}
    assert set(metrics["degraded"]) == set(TASKS) and list(metrics["paired"]) == TASKS
    for task in TASKS:  # the paired table's mean difference is the degraded table's, from the same pairs
        paired, rows = metrics["paired"][task], metrics["degraded"][task]
        for name, method, baseline in [("lure-restore_then_fuse", "lure", "restore_then_fuse"),
                                       ("lure-lure_pseudo", "lure", "lure_pseudo")]:
            assert paired[name]["pairs"] == 2
            assert paired[name]["mean"] == pytest.approx(rows[method]["PSNR_clean"] - rows[baseline]["PSNR_clean"])
            assert paired[name]["low"] <= paired[name]["mean"] <= paired[name]["high"]
    assert set(metrics["vanilla"][set_slug]["lure"]) == {*METRIC_NAMES, "NIQE", "IR_target_contrast", *RANK_GROUPS}
    assert set(metrics["degraded"]["ll"]["lure"]) == {*METRIC_NAMES, "NIQE", "IR_target_contrast", "PSNR_clean", "SSIM_clean"}

    n_cols = {"vanilla": 3 + len(VANILLA_METHODS), "ll": 2 + len(DEGRADED_METHODS)}
    for name, cols in n_cols.items():
        with Image.open(out / "grids" / f"grid_{name}.png") as grid:
            assert grid.size == (cols * 96 + (cols + 1) * PAD, TITLE_HEIGHT + LABEL_HEIGHT + 2 * 96 + 3 * PAD)
    assert (out / "grids" / "grid_oe_lc.png").is_file()

    fused = sorted((out / "fused" / set_slug).iterdir())
    assert [p.stem for p in fused] == sorted(p.stem for p in (pair_folder / "ir").iterdir())
    with Image.open(fused[0]) as img:
        assert img.size == (192, 128) and img.mode == "RGB"
    assert "## Notes" in (out / "tables" / "summary.md").read_text()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_evaluate_stage_entry_reports_a_missing_checkpoint(tmp_path, capsys):
    from pipelines.stages.evaluate import main

    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "r")]) == 1
    assert "none.pt not found" in capsys.readouterr().err


def test_classical_corrections_fix_what_they_should():
    from data_prep.degradations import degrade
    from data_prep.sources.demo import render_scene
    from lure.evaluation.restoration import classical_correction
    from lure.evaluation.scoring import psnr_255 as _psnr

    ir, vi = render_scene(3, height=64, width=80)
    for task, clean in (("ll", vi), ("oe", vi), ("lc", ir)):
        degraded = degrade(clean, task, seed=2)
        fixed = classical_correction(degraded, task)
        assert fixed.shape == clean.shape and fixed.dtype == np.uint8
        assert _psnr(fixed, clean) > _psnr(degraded, clean) + 2, task
    assert np.array_equal(classical_correction(vi, "pd"), vi)
    with pytest.raises(ValueError, match="unknown task"):
        classical_correction(vi, "rain")


def test_evaluate_scores_restoration_on_stage1_shards(checkpoint, tmp_path):
    from data_prep import shards
    from data_prep.sources import get_parser

    parsed = get_parser("demo")(None, train=0, test=2, height=48, width=64, seed=5)
    split_dir = tmp_path / "data" / "shards" / "demo" / "test"
    entry = shards.build_shard(split_dir, "stage1", 0, parsed.stage1["test"])
    shards.write_manifest(split_dir, dataset="demo", split="test", input_hash="x", shards={"stage1": [entry]},
                          source_versions={}, generation={})
    params = load_params(profile="demo")
    params["evaluate"] = {"pair_sets": [], "tasks": [], "restoration_sets": ["demo/test", "absent/test"],
                          "restoration_per_task": 1, "niqe_params": None}
    result = evaluate(params, checkpoint, out_dir=tmp_path / "out", data_root=tmp_path / "data", progress=False)
    scores = result["restoration"]["demo-test"]
    assert set(scores) == {"ll", "hz", "oe", "lc", "sr4", "sr8"}  # pd has nothing to restore
    assert all(scores[t][m]["images"] == 1 for t in scores for m in ("input", "classical", "lure"))
    with open(tmp_path / "out" / "tables" / "restoration_demo-test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["input", "classical", "lure"]
    assert float(rows[0]["ll PSNR"]) < float(rows[1]["ll PSNR"])  # gain/gamma beats a dark input
    assert any("absent/test" in n for n in result["notes"])
    assert "restoration" in json.loads((tmp_path / "out" / "metrics.json").read_text())
