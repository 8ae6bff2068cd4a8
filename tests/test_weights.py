"""The weights shipped in weights/: their manifest and sha256, the checkpoint the CLI picks, and
that the shipped model fuses a held-out real pair (and a generated one) better than pixel averaging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.sources.folder import holdout_split
from lure import weights
from lure.cli import main
from lure.fileio import sha256_file
from tests.model_helpers import save_seeded_demo_checkpoint

MANIFEST = json.loads(weights.MANIFEST.read_text()) if weights.MANIFEST.is_file() else None


def test_manifest_lists_verified_weights_with_their_provenance():
    assert MANIFEST is not None, f"{weights.MANIFEST} is missing"
    assert MANIFEST["default"] in MANIFEST["weights"]
    for name, entry in MANIFEST["weights"].items():
        path = weights.WEIGHTS_DIR / entry["file"]
        assert path.is_file(), f"{name}: {path} missing"
        assert sha256_file(path) == entry["sha256"], f"{name}: sha256 differs from the manifest"
        assert path.stat().st_size == entry["bytes"] <= 25 * 1024 * 1024
        assert len(entry["code_commit"]) == 40
        assert entry["training_data"]["train_sets"] and isinstance(entry["heldout_metrics"], dict)
        assert entry["parameters"]["total"] > 0 and entry["profile"] in ("demo", "real", "paper")
    assert MANIFEST["weights"][MANIFEST["default"]]["profile"] != "demo"  # the default is trained on real images


def test_shipped_weights_stay_the_default_after_a_pipeline_run(tmp_path):
    """`lure fuse` without --checkpoint uses the default shipped weights even when the pipeline has
    trained a model (`make demo`); `--checkpoint pipeline`, a shipped name or a path select others."""
    shipped = save_seeded_demo_checkpoint(tmp_path)
    manifest = tmp_path / "manifest.json"
    weights.write_manifest_entry("tiny", {"file": shipped.name, "sha256": sha256_file(shipped), "profile": "demo"},
                                 default=True, manifest_path=manifest)
    pipeline = tmp_path / "stage2" / "model.pt"
    chosen = weights.resolve_checkpoint(None, pipeline=pipeline, manifest_path=manifest)
    assert chosen.path == shipped and "default shipped weights tiny" in chosen.origin
    with pytest.raises(FileNotFoundError, match="--checkpoint pipeline: .* does not exist; train it with `make demo`"):
        weights.resolve_checkpoint("pipeline", pipeline=pipeline, manifest_path=manifest)
    pipeline.parent.mkdir()
    pipeline.write_bytes(shipped.read_bytes())
    chosen = weights.resolve_checkpoint(None, pipeline=pipeline, manifest_path=manifest)
    assert chosen.path == shipped and "--checkpoint pipeline uses the model `make demo` trains" in chosen.origin
    chosen = weights.resolve_checkpoint("pipeline", pipeline=pipeline, manifest_path=manifest)
    assert chosen.path == pipeline and "the pipeline's model" in chosen.origin
    chosen = weights.resolve_checkpoint("tiny", pipeline=pipeline, manifest_path=manifest)
    assert chosen.path == shipped and chosen.origin.startswith("the shipped weights tiny")
    assert weights.resolve_checkpoint(pipeline, pipeline=pipeline, manifest_path=manifest).path == pipeline
    with pytest.raises(FileNotFoundError, match=r"check --checkpoint: a path, `pipeline`, or one of the shipped weights tiny"):
        weights.resolve_checkpoint(tmp_path / "absent.pt", pipeline=pipeline, manifest_path=manifest)
    # nothing ships: the pipeline's model, said so; neither: what to do
    chosen = weights.resolve_checkpoint(None, pipeline=pipeline, manifest_path=tmp_path / "none.json")
    assert chosen.path == pipeline and "no weights ship" in chosen.origin
    with open(shipped, "ab") as handle:  # a modified shipped file is refused
        handle.write(b"x")
    with pytest.raises(FileNotFoundError, match="sha256"):
        weights.resolve_checkpoint(None, pipeline=pipeline, manifest_path=manifest)
    pipeline.unlink()
    with pytest.raises(FileNotFoundError, match="make demo"):
        weights.resolve_checkpoint(None, pipeline=pipeline, manifest_path=tmp_path / "none.json")


def test_info_weights_says_what_fuse_uses(capsys):
    from lure.cli import main

    assert main(["info", "--weights"]) == 0
    out = capsys.readouterr().out
    default = MANIFEST["default"]
    assert f"lure fuse / lure restore use {default}; " in out and "--checkpoint pipeline" in out


def test_export_keeps_the_model_and_drops_training_state(tmp_path):
    import torch

    from lure.checkpoint import load_model, save_checkpoint
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(1)
    source = tmp_path / "trained.pt"
    save_checkpoint(source, model, "demo", step=5, stage="stage2", optimizer={"state": {}})
    info = weights.export_weights(source, tmp_path / "shipped.pt")
    assert info["sha256"] == sha256_file(tmp_path / "shipped.pt") and info["parameters"]["total"] > 0
    loaded, payload = load_model(tmp_path / "shipped.pt")
    assert "optimizer" not in payload and payload["profile"] == "demo"
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_lure_info_lists_the_shipped_weights(capsys):
    assert main(["info", "--weights"]) == 0
    out = capsys.readouterr().out
    assert MANIFEST is not None and MANIFEST["default"] in out and "ok" in out


def test_shipped_model_beats_pixel_average_on_a_held_out_real_pair(shared_data, tmp_path, capsys):
    """One RoadScene pair the shipped model never saw (held out by name, every fifth), fused by the
    CLI with no --checkpoint and no pipeline model: Qabf and SD above pixel averaging."""
    stems = sorted(p.stem for p in (shared_data / "roadscene" / "ir").iterdir())
    stem = sorted(holdout_split(stems, 5))[0]
    ir_path = next((shared_data / "roadscene" / "ir").glob(f"{stem}.*"))
    vi_path = next((shared_data / "roadscene" / "vi").glob(f"{stem}.*"))
    _assert_shipped_model_beats_pixel_average(ir_path, vi_path, tmp_path, capsys)


def test_shipped_model_beats_pixel_average_on_a_generated_pair(demo_pairs, tmp_path, capsys):
    """The same path on a generated demo scene (every clone has it): the CLI picks the shipped
    weights, and the fused image keeps more edges (Qabf) and contrast (SD) than pixel averaging."""
    name = demo_pairs.names()[0]
    _assert_shipped_model_beats_pixel_average(demo_pairs.root / "ir" / name, demo_pairs.root / "vi" / name,
                                              tmp_path, capsys)


def _assert_shipped_model_beats_pixel_average(ir_path, vi_path, tmp_path, capsys) -> None:
    from lure.evaluation.baselines import pixel_average
    from lure.metrics import fusion_metrics, rgb2gray_matlab

    out = tmp_path / "fused.png"
    from lure import inference

    original = inference.DEFAULT_CHECKPOINT
    inference.DEFAULT_CHECKPOINT = tmp_path / "no-pipeline-model.pt"  # force the shipped weights
    try:
        assert main(["fuse", "--ir", str(ir_path), "--vi", str(vi_path), "--out", str(out), "--no-progress"]) == 0
    finally:
        inference.DEFAULT_CHECKPOINT = original
    assert "shipped weights" in capsys.readouterr().out
    ir = np.asarray(Image.open(ir_path).convert("L"))
    vi = np.asarray(Image.open(vi_path).convert("RGB"))
    fused = np.asarray(Image.open(out))
    ours = fusion_metrics(rgb2gray_matlab(fused), ir, rgb2gray_matlab(vi))
    average = fusion_metrics(rgb2gray_matlab(pixel_average(ir, vi)), ir, rgb2gray_matlab(vi))
    assert ours["Qabf"] > average["Qabf"] and ours["SD"] > average["SD"], (ours, average)


def test_ablation_mean_ranks_and_ship_manifest_entry(tmp_path):
    from lure.evaluation.tables import mean_ranks
    from pipelines.ship_weights import training_data

    rows = {"a": {"x": 1.0, "y": 5.0}, "b": {"x": 2.0, "y": 5.0}, "c": {"x": 0.5, "y": 1.0}}
    assert mean_ranks(rows, ("x", "y")) == {"a": 1.5, "b": 1.0, "c": 3.0}  # ties share the best rank
    split = tmp_path / "shards" / "set" / "train"
    split.mkdir(parents=True)
    (split / "manifest.json").write_text(json.dumps(
        {"fusion": {"count": 3, "shards": [{"name": "fusion-000000.tar", "sha256": "ab"}]}}))
    params = {"stage1": {"train_sets": []}, "stage2": {"train_sets": ["set/train", "missing/train"]},
              "data": {"datasets": {"x": {"source": "folder", "root": str(tmp_path / "shards")}}}}
    info = training_data(params, tmp_path)
    assert info["train_sets"] == {"set/train": {"manifest_sha256": sha256_file(split / "manifest.json"),
                                                "samples": 3, "shards": {"fusion-000000.tar": "ab"}}}
    assert info["sources"]["x"]["files"] == 1
    moved = tmp_path / "elsewhere"
    (tmp_path / "shards").rename(moved)  # the content hash does not depend on where the folder lies
    assert weights.folder_digest(moved)["sha256"] == info["sources"]["x"]["sha256"]




def test_ablation_summary_averages_the_sets_ranks_and_reuse_is_checked(tmp_path):
    from pipelines.ablate_stage2 import VARIANTS, parse_reuse, summary_rows

    columns = ("Qabf", "SD")
    per_set = {"day": {"a": {"Qabf": 0.5, "SD": 40.0}, "b": {"Qabf": 0.4, "SD": 30.0}},
               "night": {"a": {"Qabf": 0.3, "SD": 20.0}, "b": {"Qabf": 0.6, "SD": 25.0}}}
    summary, set_ranks = summary_rows(per_set, columns)
    assert set_ranks == {"a": {"day": 1.0, "night": 2.0}, "b": {"day": 2.0, "night": 1.0}}  # a wins by day only
    assert summary["b"]["mean rank"] == summary["a"]["mean rank"] == 1.5
    assert summary["b"] == {"day Qabf": 0.4, "day SD": 30.0, "night Qabf": 0.6, "night SD": 25.0, "mean rank": 1.5}
    per_set["night"]["a"]["SD"] = 30.0  # a still loses Qabf at night, now wins SD
    assert summary_rows(per_set, columns)[0]["a"]["mean rank"] == 1.25
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"x")
    name = next(iter(VARIANTS))
    assert parse_reuse([f"{name}={checkpoint}"], VARIANTS) == {name: checkpoint}
    with pytest.raises(ValueError, match="expected NAME=CKPT"):
        parse_reuse([f"no-such-variant={checkpoint}"], VARIANTS)
    with pytest.raises(ValueError, match="does not exist"):
        parse_reuse([f"{name}={tmp_path / 'missing.pt'}"], VARIANTS)


def test_ablation_tables_are_written_and_written_again_from_their_json(tmp_path):
    from pipelines.ablate_stage2 import COLUMNS, write_ablation
    from pipelines.ablate_stage2 import main as ablate_main

    def row(base: float) -> dict[str, float]:
        return {c: base + i for i, c in enumerate(COLUMNS)}

    run = {"profile": "real", "trained": "trained in a test", "reused": ["+structure"],
           "sets": [{"slug": "day", "spec": "day/test", "pairs": 3}, {"slug": "night", "spec": "night/test", "pairs": 2}],
           "per_set": {"day": {"+structure": row(1.0), "+intensity": row(0.0)},
                       "night": {"+structure": row(0.5), "+intensity": row(2.0)}}}
    write_ablation(tmp_path / "abl", run)
    summary = (tmp_path / "abl.md").read_text()
    # a tie (1.5 each): the first variant listed is chosen
    assert "+structure (intensity 0, structure 1) reused **chosen**" in summary and summary.count("**chosen**") == 1
    assert "day/test: 3 held-out pairs; night/test: 2 held-out pairs" in summary
    assert (tmp_path / "abl_day.md").is_file() and (tmp_path / "abl_night.csv").is_file()
    saved = json.loads((tmp_path / "abl.json").read_text())
    assert saved["set_ranks"] == {"+structure": {"day": 1.0, "night": 2.0}, "+intensity": {"day": 2.0, "night": 1.0}}
    run["per_set"]["day"]["+intensity"] = row(4.0)  # now best in both sets
    write_ablation(tmp_path / "abl", run)
    assert "+intensity (intensity 1, none 0) **chosen**" in (tmp_path / "abl.md").read_text()
    assert json.loads((tmp_path / "abl.json").read_text())["chosen"] == "+intensity"
    assert ablate_main(["--tables-from", str(tmp_path / "abl.json"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again.md").read_text().replace("again_", "abl_") == (tmp_path / "abl.md").read_text()
    assert ablate_main(["--tables-from", str(tmp_path / "abl.md")]) == 1  # not a JSON: one-line error


def test_compare_weights_finds_a_retrain_identical_and_names_what_differs(tmp_path, capsys):
    from lure.checkpoint import read_checkpoint, save_checkpoint
    from pipelines.compare_weights import main as compare_main
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(2)
    trained = tmp_path / "trained.pt"  # as the trainer writes it: with training state
    save_checkpoint(trained, model, "demo", step=5, stage="stage2", optimizer={"state": {}})
    weights.export_weights(trained, tmp_path / "shipped.pt")  # drops the training state only
    payload = read_checkpoint(trained)
    assert weights.compare_weights(trained, tmp_path / "shipped.pt").identical
    assert compare_main([str(trained), str(tmp_path / "shipped.pt")]) == 0
    assert capsys.readouterr().out.startswith(f"identical: {len(payload['model'])} tensors")

    name = next(n for n, p in model.named_parameters() if p.ndim == 4)
    with torch.no_grad():
        dict(model.named_parameters())[name][0].add_(1e-3)
    save_checkpoint(tmp_path / "retrained.pt", model, "demo")
    result = weights.compare_weights(trained, tmp_path / "retrained.pt")
    assert not result.identical and list(result.differing) == [name]
    assert result.differing[name] == pytest.approx(1e-3, rel=1e-3)
    assert result.tensors == len(payload["model"]) and not result.config_differences
    assert compare_main([str(trained), str(tmp_path / "retrained.pt")]) == 1
    assert name in capsys.readouterr().out
    save_checkpoint(tmp_path / "relabelled.pt", model, "real")  # same tensors, another profile
    assert weights.compare_weights(tmp_path / "retrained.pt", tmp_path / "relabelled.pt").config_differences == (
        "profile: 'demo' != 'real'",)

    with pytest.raises(SystemExit) as exit_info:
        compare_main([str(trained), "--shipped", "no-such-weights"])
    assert exit_info.value.code == 2 and "no-such-weights" in capsys.readouterr().err
