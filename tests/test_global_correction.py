"""The global affine correction (ours, ``model.global_correction``): whole-image statistics, the
text-conditioned per-channel gain/shift, its place in the network, and that crops and tiles are
corrected with the statistics of the image they were cut from. No mocks: the real modules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lure.checkpoint import load_model, read_checkpoint, save_checkpoint
from lure.config import load_params, model_config
from lure.inference import Fuser, TilingConfig, run_tiled
from lure.models.config import LUREConfig
from lure.models.global_correction import (
    MAX_STATS_SIDE,
    STAT_QUANTILES,
    STATS_PER_CHANNEL,
    GlobalAffineCorrection,
    array_statistics,
    image_statistics,
    log_spread,
)
from lure.models.lure_model import LURE

TINY = LUREConfig(widths=(8, 16, 16, 24), latent_channels=(4, 8, 8, 8), base_blocks=(1, 1, 1, 1),
                  branch_blocks=(1, 1, 1, 1), decoder_blocks=(1, 1, 1, 1), fusion_blocks=(1, 1, 1, 1),
                  heads=2, text_backbone_dim=32, text_dim=16, global_correction=True)


def randomise_correction(model: LURE, seed: int = 3, std: float = 0.5) -> None:
    """Give the (zero-initialised) last layer of the correction random weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.global_correction.mlp[-1].parameters():
            p.copy_(std * torch.randn(p.shape, generator=generator))


def test_statistics_are_the_mean_spread_and_quantiles_of_each_channel():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 40, 50, generator=generator) ** torch.tensor([1.0, 2.0, 0.5])[:, None, None]
    stats = image_statistics(image)
    assert stats.shape == (2, 3, STATS_PER_CHANNEL) and stats.dtype == torch.float32
    flat = image.flatten(2).double().numpy()
    np.testing.assert_allclose(stats[..., 0], flat.mean(-1), atol=1e-6)
    np.testing.assert_allclose(stats[..., 1], flat.std(-1), atol=1e-6)
    np.testing.assert_allclose(stats[..., 2:], np.moveaxis(np.quantile(flat, STAT_QUANTILES, axis=-1), 0, -1),
                               atol=1e-6)
    # a darker channel has a lower mean and median: the statistics tell the channels apart
    assert stats[0, 1, 0] < stats[0, 0, 0] < stats[0, 2, 0]
    # a grey image is seen as the network sees it: repeated to three equal channels
    grey = image_statistics(image[:, :1])
    assert torch.equal(grey[:, 1], grey[:, 0]) and torch.equal(grey[:, 0], stats[:, 0])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        image_statistics(image[0])


def test_large_images_are_read_on_a_regular_subsample_and_arrays_match_tensors():
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (1000, 700, 3), dtype=np.uint8)
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255
    stride = math.ceil(1000 / MAX_STATS_SIDE)
    assert stride == 4
    assert torch.equal(image_statistics(tensor), image_statistics(tensor[..., ::stride, ::stride]))
    assert torch.allclose(array_statistics(array), image_statistics(tensor)[0], atol=1e-6)
    grey = array[..., 0]
    assert torch.allclose(array_statistics(grey), image_statistics(tensor[:, :1])[0], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (7, 5, 3), (96, 96, 3), (301, 496), (257, 511, 3), (480, 640, 3),
                                   (512, 640), (100, 100, 1)])
def test_array_statistics_are_bit_identical_to_the_tensor_path(shape):
    """The loaders' histogram quantiles and uint8 subsample must give exactly the statistics of
    image_statistics(image / 255): a retrain's bit-reproducibility rests on them."""
    rng = np.random.default_rng(sum(shape))
    images = [rng.integers(0, 256, shape, dtype=np.uint8),
              rng.normal(90, 25, shape).clip(0, 255).astype(np.uint8),  # a narrow, clipped histogram
              np.full(shape, 37, dtype=np.uint8)]  # one value: every quantile equal
    for image in images:
        x = torch.from_numpy(image.astype(np.float32) / 255.0)
        x = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
        for channels in ((3, 1) if x.shape[1] == 1 else (3,)):
            expected = image_statistics(x, channels)[0]
            found = array_statistics(image, channels)
            assert found.shape == (channels, STATS_PER_CHANNEL)
            assert torch.equal(found, expected), (shape, channels, (found - expected).abs().max())
    # not uint8: the plain conversion path, the same statistics
    wide = images[0].astype(np.uint16)
    assert torch.equal(array_statistics(wide), array_statistics(images[0]))


def test_correction_starts_as_the_identity_and_is_a_bounded_affine_map_per_channel():
    torch.manual_seed(0)
    correction = GlobalAffineCorrection(channels=3, text_dim=8)
    image = torch.rand(2, 3, 12, 16)
    stats, text = image_statistics(image), torch.randn(2, 8)
    assert torch.allclose(correction(image, stats, text), image, atol=1e-6)

    with torch.no_grad():
        correction.mlp[-1].bias.copy_(torch.tensor([10.0, 0.0, -10.0, 0.1, 0.0, -0.2]))  # log gains, shifts
    gain, shift = correction.gain_and_shift(stats, text)
    bound = math.exp(correction.max_log_gain)
    assert torch.allclose(gain[:, 1], torch.ones(2)) and (gain[:, 0] < bound).all() and (gain[:, 2] > 1 / bound).all()
    assert gain[0, 0] > 15 and gain[0, 2] < 1 / 15  # large but bounded
    mean = stats[..., 0][..., None, None]
    expected = mean + gain[..., None, None] * (image - mean) + shift[..., None, None]
    assert torch.allclose(correction(image, stats, text), expected, atol=1e-6)
    # the gain depends on the statistics and on the text, once the last layer is trained
    randomise = torch.Generator().manual_seed(2)
    with torch.no_grad():
        correction.mlp[-1].weight.copy_(torch.randn(correction.mlp[-1].weight.shape, generator=randomise))
    g_a, _ = correction.gain_and_shift(stats, text)
    g_b, _ = correction.gain_and_shift(image_statistics(image * 0.3), text)
    g_c, _ = correction.gain_and_shift(stats, torch.randn(2, 8))
    assert not torch.allclose(g_a, g_b) and not torch.allclose(g_a, g_c)


def test_log_spread_features_are_the_log_std_and_log_range_and_enter_the_mlp():
    """with_log_spread: the MLP also reads log(std + eps) and log(q99 - q1 + eps) per channel; a
    contrast change of the image shifts them by log(contrast) exactly (before eps)."""
    generator = torch.Generator().manual_seed(4)
    image = torch.rand(2, 3, 40, 30, generator=generator)
    stats = image_statistics(image)
    features = log_spread(stats, eps=0.0)
    assert features.shape == (2, 6)
    x = image.flatten(2)
    spread = torch.quantile(x, 0.99, dim=-1) - torch.quantile(x, 0.01, dim=-1)
    torch.testing.assert_close(features, torch.cat([x.std(-1, unbiased=False).log(), spread.log()], 1))
    low = log_spread(image_statistics(0.5 + 0.25 * (image - 0.5)), eps=0.0)
    torch.testing.assert_close(low - features, torch.full_like(features, math.log(0.25)), atol=1e-5, rtol=0)

    torch.manual_seed(0)
    correction = GlobalAffineCorrection(channels=3, text_dim=8, with_log_spread=True)
    assert correction.mlp[0].in_features == 3 * STATS_PER_CHANNEL + 6 + 8
    text = torch.randn(2, 8)
    assert torch.allclose(correction(image, stats, text), image, atol=1e-6)  # identity at initialisation
    config = LUREConfig.from_dict({**TINY.to_dict(), "global_correction_log_spread": True})
    assert LURE(config).global_correction.with_log_spread
    assert not LURE(TINY).global_correction.with_log_spread  # older configurations keep their MLP
    with pytest.raises(ValueError, match="global_correction_log_spread needs model.global_correction"):
        LUREConfig(**{**TINY.to_dict(), "global_correction": False, "global_correction_log_spread": True})


def test_network_with_the_correction_starts_as_the_network_without_it(tmp_path):
    torch.manual_seed(0)
    with_correction = LURE(TINY).eval()
    torch.manual_seed(0)
    without = LURE(LUREConfig(**{**TINY.to_dict(), "global_correction": False})).eval()
    # built last: every other tensor starts from the same values
    shared = without.state_dict()
    assert all(torch.equal(with_correction.state_dict()[k], v) for k, v in shared.items())
    assert with_correction.part_parameters()["global_correction"] > 0
    vi, ir, text = torch.rand(1, 3, 40, 56), torch.rand(1, 1, 40, 56), torch.randn(1, 32)
    with torch.no_grad():
        assert torch.allclose(with_correction(vi, ir, text, text), without(vi, ir, text, text), atol=1e-5)
    # stage 1 trains it with the encoder, stage 2 freezes it with everything but the fusion module
    with_correction.set_stage("stage1")
    assert all(p.requires_grad for p in with_correction.global_correction.parameters())
    with_correction.set_stage("stage2")
    assert not any(p.requires_grad for p in with_correction.global_correction.parameters())
    # a checkpoint written before the switch existed loads as a network without it
    path = tmp_path / "old.pt"
    save_checkpoint(path, without, "demo")
    payload = read_checkpoint(path)
    del payload["model_config"]["global_correction"]
    torch.save(payload, path)
    assert load_model(path)[0].global_correction is None
    assert load_model(path, expected=without.config)[0].global_correction is None  # no mismatch reported
    with pytest.raises(ValueError, match="global_correction: checkpoint has False, expected True"):
        load_model(path, expected=with_correction.config)


def test_correction_applies_to_the_listed_modalities_per_sample():
    """global_correction_modalities [infrared]: in a mixed batch the infrared samples are corrected,
    the visible ones enter the encoder unchanged (as in a network without the correction)."""
    config = LUREConfig.from_dict({**TINY.to_dict(), "global_correction_modalities": ["infrared"]})
    assert config.global_correction_modalities == ("infrared",)
    torch.manual_seed(0)
    model = LURE(config).eval()
    randomise_correction(model)
    torch.manual_seed(0)
    plain = LURE(LUREConfig(**{**TINY.to_dict(), "global_correction": False})).eval()
    images, c = torch.rand(2, 3, 16, 24), torch.randn(2, 16)
    with torch.no_grad():
        mixed = model.encode(images, c, torch.tensor([0, 1]))
        visible, infrared = model.encode(images[:1], c[:1], 0), model.encode(images[1:], c[1:], 1)
        assert all(torch.allclose(m[:1], v, atol=1e-5) and torch.allclose(m[1:], i, atol=1e-5)
                   for m, v, i in zip(mixed, visible, infrared, strict=True))
        assert torch.allclose(visible[0], plain.encode(images[:1], c[:1], 0)[0], atol=1e-6)
        assert not torch.allclose(infrared[0], plain.encode(images[1:], c[1:], 1)[0], atol=1e-3)
        # an uncorrected modality needs no statistics: none are computed, the correction is skipped
        assert model.image_statistics(images[:1], 0) is None and not model.corrects(0)
        assert torch.equal(model.image_statistics(images[1:], 1), image_statistics(images[1:]))
        assert torch.equal(model.encode(images[:1], c[:1], 0, None)[0],
                           model.encode(images[:1], c[:1], 0, image_statistics(images[:1]))[0])
        fused = model(images[:1], images[1:], torch.randn(1, 32), torch.randn(1, 32))
        assert fused.shape == (1, 3, 16, 24) and torch.isfinite(fused).all()
    with pytest.raises(ValueError, match="global_correction_modalities"):
        LUREConfig(**{**TINY.to_dict(), "global_correction_modalities": ["thermal"]})


def test_crops_and_padding_are_corrected_with_the_whole_image_statistics():
    """A crop given its image's statistics is corrected exactly as that part of the whole image;
    with its own statistics it is not (the correction is image-level, not local)."""
    torch.manual_seed(0)
    model = LURE(TINY).eval()
    randomise_correction(model)
    ramp = torch.linspace(0.05, 0.95, 96)
    image = (0.6 * ramp[None, None, None, :] + 0.4 * torch.rand(1, 3, 64, 96)).clamp(0, 1)  # dark left, bright right
    c = model.project_text(torch.randn(1, 32))
    whole_stats = model.image_statistics(image)
    corrected = model.global_correction(image, whole_stats, c)
    crop = image[..., :, :32]
    assert torch.allclose(model.global_correction(crop, whole_stats, c), corrected[..., :, :32], atol=1e-6)
    own = model.global_correction(crop, model.image_statistics(crop), c)
    assert (own - corrected[..., :, :32]).abs().max() > 0.02
    with torch.no_grad():  # restore() reads the statistics before padding (40 x 52 -> 40 x 56)
        small = image[..., :40, :52]
        assert torch.equal(model.restore(small, torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), 0),
                           model.restore(small, torch.randn(1, 32, generator=torch.Generator().manual_seed(5)), 0,
                                         model.image_statistics(small)))


@pytest.fixture(scope="module")
def real_profile_fuser(tmp_path_factory) -> Fuser:
    """The ``real`` profile's network (global correction on), seeded, with the correction and the
    NAFBlock scales randomised so that neither is an identity."""
    config = model_config(load_params(profile="real"))
    assert config.global_correction, "the real profile is trained with the global correction"
    config = LUREConfig.from_dict({**config.to_dict(), "global_correction_modalities": ["visible", "infrared"]})
    torch.manual_seed(0)
    model = LURE(config)
    randomise_correction(model, std=0.3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith((".beta", ".gamma")):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    path = tmp_path_factory.mktemp("ckpt") / "real.pt"
    save_checkpoint(path, model, "real")
    return Fuser.from_checkpoint(path, device="cpu")


def test_tiles_are_restored_with_the_whole_image_statistics(real_profile_fuser):
    """``lure restore`` on 64-px tiles against one pass: the Fuser hands every tile the whole
    image's statistics, so the tiled result stays close to the whole pass; tiles corrected with
    their own statistics (the same tiles, run without them) land far from it."""
    fuser = real_profile_fuser
    ramp = np.linspace(20, 235, 160)[None, :, None]
    rng = np.random.default_rng(0)
    image = np.clip(ramp + rng.normal(0, 12, (96, 160, 3)), 0, 255).astype(np.uint8)  # dark left, bright right
    tiling = TilingConfig(mode="on", tile=64, overlap=32)
    whole = fuser.restore(image, "ll", 0, tile="off").astype(int)
    tiled = fuser.restore(image, "ll", 0, tile=tiling).astype(int)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    text = fuser.text_embedding("ll", 0)
    with torch.inference_mode():
        own = run_tiled(lambda tile: fuser.model.restore(tile, text, 0), [x], 64, 32).clamp(0, 1)
    own = (own[0].permute(1, 2, 0).numpy() * 255).round().astype(int)
    with_whole_stats = np.abs(tiled - whole).mean()
    with_own_stats = np.abs(own - whole).mean()
    assert with_whole_stats < 0.5 * with_own_stats, (with_whole_stats, with_own_stats)


def test_correction_loss_supervises_the_correction_of_corrected_samples_only():
    """stage1.correction_weight adds L_corr = L1(x', y) over the samples the correction applies to
    (x and y halves of the batch); training the correction on it alone learns to undo a
    low-contrast degradation that it could not undo at initialisation (the identity)."""
    from data_prep.degradations import degrade
    from lure.text.vocabulary import TASK_CLASS
    from lure.training.config import Stage1LossWeights
    from lure.training.objectives import Stage1Objective

    config = LUREConfig.from_dict({**TINY.to_dict(), "global_correction_modalities": ["infrared"]})
    torch.manual_seed(0)
    model = LURE(config)
    weights = dict(task_gradient_weight=1.0, unified_weight=0.5, recon_weight=1.0, text_weight=0.05,
                   unified_measure="cosine")
    plain, supervised = (Stage1Objective(model, Stage1LossWeights(**weights, correction_weight=w)) for w in (0.0, 2.0))
    rng = np.random.default_rng(0)
    clean = np.clip(rng.normal(0.5, 0.2, (2, 24, 24)) * 255, 0, 255).astype(np.uint8)
    low = np.stack([degrade(c, "lc", seed=i, contrast=0.3, offset=0.05) for i, c in enumerate(clean)])
    hq = torch.from_numpy(clean / 255.0).float()[:, None]
    lq = torch.from_numpy(low / 255.0).float()[:, None]
    text_t, text_pd = torch.randn(2, 32), torch.randn(2, 32)
    task_class = torch.full((2,), TASK_CLASS["lc"])
    infrared, visible = torch.ones(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)

    total0, parts0 = plain(lq, hq, infrared, text_t, text_pd, task_class)
    total, parts = supervised(lq, hq, infrared, text_t, text_pd, task_class)
    assert "correction" not in parts0
    # the identity correction at initialisation: L_corr is the mean of |lq - hq| and |hq - hq|
    expected = 0.5 * float((lq - hq).abs().mean())
    assert float(parts["correction"]) == pytest.approx(expected, rel=1e-4)
    assert float(total) == pytest.approx(float(total0) + 2.0 * expected, rel=1e-4)
    _, parts_vi = supervised(lq.expand(-1, 3, -1, -1), hq.expand(-1, 3, -1, -1), visible, text_t, text_pd, task_class)
    assert float(parts_vi["correction"]) == 0.0  # visible samples are not corrected by this model

    optimiser = torch.optim.Adam(model.global_correction.parameters(), lr=1e-2)
    images = torch.cat([lq, hq]).expand(-1, 3, -1, -1)  # x, then y: as the objective passes them
    for _ in range(150):
        optimiser.zero_grad()
        supervised._correction_loss(images, model.project_text(torch.cat([text_t, text_pd])),
                                    torch.cat([infrared, infrared]), None, hq.expand(-1, 3, -1, -1)).backward()
        optimiser.step()
    with torch.no_grad():
        corrected = model.correct_input(lq.expand(-1, 3, -1, -1), model.project_text(text_t), infrared, None)
    error_before, error_after = float((lq - hq).abs().mean()), float((corrected - hq).abs().mean())
    assert error_after < 0.3 * error_before, (error_before, error_after)
