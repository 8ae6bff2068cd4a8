"""The model card ``weights/README.md``: generated from the manifest, committed up to date, the same
with or without ``../shared``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lure import model_card
from lure.model_card import GENERATED_LINE, SECTIONS, card_path, render_card, write_card
from lure.paths import shared_data_dir, shared_dir
from lure.weights import MANIFEST, export_weights, read_manifest, write_manifest_entry

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "weights" / "README.md"


def _models(card: str) -> dict[str, str]:
    """``{heading: text}`` of each model's part of the card (``## <name>[ (default)]``)."""
    parts = re.split(r"^## ", card, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


def test_committed_card_is_what_the_generator_makes():
    expected = render_card(read_manifest(MANIFEST))
    assert COMMITTED.is_file(), "weights/README.md is missing: run `python -m pipelines.ship_weights --card`"
    assert COMMITTED.read_text(encoding="utf-8") == expected, (
        "weights/README.md is stale (weights/manifest.json or lure/model_card.py changed): "
        "run `python -m pipelines.ship_weights --card` and commit it")
    # every relative link of the card opens a file or folder of the repository
    for target in re.findall(r"\]\((?!https?://|#)([^)#]+)", expected):
        assert (COMMITTED.parent / target).exists(), f"weights/README.md links to {target}, which does not exist"
    manifest = read_manifest(MANIFEST)
    first = next(iter(_models(expected)))
    assert first == f"{manifest['default']} (default)"


def _metrics(base: float) -> dict:
    vanilla = {m: base + i / 7 for i, m in enumerate(model_card.VANILLA_METRICS + ("MSE", "NIQE"))}
    return {
        "vanilla": {"pairs-test": {"average": vanilla, "lure": {k: v + 1 for k, v in vanilla.items()},
                                   "model:tiny-a": {k: v + 0.5 for k, v in vanilla.items()}}},
        "degraded": {task: {"average": {"PSNR_clean": 10.0}, "restore_then_fuse": {"PSNR_clean": 21.004},
                            "lure_pseudo": {"PSNR_clean": 12.5}, "lure": {"PSNR_clean": 21.0}}
                     for task in ("hz", "ll", "oe+lc")},
        "restoration": {"pairs-restore": {"ll": {m: {"PSNR": 10.0 + i, "SSIM": 0.5 + i / 10, "images": 3}
                                                 for i, m in enumerate(("input", "classical", "lure"))}}},
    }


@pytest.fixture(scope="module")
def synthetic_manifest(tmp_path_factory) -> Path:
    """A manifest of two tiny demo-profile entries: ``tiny-a`` (no held-out run, scored as a reference
    row of ``tiny-b``) and ``tiny-b`` (the default, trained on LLVIP and a derived set)."""
    from tests.model_helpers import save_seeded_demo_checkpoint

    root = tmp_path_factory.mktemp("card")
    weights = root / "weights"
    manifest = weights / "manifest.json"
    exported = export_weights(save_seeded_demo_checkpoint(root), weights / "tiny-a.pt")
    shard = {"manifest_sha256": "ab" * 32, "samples": 4, "shards": {"fusion-000000.tar": "cd" * 32}}
    write_manifest_entry("tiny-a", {
        "file": "tiny-a.pt", **exported, "code_commit": "1234567" + "0" * 33, "code_uncommitted_changes": True,
        "training": {"note": "a synthetic entry"},
        "training_data": {"train_sets": {"demo/train": shard}, "sources": {}},
        "heldout_metrics": {},
    }, manifest_path=manifest)
    (weights / "tiny-b.pt").write_bytes((weights / "tiny-a.pt").read_bytes())
    write_manifest_entry("tiny-b", {
        "file": "tiny-b.pt", **exported, "sha256": "ef" * 32, "code_commit": "89abcde" + "0" * 33,
        "code_uncommitted_changes": False,
        "training": {"stage1_steps": 10, "stage1_wall_s": 125.4, "training_wall_min": 2.5, "machine": "a laptop",
                     "command": "python -m a|b", "note": "second entry"},
        "training_data": {"train_sets": {"llvip/train": shard, "real-restoration/train": shard},
                          "sources": {"llvip": {"files": 8, "root": "@shared/llvip", "sha256": "12" * 32}}},
        "heldout_metrics": _metrics(1.0),
    }, default=True, manifest_path=manifest)
    return manifest


def test_card_has_every_section_for_each_model_default_first(synthetic_manifest, tmp_path):
    manifest = read_manifest(synthetic_manifest)
    assert manifest["default"] == "tiny-b"
    path = write_card(synthetic_manifest)
    assert path == card_path(synthetic_manifest) == synthetic_manifest.parent / "README.md"
    card = path.read_text(encoding="utf-8")
    assert card.startswith("---\nlicense: mit\n") and f"---\n\n{GENERATED_LINE}\n" in card
    assert "datasets:\n  - llvip\n  - roadscene\n---" in card  # trained on: llvip/train and the derived set
    models = _models(card)
    assert list(models) == ["tiny-b (default)", "tiny-a"]  # the default first, and marked
    assert card.index("[tiny-b](#tiny-b-default) (default)") < card.index("[tiny-a](#tiny-a)")
    for heading, text in models.items():
        name = heading.split()[0]
        entry = manifest["weights"][name]
        titles = re.findall(r"^### (.+)$", text, flags=re.MULTILINE)
        assert titles == list(SECTIONS), f"{name}: sections {titles}"
        assert f"`{entry['sha256']}`" in text and f"`weights/{entry['file']}`" in text
        assert f"--shipped {name}" in text and "dvc exp run -S profile=demo" in text
    a, b = models["tiny-a"], models["tiny-b (default)"]
    assert "--checkpoint tiny-a" in a and "--checkpoint tiny-b" not in b
    assert "with uncommitted changes" in a
    assert "reference row `model:tiny-a` of `tiny-b`" in a and "tiny-a (this file)" in a
    assert "tiny-a (reference)" in b and "LURE (tiny-b)" in b
    # training facts in words, fixed float formatting, derived numbers signed
    assert "- hardware: a laptop" in b and "- stage 1 wall time: 125 s (2.1 min)" in b
    assert "- training wall time (stages 1 and 2): 2.5 min" in b and "- command: python -m a|b" in b
    assert "| HZ | 10.00 | 21.00 | 12.50 | 21.00 | +8.50 | +0.00 |" in b  # −0.004 dB rounds to +0.00
    assert "| [pairs-restore]" not in b and "| pairs-restore | LL | 10.00 / 0.500 | 11.00 / 0.600 |" in b
    assert "LLVIP" in b and "non-commercial" in b and "evaluation only" not in b
    # no raw Python/JSON structures, no absolute paths, no dates
    assert not re.search(r"[{\[]['\"]", card) and str(tmp_path.parent) not in card
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", card)
    # deterministic: the same text from a manifest written with another key order
    shuffled = json.loads(json.dumps(manifest), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert render_card(shuffled) == card


def test_ship_weights_card_mode_rewrites_only_the_card(synthetic_manifest, monkeypatch, capsys):
    from pipelines import ship_weights

    card = card_path(synthetic_manifest)
    card.write_text("stale\n")
    before = synthetic_manifest.read_bytes()
    monkeypatch.setattr(ship_weights, "write_card", lambda: write_card(synthetic_manifest))
    assert ship_weights.main(["--card"]) == 0
    assert card.read_text(encoding="utf-8") == render_card(read_manifest(synthetic_manifest))
    assert synthetic_manifest.read_bytes() == before
    assert not list(card.parent.glob(".*.tmp"))
    with pytest.raises(SystemExit):
        ship_weights.main(["--profile", "demo"])
    assert "--name and --profile are required" in capsys.readouterr().err


def test_card_does_not_depend_on_shared(monkeypatch, tmp_path):
    with_shared = render_card(read_manifest(MANIFEST))
    sources = shared_data_dir() / "SOURCES.md" if shared_data_dir() else None
    monkeypatch.setenv("LURE_SHARED_DIR", str(tmp_path / "absent"))
    assert shared_dir() is None
    assert render_card(read_manifest(MANIFEST)) == with_shared
    # the data sets' facts are constants; where ../shared is present they agree with its SOURCES.md
    if sources is not None and sources.is_file():
        text = sources.read_text(encoding="utf-8")
        for name, facts in model_card.DATASETS.items():
            if facts["url"]:
                assert facts["url"].removeprefix("https://") in text, f"{name}: origin not in SOURCES.md"
    # the generator imports no data, training, evaluation, command or pipeline code
    from lure.code_deps import import_closure

    closure = {p.as_posix() for p in import_closure("lure.model_card", REPO)}
    forbidden = ("lure/training/", "lure/evaluation/", "lure/data/", "lure/text/", "data_prep/", "pipelines/",
                 "lure/cli.py", "lure/fuse_cli.py", "lure/restore_cli.py", "lure/info.py", "lure/doctor.py")
    assert not [p for p in closure if p.startswith(forbidden)]
