"""The steps of the evaluation stage, each on its own: config, pair sets, scoring, report, sections.

No checkpoint is loaded: the sections run with a stand-in fuser (fusion = the visible image,
restoration = the identity), so these tests take seconds.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from lure.config import load_params, profile_names
from lure.evaluation.baselines import DEGRADED_METHODS, VANILLA_METHODS
from lure.evaluation.config import EvaluationConfig, GridConfig
from lure.evaluation.pair_sets import PairSet, PairSets, degraded_samples, load_pair_set, slug
from lure.evaluation.report import Report, Table
from lure.evaluation.scoring import PSNR_CAP_DB, Scorer, psnr_255, score_degraded, score_pairs
from lure.image_io import write_image
from lure.inference import TilingConfig
from lure.paths import REPO_ROOT


def _pair(seed: int, height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ir = rng.integers(0, 256, (height, width), dtype=np.uint8)
    vi = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return ir, vi


class StandInFuser:
    """Fuses to the visible image (brightened when it is told the visible task), restores nothing."""

    profile = "stand-in"
    encoder = None
    tiling = None

    def fuse(self, ir, vi, plan=None, rule_only=False):
        out = (
            vi.astype(np.int16)
            + (7 if rule_only else 0)
            + (3 if plan is not None and plan.visible != "pd" else 0)
        )
        return np.clip(out, 0, 255).astype(np.uint8)

    def restore(self, image, task, modality):
        return image


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("profile", profile_names())
def test_every_profile_of_params_yaml_loads(profile):
    params = load_params(profile=profile)
    cfg = EvaluationConfig.from_params(params)
    assert set(params["evaluate"]) <= set(EvaluationConfig.keys())
    assert cfg.pair_sets == tuple(params["evaluate"]["pair_sets"])
    assert isinstance(cfg.grid, GridConfig) and isinstance(cfg.tiling, TilingConfig)
    assert cfg.degraded_max_pairs == params["evaluate"].get("degraded_max_pairs", cfg.max_pairs)


def test_config_defaults_sit_in_one_place():
    cfg = EvaluationConfig.from_params({"evaluate": {"grid": {"crop": 64}, "pair_sets": "demo/test"}})
    assert cfg.grid == GridConfig(crop=64, pairs=2, focus="centre") and cfg.tasks[0] == "ll"
    assert cfg.pair_sets == ("demo/test",) and cfg.reference_checkpoints == {}
    assert cfg.degraded_max_pairs == cfg.max_pairs == 0 and cfg.tiling == TilingConfig()
    assert EvaluationConfig.from_params({}) == EvaluationConfig()
    assert EvaluationConfig.from_dict({"grid": {"crop": [64, 96]}, "niqe_params": None}).grid.crop == (64, 96)
    with pytest.raises(AttributeError):
        cfg.max_pairs = 3  # frozen
    from lure.evaluation.config import _PARSERS

    assert list(_PARSERS) == EvaluationConfig.keys()  # every key is checked


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"pairsets": []},
            r"^profiles\.demo\.evaluate: unknown key 'pairsets' \(did you mean 'pair_sets'\?\); "
            r"valid keys: pair_sets, degraded_from, .*save_fused, detail_curve$",
        ),
        (
            {"grid": {"crops": 9}},
            r"^profiles\.demo\.evaluate\.grid: unknown key 'crops'.*valid keys: crop, pairs, focus$",
        ),
        (
            {"tiling": {"size": 9}},
            r"^profiles\.demo\.evaluate\.tiling: unknown key 'size'; valid keys: mode, tile",
        ),
        ({"max_pairs": "12"}, r"^profiles\.demo\.evaluate\.max_pairs must be an integer >= 0, got '12'$"),
        ({"max_pairs": True}, r"max_pairs must be an integer"),
        ({"degraded_max_pairs": -1}, r"degraded_max_pairs must be an integer >= 0"),
        ({"tasks": ["rain"]}, r"evaluate\.tasks: unknown task\(s\) \['rain'\]; known: ll, "),
        ({"tasks": "ll"}, None),
        ({"pair_sets": [1]}, r"pair_sets must be a list of strings"),
        ({"save_fused": "yes"}, r"save_fused must be true or false"),
        ({"grid": {"crop": [1]}}, r"grid\.crop must be a positive integer or \[height, width\]"),
        ({"grid": {"focus": "edges"}}, r"grid\.focus must be one of centre, infrared, got 'edges'"),
        ({"grid": 5}, r"grid must be a mapping"),
        ({"tiling": {"tile": "big"}}, r"tiling\.tile must be an integer"),
        (
            {"tiling": {"mode": "sometimes"}},
            r"^profiles\.demo\.evaluate\.tiling: tiling mode must be auto, on or off",
        ),
        ({"degraded_reference": "both"}, r"degraded_reference must be one of inputs, clean"),
        ({"reference_checkpoints": ["a.pt"]}, r"reference_checkpoints must map names to checkpoint paths"),
        ({"niqe_params": 3}, r"niqe_params must be a path or null"),
        ({"detail_curve": [0.0, 1.5]}, r"detail_curve must be a list of detail levels in \[0, 1\], got \[0\.0, 1\.5\]"),
        ({"detail_curve": "0.5"}, r"detail_curve must be a list of detail levels"),
    ],
)
def test_config_rejects_bad_sections_in_one_line(section, message):
    params = {"profile": "demo", "evaluate": section}
    if message is None:
        assert EvaluationConfig.from_params(params).tasks == ("ll",)
        return
    with pytest.raises(ValueError, match=message) as error:
        EvaluationConfig.from_params(params)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- pair sets
def test_seed_rule_is_shared_with_the_shards_and_imports_no_parser(tmp_path):
    from data_prep import derived
    from data_prep.seeding import sample_seed

    assert derived._sample_seed is sample_seed
    assert (
        sample_seed(0, "demo_0001", "oe+lc")
        == sample_seed(0, "demo_0001", "oe+lc")
        != sample_seed(1, "demo_0001", "oe+lc")
    )
    assert 0 <= sample_seed(0, "k", "ll") < 2**32
    code = (
        "import sys, numpy as np\n"
        "import lure.evaluation.runner\nimport lure.evaluation.pair_sets as r\n"
        "ir = np.zeros((32, 48), np.uint8); vi = np.zeros((32, 48, 3), np.uint8)\n"
        f"s, origin = r.degraded_samples(r.PairSet('folder:x', 'x', [('k', ir, vi)]), 'll+lc', {str(tmp_path)!r}, 0)\n"
        "assert len(s) == 1 and 'on the fly' in origin\n"
        "print([m for m in sys.modules if m.startswith('data_prep.sources')])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert out.stdout.strip() == "[]"


def test_folder_pair_sets_load_once_and_note_what_is_missing(tmp_path):
    for n in range(3):
        ir, vi = _pair(n)
        write_image(tmp_path / "set" / "ir" / f"p{n}.png", ir)
        write_image(tmp_path / "set" / "vi" / f"p{n}.png", vi)
    write_image(tmp_path / "set" / "vi" / "lonely.png", vi)
    pair_set = load_pair_set(f"folder:{tmp_path / 'set'}", max_pairs=2)
    assert pair_set.slug == "set" and [k for k, _, _ in pair_set.pairs] == ["p0", "p1"]
    assert np.array_equal(pair_set.pairs[1][1], _pair(1)[0]) and pair_set.pairs[1][2].shape == (48, 64, 3)
    assert (
        load_pair_set(f"folder:{tmp_path / 'none'}") is None
        and load_pair_set("absent/test", tmp_path) is None
    )
    notes: list[str] = []
    sets = PairSets(tmp_path, 0, notes)
    assert sets.get("absent/test") is None and sets.get("absent/test") is None
    assert notes == ["pair set absent/test: not found (build it first); skipped"]
    assert len(sets.get(f"folder:{tmp_path / 'set'}").pairs) == 3
    assert slug("demo/test") == "demo-test" and slug("oe+lc") == "oe_lc"
    assert slug("folder:../shared/data/roadscene") == "roadscene"


def test_degraded_samples_on_the_fly_follow_the_seed_rule(tmp_path):
    from data_prep.degradations import degrade_pair
    from data_prep.seeding import sample_seed

    pairs = [(f"k{n}", *_pair(n)) for n in range(3)]
    samples, origin = degraded_samples(
        PairSet("demo/test", "demo-test", pairs), "oe+lc", tmp_path, 4, max_pairs=2
    )
    assert [s["key"] for s in samples] == [
        "k0",
        "k1",
    ] and origin == "built on the fly from demo/test (seed 4)"
    ir_d, vi_d = degrade_pair(pairs[1][1], pairs[1][2], "oe", "lc", sample_seed(4, "k1", "oe+lc"))
    s = samples[1]
    assert np.array_equal(s["ir"], ir_d) and np.array_equal(s["vi"], vi_d)
    assert (s["vi_task"], s["ir_task"]) == ("oe", "lc") and s["vi_clean"] is pairs[1][2]


# ----------------------------------------------------------------------------- scoring
def test_psnr_is_capped_and_in_decibels():
    a = np.zeros((4, 4), np.uint8)
    assert psnr_255(a, a) == PSNR_CAP_DB
    assert psnr_255(a, a + 1) == pytest.approx(20 * np.log10(255.0))


def test_score_pairs_runs_every_method_on_every_pair():
    pairs = [(f"k{n}", *_pair(n)) for n in range(3)]
    methods = {"vi": lambda ir, vi, v, i: vi, "ir": lambda ir, vi, v, i: ir}
    seen = []
    scored = score_pairs(
        pairs,
        methods,
        lambda f, ir, vi: {"mean": float(f.mean())},
        grid_pairs=2,
        on_outputs=lambda n, key, outputs: seen.append((n, key, list(outputs))),
    )
    assert seen == [(n, f"k{n}", ["vi", "ir"]) for n in range(3)]
    assert (
        scored.counts() == {"vi": 3, "ir": 3} and len(scored.grid_rows) == 2 and len(scored.grid_rows[0]) == 4
    )
    assert scored.rows()["ir"]["mean"] == pytest.approx(np.mean([p[1].mean() for p in pairs]))


def test_score_degraded_scores_against_the_chosen_sources_and_the_clean_output():
    ir, vi = _pair(0)
    sample = {
        "key": "k",
        "ir": ir // 2,
        "vi": vi // 2,
        "ir_clean": ir,
        "vi_clean": vi,
        "vi_task": "ll",
        "ir_task": "pd",
    }
    calls = []

    def scorer(fused, ir_src, vi_src, clean_reference=None):
        calls.append((ir_src is ir, clean_reference is vi))
        return {"x": 1.0}

    tasks = []
    methods = {"m": lambda i, v, vt, it: tasks.append((vt, it)) or v}
    for against_clean in (False, True):
        scored = score_degraded(
            [sample], methods, scorer, lambda s: s["vi_clean"], against_clean, grid_pairs=0
        )
        assert scored.grid_rows == [] and scored.counts() == {"m": 1}
    assert calls == [(False, True), (True, True)] and tasks == [("ll", "pd")] * 2


# ----------------------------------------------------------------------------- report
def test_report_writes_tables_summary_and_metrics(tmp_path):
    report = Report(tmp_path, "# header\n")
    rows = {"a": {"EN": 1.0, "NIQE": float("nan")}, "b": {"EN": 2.0, "NIQE": 3.0}}
    report.add_table(
        Table("vanilla_x", "Title", rows, ["EN", "NIQE"], {"a": "A"}, {"a": 1, "b": 1}, ["a note"])
    )
    report.notes.append("something skipped")
    report.finish({"vanilla": {"x": rows}, "degraded": {}})
    assert [p.name for p in report.files] == ["vanilla_x.md", "vanilla_x.csv", "summary.md", "metrics.json"]
    summary = (tmp_path / "tables" / "summary.md").read_text()
    assert summary.startswith("# header\n\n### Title") and summary.endswith(
        "## Notes\n\n- something skipped\n"
    )
    assert summary.count((tmp_path / "tables" / "vanilla_x.md").read_text()) == 1
    with open(tmp_path / "tables" / "vanilla_x.csv", newline="") as handle:
        assert [r["NIQE"] for r in csv.DictReader(handle)] == ["", "3.0"]
    assert json.loads((tmp_path / "metrics.json").read_text())["vanilla"]["x"]["a"]["NIQE"] is None


# ----------------------------------------------------------------------------- sections
def _run(tmp_path, **section):
    from lure.evaluation.sections import Evaluation

    cfg = EvaluationConfig.from_dict({"niqe_params": None, "grid": {"crop": 32, "pairs": 1}, **section})
    report = Report(tmp_path / "out", "# h\n")
    return Evaluation(
        cfg,
        StandInFuser(),
        Scorer(None, [], report.notes),
        report,
        PairSets(tmp_path / "data", cfg.max_pairs, report.notes),
        seed=0,
    )


def test_vanilla_section_writes_its_table_grid_and_fused_images(tmp_path):
    from lure.evaluation.sections import vanilla_section

    run = _run(tmp_path)
    pair_set = PairSet("demo/test", "demo-test", [(f"k/{n}", *_pair(n)) for n in range(2)])
    rows = vanilla_section(run, pair_set, "grid_vanilla.png")
    assert list(rows) == list(VANILLA_METHODS) and rows["lure"]["EN"] > 0
    out = run.report.out_dir
    assert sorted(p.name for p in (out / "fused" / "demo-test").iterdir()) == ["k-0.png", "k-1.png"]
    assert (out / "grids" / "grid_vanilla.png").is_file() and (
        out / "tables" / "vanilla_demo-test.csv"
    ).is_file()
    assert run.clean_outputs[("demo/test", "k/1")].shape == (48, 64, 3)
    assert "Vanilla fusion — demo/test (2 pairs)" in run.report.sections[0]


def test_degraded_section_reuses_clean_outputs_and_notes_empty_sets(tmp_path):
    from lure.evaluation.sections import degraded_section

    run = _run(tmp_path, degraded_reference="clean", degraded_max_pairs=1)
    pair_set = PairSet("demo/test", "demo-test", [(f"k{n}", *_pair(n)) for n in range(2)])
    run.clean_outputs[("demo/test", "k0")] = pair_set.pairs[0][2]
    rows, n_pairs = degraded_section(run, pair_set, "ll")
    assert n_pairs == 1 and list(rows) == list(DEGRADED_METHODS) and len(run.clean_outputs) == 1
    samples, _ = degraded_samples(pair_set, "ll", tmp_path, 0, 1)
    expected = psnr_255(samples[0]["vi"], pair_set.pairs[0][2])  # the stand-in fuses to the visible image
    assert expected < PSNR_CAP_DB and rows["lure_pseudo"]["PSNR_clean"] == pytest.approx(expected)
    assert "against the clean source images" in run.report.sections[0]
    assert (run.report.out_dir / "grids" / "grid_ll.png").is_file()
    assert degraded_section(run, PairSet("e/test", "e-test", []), "hz") is None
    assert run.report.notes == ["degraded set hz: no pairs; skipped"]


def test_paired_section_agrees_with_the_per_pair_csv_and_the_degraded_table(tmp_path):
    from lure.evaluation.sections import degraded_section, paired_section

    run = _run(tmp_path, degraded_reference="clean", degraded_max_pairs=3)
    assert paired_section(run) == {} and run.report.sections == []  # no degraded set yet
    pair_set = PairSet("demo/test", "demo-test", [(f"k{n}", *_pair(n)) for n in range(3)])
    rows, n_pairs = degraded_section(run, pair_set, "ll")
    with open(run.report.out_dir / "tables" / "degraded_ll_psnr_clean.csv", newline="") as handle:
        per_pair = list(csv.DictReader(handle))
    assert [r["pair"] for r in per_pair] == ["k0", "k1", "k2"] and list(per_pair[0])[1:] == list(DEGRADED_METHODS)
    for method in DEGRADED_METHODS:  # the per-pair values average to the degraded table's mean
        assert np.mean([float(r[method]) for r in per_pair]) == pytest.approx(rows[method]["PSNR_clean"])

    paired = paired_section(run)["ll"]
    for name, method, baseline in [("lure-restore_then_fuse", "lure", "restore_then_fuse"),
                                   ("lure-lure_pseudo", "lure", "lure_pseudo")]:
        diffs = [float(r[method]) - float(r[baseline]) for r in per_pair]
        d = paired[name]
        assert d["pairs"] == 3 and d["mean"] == pytest.approx(np.mean(diffs))
        assert min(diffs) <= d["low"] <= d["mean"] <= d["high"] <= max(diffs)
        assert d["at_least"] == sum(x >= 0 for x in diffs)
    with open(run.report.out_dir / "tables" / "degraded_paired.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["set"] for r in table] == ["ll"]
    assert float(table[0]["lure-lure_pseudo_mean"]) == pytest.approx(paired["lure-lure_pseudo"]["mean"])
    md = (run.report.out_dir / "tables" / "degraded_paired.md").read_text()
    assert "| LL | 3 |" in md and md in run.report.sections


def test_reference_models_and_restoration_sets_that_are_missing_are_noted(tmp_path):
    from lure.evaluation.sections import method_labels, reference_models, restoration_section

    run = _run(tmp_path, reference_checkpoints={"old": str(tmp_path / "old.pt")})
    assert reference_models(run.cfg, run.fuser, run.report.notes) == {}
    assert method_labels(run.cfg)["model:old"] == f"old model ({tmp_path / 'old.pt'})"
    assert restoration_section(run, "absent/test") is None
    assert run.report.notes == [
        f"reference model old: {tmp_path / 'old.pt'} not found; skipped",
        "restoration set absent/test: not found (build it first); skipped",
    ]


def test_evaluate_composes_the_sections_in_order(tmp_path):
    from lure.evaluation.runner import evaluate

    for n in range(2):
        ir, vi = _pair(n)
        write_image(tmp_path / "set" / "ir" / f"p{n}.png", ir)
        write_image(tmp_path / "set" / "vi" / f"p{n}.png", vi)
    spec = f"folder:{tmp_path / 'set'}"
    params = {
        "seed": 3,
        "evaluate": {
            "pair_sets": ["absent/test", spec],
            "degraded_from": spec,
            "tasks": ["ll", "hz"],
            "niqe_params": str(tmp_path / "none.npz"),
            "grid": {"crop": 32, "pairs": 1},
            "restoration_sets": ["absent/test"],
            "save_fused": False,
        },
    }
    result = evaluate(
        params,
        "stand-in",
        out_dir=tmp_path / "out",
        data_root=tmp_path / "data",
        fuser=StandInFuser(),
        progress=False,
    )
    assert list(result["vanilla"]) == ["set"] and list(result["degraded"]) == ["ll", "hz"]
    assert result["counts"] == {"vanilla": {"set": 2}, "degraded": {"ll": 2, "hz": 2}}
    assert [n.split(":")[0] for n in result["notes"]] == [
        "NIQE skipped",
        "pair set absent/test",
        "restoration set absent/test",
    ]
    out = tmp_path / "out"
    assert (out / "grids" / "grid_vanilla_set.png").is_file() and not (out / "fused").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics.keys() == {"vanilla", "degraded", "paired"} and list(metrics["paired"]) == ["ll", "hz"]
    # the stand-in brightens by 3 when told the visible task: LURE and its pseudo run differ on every pair
    assert metrics["paired"]["ll"]["lure-lure_pseudo"]["pairs"] == 2
    summary = (out / "tables" / "summary.md").read_text()
    assert (
        summary.index("Vanilla fusion")
        < summary.index("— LL")
        < summary.index("— HZ")
        < summary.index("pair by pair")
        < summary.index("## Notes")
    )
    assert "(seed 3)" in summary and "checkpoint: `stand-in` (profile stand-in)" in summary


# ----------------------------------------------------------------------------- paired comparisons
def test_paired_difference_mean_interval_and_counts():
    from lure.evaluation.paired import paired_difference

    d = paired_difference([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0], seed=1)
    assert (d.pairs, d.mean, d.at_least) == (4, 1.25, 3)
    assert -1.0 <= d.low < d.mean < d.high <= 3.0
    assert paired_difference([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 5.0], seed=1) == d  # seeded
    assert paired_difference([2.0, 3.0, 2.5], [1.0, 1.5, 2.0]).low > 0  # better on every pair
    assert paired_difference([1.0, 1.0], [1.0, 1.0]).at_least == 2  # a tie counts as at least as good
    one = paired_difference([3.0, float("nan")], [1.0, 0.0])  # the NaN pair is left out
    assert (one.pairs, one.mean, one.low, one.high) == (1, 2.0, 2.0, 2.0)

    # a large sample: the interval is the normal one, mean +- 1.96 sd / sqrt(n)
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 1.0, 400)
    big = paired_difference(a, np.zeros(400), seed=2)
    half = 1.96 * a.std(ddof=1) / np.sqrt(400)
    assert big.mean == pytest.approx(a.mean())
    assert big.high - big.mean == pytest.approx(half, rel=0.15)
    assert big.mean - big.low == pytest.approx(half, rel=0.15)


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([1.0], [1.0, 2.0], {}, "equal lengths"),
        ([float("nan")], [1.0], {}, "no pair has finite values"),
        ([1.0], [1.0], {"confidence": 1.0}, "confidence in"),
        ([1.0], [1.0], {"resamples": 0}, "resamples must be"),
    ],
)
def test_paired_difference_rejects_bad_input_in_one_line(a, b, kwargs, message):
    from lure.evaluation.paired import paired_difference

    with pytest.raises(ValueError, match=message) as error:
        paired_difference(a, b, **kwargs)
    assert "\n" not in str(error.value)


def test_paired_and_per_pair_tables_lay_out_every_value():
    from lure.evaluation.paired import PairedDifference, paired_csv, paired_markdown, per_pair_csv

    results = {
        "oe+lc": {
            "lure-restore_then_fuse": PairedDifference(5, -0.25, -0.5, 0.125, 2),
            "lure-lure_pseudo": PairedDifference(5, 6.5, 6.0, 7.0, 5),
        },
        "sr4": {"lure-lure_pseudo": PairedDifference(5, 0.0, -0.01, 0.01, 3)},
    }
    md = paired_markdown(results, "T", ["a note"])
    assert md.startswith("### T\n") and md.endswith("- a note\n")
    assert "| OE+LC | 5 | -0.25 | [-0.50, +0.12] | 2/5 | +6.50 | [+6.00, +7.00] | 5/5 |" in md
    assert "| SR4 | 5 | – | – | – | +0.00 | [-0.01, +0.01] | 3/5 |" in md
    rows = list(csv.DictReader(paired_csv(results).splitlines()))
    assert rows[0]["lure-restore_then_fuse_high"] == "0.125" and rows[1]["lure-restore_then_fuse_mean"] == ""
    assert per_pair_csv(["a", "b"], {"m": [1.5, float("nan")]}) == "pair,m\na,1.5\nb,\n"
    with pytest.raises(ValueError, match="1 values for 2 pairs"):
        per_pair_csv(["a", "b"], {"m": [1.0]})
