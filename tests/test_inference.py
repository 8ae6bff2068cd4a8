"""lure.inference: tiling maths, the Fuser on image pairs (real, or generated in a clone without
../shared) with a seeded demo-profile model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lure.color import rgb_to_ycbcr
from lure.image_io import infrared_tensor, visible_tensor
from lure.inference import (
    Fuser,
    MissingCheckpointError,
    TilingConfig,
    blend_ramp,
    run_tiled,
    tile_starts,
)
from lure.text.vocabulary import TaskPlan
from tests.model_helpers import save_seeded_demo_checkpoint


@pytest.fixture(scope="module")
def fuser(tmp_path_factory) -> Fuser:
    return Fuser.from_checkpoint(save_seeded_demo_checkpoint(tmp_path_factory.mktemp("ckpt")), device="cpu")


@pytest.fixture(scope="module")
def road_pair(fusion_pairs) -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 centre crop of the first pair (RoadScene FLIR_00006, or a generated demo scene
    without ../shared): (ir uint8 HxW, vi uint8 HxWx3)."""
    name = fusion_pairs.names()[0]
    ir = np.asarray(Image.open(fusion_pairs.root / "ir" / name).convert("L"))
    vi = np.asarray(Image.open(fusion_pairs.root / "vi" / name).convert("RGB"))
    h, w = ir.shape
    top, left = (h - 96) // 2, (w - 128) // 2
    return ir[top : top + 96, left : left + 128].copy(), vi[top : top + 96, left : left + 128].copy()


@pytest.fixture(scope="module")
def large_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 1280 x 1024 pair: LLVIP 190001 of ../shared/data, or a generated demo scene of that size."""
    from lure.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is not None and (shared / "llvip" / "test" / "ir" / "190001.jpg").is_file():
        ir = np.asarray(Image.open(shared / "llvip" / "test" / "ir" / "190001.jpg"))
        vi = np.asarray(Image.open(shared / "llvip" / "test" / "vi" / "190001.jpg").convert("RGB"))
        return ir, vi
    from data_prep.sources.demo import render_scene

    return render_scene(7, 1024, 1280)


# ----------------------------------------------------------------------------- tiling maths
@pytest.mark.parametrize(
    "length,tile,overlap",
    [(1024, 768, 256), (1280, 768, 256), (1000, 512, 128), (500, 512, 128), (769, 768, 0)],
)
def test_tile_starts_cover_the_axis_with_the_requested_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    assert starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # overlap at least `overlap`
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
    assert covered.all()


def test_blend_ramp_is_raised_cosine_inside_and_flat_at_image_borders():
    first, middle = blend_ramp(0, 768, 1280, 256), blend_ramp(256, 768, 1280, 256)
    assert first[0] == 1 and first[-1] < 0.001 and first[:512].eq(1).all()
    assert middle[0] < 0.001 and middle[-1] < 0.001 and middle[256:512].eq(1).all()
    assert (middle > 0).all()
    # a rising and a falling ramp over the same pixels sum to one (partition of unity)
    rise = middle[:256]
    assert torch.allclose(rise + rise.flip(0), torch.ones(256, dtype=rise.dtype))


def test_run_tiled_reproduces_a_pointwise_function_exactly():
    x = torch.rand(1, 3, 300, 410, generator=torch.Generator().manual_seed(0))
    y = torch.rand(1, 1, 300, 410, generator=torch.Generator().manual_seed(1))
    calls = []

    def fn(a, b):
        calls.append(a.shape[-2:])
        return torch.cat([a * 2 + b, b - a[:, :1]], dim=1)

    out = run_tiled(fn, [x, y], tile=128, overlap=32)
    assert len(calls) == len(tile_starts(300, 128, 32)) * len(tile_starts(410, 128, 32)) > 1
    assert torch.allclose(out, fn(x, y), atol=1e-6)


def test_tiling_config_auto_threshold_and_validation():
    cfg = TilingConfig()
    assert cfg.active(1024, 1280) and not cfg.active(480, 640)
    assert TilingConfig(mode="on").active(100, 100) and not TilingConfig(mode="off").active(5000, 5000)
    with pytest.raises(ValueError, match="overlap"):
        TilingConfig(tile=64, overlap=64)
    with pytest.raises(ValueError, match="unknown tiling"):
        TilingConfig.from_dict({"size": 3})


# ----------------------------------------------------------------------------- input conversion
def test_infrared_inputs_16_bit_and_3_channel_grey_match_8_bit():
    ir8 = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    ref = infrared_tensor(ir8)
    assert torch.allclose(infrared_tensor(ir8.astype(np.uint16) * 257), ref, atol=1e-7)
    assert torch.allclose(infrared_tensor(np.repeat(ir8[:, :, None], 3, axis=2)), ref, atol=1e-7)
    raw = ir8.astype(np.uint16) + 7000  # raw counts in a narrow band of the 16-bit range
    stretched = infrared_tensor(raw, ir_range="stretch")
    assert stretched.min() == 0 and stretched.max() == 1
    with pytest.raises(ValueError, match="uint8 or uint16"):
        infrared_tensor(ir8.astype(np.float32))
    assert visible_tensor(np.zeros((4, 5, 4), np.uint8)).shape == (1, 3, 4, 5)  # alpha dropped
    assert visible_tensor(np.zeros((4, 5), np.uint8)).shape == (1, 1, 4, 5)


# ----------------------------------------------------------------------------- the Fuser
def test_missing_checkpoint_says_how_to_produce_one(tmp_path):
    with pytest.raises(MissingCheckpointError, match="not found"):
        Fuser.from_checkpoint(tmp_path / "none.pt", device="cpu")


def test_fuse_output_has_visible_size_and_layout(fuser, road_pair):
    ir, vi = road_pair
    fused = fuser.fuse(ir, vi)
    assert fused.shape == vi.shape and fused.dtype == np.uint8
    grey = fuser.fuse(ir, np.asarray(Image.fromarray(vi).convert("L")))
    assert grey.shape == ir.shape and grey.dtype == np.uint8
    # 16-bit and 3-channel infrared give the same result as 8-bit
    assert np.array_equal(fuser.fuse(ir.astype(np.uint16) * 257, vi), fused)
    assert np.array_equal(fuser.fuse(np.repeat(ir[:, :, None], 3, axis=2), vi), fused)
    with pytest.raises(ValueError, match="same size"):
        fuser.fuse(ir[:, :-8], vi)


def test_clean_visible_keeps_its_chroma_degraded_visible_takes_the_network_chroma(fuser, road_pair):
    ir, vi = road_pair

    def chroma(image: np.ndarray) -> torch.Tensor:
        return rgb_to_ycbcr(visible_tensor(image))[:, 1:]

    clean = fuser.fuse(ir, vi)
    interior = (clean > 2).all(axis=2) & (clean < 253).all(axis=2)  # away from RGB clipping
    diff = (chroma(clean) - chroma(vi)).abs()[0].amax(0).numpy()[interior]
    assert diff.max() <= 2.5 / 255  # uint8 rounding only
    low_light = fuser.fuse(ir, vi, vi_task="ll")
    network = fuser.fuse_tensor(visible_tensor(vi), infrared_tensor(ir), TaskPlan(visible="ll"))
    net_cbcr = rgb_to_ycbcr(network)[:, 1:]
    assert (chroma(low_light) - net_cbcr).abs().mean() < 1.5 / 255
    assert (chroma(low_light) - chroma(vi)).abs().mean() > 3 / 255
    forced = fuser.fuse(ir, vi, vi_task="ll", chroma="visible")
    assert (chroma(forced) - chroma(vi)).abs().mean() < 1.5 / 255


def test_task_descriptions_and_rule_only_change_the_output(fuser, road_pair):
    ir, vi = road_pair
    clean = fuser.fuse(ir, vi).astype(int)
    # untrained (seeded) weights respond weakly to the text: any change of a few pixels' 8-bit
    # values shows the description reaches the output; an ignored text gives exactly 0
    for kwargs in ({"ir_task": "lc"}, {"plan": TaskPlan(visible="hz", infrared="sr4")}, {"rule_only": True}):
        assert np.abs(fuser.fuse(ir, vi, **kwargs).astype(int) - clean).mean() > 0.01, kwargs
    # an explicit vi_task overrides the plan's visible task
    assert np.array_equal(fuser.fuse(ir, vi, plan=TaskPlan(visible="oe"), vi_task="pd"), fuser.fuse(ir, vi))


def test_restore_returns_the_modality_layout(fuser, road_pair):
    ir, vi = road_pair
    restored_vi = fuser.restore(vi, "ll", 0)
    restored_ir = fuser.restore(ir, "sr4", 1)
    assert restored_vi.shape == vi.shape and restored_ir.shape == ir.shape
    assert restored_vi.dtype == restored_ir.dtype == np.uint8
    assert not np.array_equal(restored_vi, fuser.restore(vi, "pd", 0))
    with pytest.raises(ValueError, match="not defined for the infrared"):
        fuser.restore(ir, "ll", 1)


@pytest.mark.slow
def test_tiled_and_untiled_large_outputs_agree(fuser, large_pair):
    """1280 x 1024 pair (LLVIP, or a generated demo scene without ../shared): default tiling (768 px
    tiles, 256 px overlap, 4 tiles) against one whole-image pass. Channel attention pools over its
    input, so tiles cannot match exactly; the fused 8-bit images must agree within 2 grey levels
    everywhere."""
    ir, vi = large_pair
    assert vi.shape == (1024, 1280, 3) and ir.shape[:2] == (1024, 1280)
    assert TilingConfig().active(1024, 1280)  # the default ("auto") tiles this size
    tiled = fuser.fuse(ir, vi, tile="auto").astype(int)
    whole = fuser.fuse(ir, vi, tile="off").astype(int)
    difference = np.abs(tiled - whole)
    assert difference.max() <= 2, f"max abs difference {difference.max()}/255"
    assert difference.max() > 0  # the tiled path really ran (global attention differs per tile)
