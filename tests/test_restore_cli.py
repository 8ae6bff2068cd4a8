"""`lure restore` (stage-1 restoration from the command line) and `lure fuse` with a 4x/8x smaller
infrared image. Inputs are generated demo scenes, so these run in every clone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_prep.degradations import degrade, downsample
from data_prep.sources.demo import render_scene
from lure import inference
from lure.cli import main
from lure.fuse_cli import infrared_scale, upsample_infrared
from lure.restore_cli import plan_task
from tests.model_helpers import save_seeded_demo_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_seeded_demo_checkpoint(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """One generated 64 x 96 scene: clean and degraded images written as PNG."""
    root = tmp_path_factory.mktemp("scene")
    ir, vi = render_scene(7, height=64, width=96)
    Image.fromarray(ir).save(root / "ir.png")
    Image.fromarray(vi).save(root / "vi.png")
    Image.fromarray(degrade(vi, "ll", seed=1)).save(root / "vi_dark.png")
    Image.fromarray(vi).convert("L").save(root / "vi_grey.png")
    Image.fromarray(downsample(ir, 4)).save(root / "ir_small4.png")
    Image.fromarray(downsample(ir, 8)).save(root / "ir_small8.png")
    Image.fromarray(ir[:40, :50]).save(root / "ir_odd.png")
    return root


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lure {command}: error: "), err
    return err[0]


def test_restore_visible_from_text_keeps_colour_and_size(checkpoint, scene, tmp_path, capsys):
    out = tmp_path / "restored.png"
    rc = main(["restore", "--vi", str(scene / "vi_dark.png"), "--text", "the image is far too dark",
               "--out", str(out), "--checkpoint", str(checkpoint), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "task ll" in printed and f"using checkpoint {checkpoint}" in printed
    with Image.open(out) as img:
        assert img.mode == "RGB" and img.size == (96, 64)
    assert leftovers(tmp_path) == []


def test_restore_matches_the_runner_and_grey_stays_grey(checkpoint, scene, tmp_path):
    out, grey_out = tmp_path / "ir.png", tmp_path / "grey.png"
    assert main(["restore", "--ir", str(scene / "ir.png"), "--task", "lc", "--out", str(out),
                 "--checkpoint", str(checkpoint), "--no-progress"]) == 0
    fuser = inference.Fuser.from_checkpoint(checkpoint, device="cpu")
    expected = fuser.restore(np.asarray(Image.open(scene / "ir.png")), "lc", 1)
    assert np.array_equal(np.asarray(Image.open(out)), expected)
    assert main(["restore", "--vi", str(scene / "vi_grey.png"), "--task", "hz", "--out", str(grey_out),
                 "--checkpoint", str(checkpoint), "--no-progress"]) == 0
    assert Image.open(grey_out).mode == "L"


def test_restore_folder_mode(checkpoint, scene, tmp_path, capsys):
    folder, out_dir = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("vi.png", "vi_dark.png"):
        (folder / name).write_bytes((scene / name).read_bytes())
    (folder / "broken.png").write_text("not an image")
    rc = main(["restore", "--vi-dir", str(folder), "--out-dir", str(out_dir), "--task", "oe",
               "--checkpoint", str(checkpoint), "--no-progress"])
    assert rc == 1  # one file failed, the others are written
    assert sorted(p.name for p in out_dir.iterdir()) == ["vi.png", "vi_dark.png"]
    printed = capsys.readouterr().out
    assert "restored 2 of 3 visible images" in printed and "broken:" in printed


@pytest.mark.parametrize("case", ["other_modality", "wrong_task", "two_inputs", "no_request", "missing", "dir_out"])
def test_restore_bad_requests_give_one_line(case, checkpoint, scene, tmp_path, capsys):
    out = tmp_path / "r.png"
    args = {
        "other_modality": ["--vi", str(scene / "vi.png"), "--text", "the thermal image is blurry"],
        "wrong_task": ["--ir", str(scene / "ir.png"), "--task", "hz"],
        "two_inputs": ["--vi", str(scene / "vi.png"), "--ir", str(scene / "ir.png"), "--task", "pd"],
        "no_request": ["--vi", str(scene / "vi.png")],
        "missing": ["--vi", str(tmp_path / "nope.png"), "--task", "ll"],
        "dir_out": ["--vi-dir", str(scene), "--task", "ll"],
    }[case]
    rc = main(["restore", *args, "--out", str(out), "--checkpoint", str(checkpoint), "--no-progress"])
    assert rc == 2
    line = error_line(capsys, "restore")
    expected = {
        "other_modality": "visible tasks: pd, ll, hz, oe",
        "wrong_task": "infrared tasks: pd, lc, sr4, sr8",
        "two_inputs": "exactly one of",
        "no_request": "--task",
        "missing": "nope.png does not exist",
        "dir_out": "--out-dir",
    }[case]
    assert expected in line
    assert not out.exists()


def test_plan_task_reads_the_request_per_modality():
    assert plan_task(0, "the visible image is hazy", None) == "hz"
    assert plan_task(1, "upscale 8x", None) == "sr8"
    assert plan_task(1, None, "lc") == "lc"
    assert plan_task(0, "the image is clean", None) == "pd"


def test_infrared_scale_and_upsampling():
    vi = np.zeros((480, 640, 3), np.uint8)
    assert infrared_scale(np.zeros((120, 160), np.uint8), vi) == 4
    assert infrared_scale(np.zeros((60, 80), np.uint16), vi) == 8
    assert infrared_scale(np.zeros((480, 640), np.uint8), vi) == 1
    assert infrared_scale(np.zeros((160, 213), np.uint8), vi) is None  # 3x: not supported
    assert infrared_scale(np.zeros((120, 80), np.uint8), vi) is None  # 4x one side, 8x the other
    ramp = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (30, 1))
    up = upsample_infrared(ramp, (160, 120))
    assert up.dtype == np.uint16 and up.shape == (120, 160)
    assert abs(int(up[60, 80]) - 2000) < 150


@pytest.mark.parametrize("factor", [4, 8])
def test_fuse_upsamples_a_smaller_infrared_image_and_selects_sr(factor, checkpoint, scene, tmp_path, capsys):
    out = tmp_path / "f.png"
    rc = main(["fuse", "--ir", str(scene / f"ir_small{factor}.png"), "--vi", str(scene / "vi.png"),
               "--out", str(out), "--checkpoint", str(checkpoint), "--no-progress"])
    assert rc == 0
    captured = capsys.readouterr()
    assert f"infrared: sr{factor}" in captured.out
    assert f"{factor}x smaller" in captured.err and f"infrared task sr{factor}" in captured.err
    assert Image.open(out).size == (96, 64)
    # a request that names the infrared task keeps it
    assert main(["fuse", "--ir", str(scene / f"ir_small{factor}.png"), "--vi", str(scene / "vi.png"),
                 "--ir-task", "lc", "--out", str(out), "--checkpoint", str(checkpoint), "--no-progress"]) == 0
    assert "infrared: lc" in capsys.readouterr().out


def test_fuse_other_size_mismatch_names_both_sizes(checkpoint, scene, tmp_path, capsys):
    rc = main(["fuse", "--ir", str(scene / "ir_odd.png"), "--vi", str(scene / "vi.png"),
               "--out", str(tmp_path / "f.png"), "--checkpoint", str(checkpoint), "--no-progress"])
    assert rc == 2
    line = error_line(capsys, "fuse")
    assert "50x40" in line and "96x64" in line
