"""`lure fuse`: one pair, folders, 8/16-bit inputs, and clear failures that leave no partial file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from lure import inference, weights
from lure.cli import main
from lure.image_io import write_image
from tests.model_helpers import save_seeded_demo_checkpoint, write_pair_crops


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_seeded_demo_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pairs(fusion_pairs, tmp_path_factory):
    """Three pairs (RoadScene, or generated without ../shared) cropped to 96 x 128, as ir/ and vi/ PNGs."""
    return write_pair_crops(fusion_pairs.root, tmp_path_factory.mktemp("pairs"), 96, 128)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lure fuse: error: "), err
    return err[0]


def test_fuse_one_pair_with_text(checkpoint, pairs, tmp_path, capsys):
    stem = sorted(p.stem for p in (pairs / "ir").iterdir())[0]
    out = tmp_path / "fused.png"
    rc = main(
        [
            "fuse",
            "--ir",
            str(pairs / "ir" / f"{stem}.png"),
            "--vi",
            str(pairs / "vi" / f"{stem}.png"),
            "--text",
            "the visible image is too dark and the infrared one is blurry",
            "--out",
            str(out),
            "--checkpoint",
            str(checkpoint),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert "visible: ll, infrared: sr4" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (128, 96)
    assert leftovers(tmp_path) == []


def test_fuse_accepts_16_bit_tiff_and_png_infrared(checkpoint, pairs, tmp_path):
    stem = sorted(p.stem for p in (pairs / "ir").iterdir())[1]
    ir8 = np.asarray(Image.open(pairs / "ir" / f"{stem}.png"))
    tifffile.imwrite(tmp_path / "ir16.tif", ir8.astype(np.uint16) * 257)
    Image.fromarray(ir8.astype(np.uint16) * 257).save(tmp_path / "ir16.png")
    outputs = []
    for ir_path in (pairs / "ir" / f"{stem}.png", tmp_path / "ir16.tif", tmp_path / "ir16.png"):
        out = tmp_path / f"out_{ir_path.suffix[1:]}_{ir_path.stem}.png"
        assert (
            main(
                [
                    "fuse",
                    "--ir",
                    str(ir_path),
                    "--vi",
                    str(pairs / "vi" / f"{stem}.png"),
                    "--out",
                    str(out),
                    "--checkpoint",
                    str(checkpoint),
                    "--vi-task",
                    "pd",
                    "--ir-task",
                    "lc",
                    "--no-progress",
                ]
            )
            == 0
        )
        outputs.append(np.asarray(Image.open(out)))
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


@pytest.mark.parametrize("case", ["missing", "not_image", "sizes", "request", "checkpoint", "extension"])
def test_bad_input_exits_non_zero_with_one_line_and_no_output(case, checkpoint, pairs, tmp_path, capsys):
    stem = sorted(p.stem for p in (pairs / "ir").iterdir())[0]
    ir, vi = pairs / "ir" / f"{stem}.png", pairs / "vi" / f"{stem}.png"
    out = tmp_path / "fused.png"
    extra = ["--checkpoint", str(checkpoint)]
    if case == "missing":
        ir = tmp_path / "nope.png"
    elif case == "not_image":
        ir = tmp_path / "fake.png"
        ir.write_text("this is not a PNG")
    elif case == "sizes":
        small = tmp_path / "small.png"
        Image.open(ir).crop((0, 0, 64, 64)).save(small)
        ir = small
    elif case == "request":
        extra += ["--text", "please remove the rain streaks"]
    elif case == "checkpoint":
        extra = ["--checkpoint", str(tmp_path / "absent.pt")]
    elif case == "extension":
        out = tmp_path / "fused.xyz"
    rc = main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), "--no-progress", *extra])
    assert rc == 2
    line = one_error_line(capsys)
    expected = {
        "missing": "nope.png does not exist",
        "not_image": "not a readable image",
        "sizes": "same size",
        "request": "rain",
        "checkpoint": "absent.pt not found",
        "extension": "unsupported extension",
    }[case]
    assert expected in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_default_checkpoint_missing_says_how_to_produce_it(monkeypatch, pairs, tmp_path, capsys):
    monkeypatch.setattr(inference, "DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "stage2" / "model.pt")
    monkeypatch.setattr(weights, "MANIFEST", tmp_path / "weights" / "manifest.json")  # nothing shipped
    stem = sorted(p.stem for p in (pairs / "ir").iterdir())[0]
    rc = main(
        [
            "fuse",
            "--ir",
            str(pairs / "ir" / f"{stem}.png"),
            "--vi",
            str(pairs / "vi" / f"{stem}.png"),
            "--out",
            str(tmp_path / "f.png"),
        ]
    )
    assert rc == 2
    line = one_error_line(capsys)
    assert "make demo" in line and "dvc repro" in line
    assert not (tmp_path / "f.png").exists()


def test_folder_mode_matches_stems_and_reports_skips(checkpoint, pairs, tmp_path, capsys):
    ir_dir, vi_dir, out_dir = tmp_path / "ir", tmp_path / "vi", tmp_path / "out"
    ir_dir.mkdir()
    vi_dir.mkdir()
    stems = sorted(p.stem for p in (pairs / "ir").iterdir())
    for stem in stems[:2]:  # two good pairs
        (ir_dir / f"{stem}.png").write_bytes((pairs / "ir" / f"{stem}.png").read_bytes())
        (vi_dir / f"{stem}.png").write_bytes((pairs / "vi" / f"{stem}.png").read_bytes())
    (ir_dir / "orphan.png").write_bytes((pairs / "ir" / f"{stems[2]}.png").read_bytes())  # no partner
    Image.open(pairs / "ir" / f"{stems[2]}.png").crop((0, 0, 50, 40)).save(ir_dir / "mismatch.png")
    (vi_dir / "mismatch.png").write_bytes((pairs / "vi" / f"{stems[2]}.png").read_bytes())
    rc = main(
        [
            "fuse",
            "--ir-dir",
            str(ir_dir),
            "--vi-dir",
            str(vi_dir),
            "--out-dir",
            str(out_dir),
            "--checkpoint",
            str(checkpoint),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 1  # one matched pair failed; the others are written
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{s}.png" for s in stems[:2])
    assert "fused 2 of 3 matched pairs" in out and "skipped 2:" in out
    assert "orphan: no visible image" in out and "mismatch:" in out and "same size" in out


def test_atomic_write_leaves_nothing_when_saving_fails(tmp_path):
    with pytest.raises(TypeError):
        write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.float64))  # Pillow cannot encode it
    assert list(tmp_path.iterdir()) == []


def test_console_entry_point_reports_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lure.cli",
            "fuse",
            "--ir",
            str(tmp_path / "a.png"),
            "--vi",
            str(tmp_path / "b.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lure fuse: error: infrared image {tmp_path / 'a.png'} does not exist"
    ]
