"""Stage-1/stage-2 objectives (docs/paper-map.md#training) on small hand-checkable tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lure.color import rgb_to_ycbcr, ycbcr_to_rgb
from lure.training.losses import (
    color_loss,
    gradient_loss,
    latent_similarity,
    sobel_magnitude,
    task_loss,
    unified_loss,
)
from lure.training.perceptual import VGG16Features, load_vgg16_features, perceptual_loss


def test_sobel_magnitude_of_a_vertical_step_edge():
    image = torch.zeros(1, 1, 5, 6)
    image[..., 3:] = 1.0
    mag = sobel_magnitude(image)
    # columns 2 and 3 straddle the edge: |gx| = 1 + 2 + 1 = 4, gy = 0
    torch.testing.assert_close(mag[0, 0, 2, 2:4], torch.tensor([4.0, 4.0]))
    assert mag[0, 0, :, :2].max() < 1e-5 and mag[0, 0, :, 4:].max() < 1e-5
    assert sobel_magnitude(torch.full((1, 3, 4, 4), 0.7)).max() < 1e-5


def test_task_loss_is_l1_plus_weighted_gradient_term():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    assert task_loss(a, b, 0.0) == pytest.approx(float(F.l1_loss(a, b)))
    expected = F.l1_loss(a, b) + 0.5 * F.l1_loss(sobel_magnitude(a), sobel_magnitude(b))
    assert task_loss(a, b, 0.5) == pytest.approx(float(expected))
    assert float(task_loss(a, a, 0.5)) == 0.0


def test_unified_loss_cosine_and_pearson():
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g)]
    assert float(unified_loss(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(unified_loss(z, [-t for t in z])) == pytest.approx(2.0, abs=1e-6)
    shifted = [t + 3.0 for t in z]
    # Pearson ignores a constant offset, cosine does not
    assert float(unified_loss(z, shifted, "pearson")) == pytest.approx(0.0, abs=1e-5)
    assert float(unified_loss(z, shifted, "cosine")) > 0.3
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert float(latent_similarity([a], [b])) == pytest.approx(2 ** -0.5)
    with pytest.raises(ValueError, match="cosine' or 'pearson"):
        unified_loss(z, z, "l2")


def test_ycbcr_round_trip_and_colour_loss_ignores_luminance_shift():
    g = torch.Generator().manual_seed(2)
    rgb = torch.rand(1, 3, 6, 6, generator=g) * 0.8
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=2e-3, rtol=0)
    assert float(color_loss(rgb + 0.1, rgb)) == pytest.approx(0.0, abs=1e-6)
    assert float(color_loss(rgb[:, [2, 1, 0]], rgb)) > 0.01


def test_gradient_loss_targets_the_stronger_source_gradient():
    flat = torch.full((1, 3, 8, 8), 0.5)
    edges = torch.zeros(1, 1, 8, 8)
    edges[..., 4:] = 1.0
    fused_like_ir = edges.expand(-1, 3, -1, -1)
    assert float(gradient_loss(fused_like_ir, flat, edges)) == pytest.approx(0.0, abs=1e-5)
    assert float(gradient_loss(flat, flat, edges)) > 0.1


def test_perceptual_loss_needs_the_vgg_file_and_works_with_one(tmp_path):
    missing = tmp_path / "vgg16-397923af.pth"
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth is missing"):
        load_vgg16_features(missing)
    torch.manual_seed(0)
    reference = VGG16Features()
    torch.save({k: v for k, v in reference.state_dict().items()}, missing)  # torchvision key layout
    vgg = load_vgg16_features(missing)
    for a, b in zip(vgg.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    vi, ir = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 32, 32, generator=g)
    assert float(perceptual_loss(vgg, vi, vi, vi)) == pytest.approx(0.0, abs=1e-7)
    assert float(perceptual_loss(vgg, vi, vi, ir)) > 0.0


def test_stage1_objective_single_pass_equals_the_two_separate_passes():
    """The objective runs x and y through the network as one 2B batch; that must give exactly the
    loss of docs/paper-map.md#training written out with separate passes (no layer may mix samples)."""
    from lure.models.lure_model import to_network_channels
    from lure.text.vocabulary import TASK_CLASS
    from lure.training.config import Stage1LossWeights
    from lure.training.objectives import Stage1Objective
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(3)
    objective = Stage1Objective(model, Stage1LossWeights(task_gradient_weight=2.0, unified_weight=0.25,
                                                         recon_weight=1.0, text_weight=0.05, unified_measure="cosine"))
    g = torch.Generator().manual_seed(0)
    lq, hq = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    modality = torch.tensor([0, 1, 1])
    text_t, text_pd = torch.randn(3, 384, generator=g), torch.randn(3, 384, generator=g)
    task_class = torch.tensor([TASK_CLASS["ll"], TASK_CLASS["sr4"], TASK_CLASS["lc"]])
    total, parts = objective(lq, hq, modality, text_t, text_pd, task_class)

    c_t, c_pd = model.project_text(text_t), model.project_text(text_pd)
    z = model.encode(to_network_channels(lq), c_t, modality)
    z_pd = model.encode(to_network_channels(hq), c_pd, modality)
    expected = {
        "task": task_loss(model.decode(z), hq, 2.0),
        "recon": F.l1_loss(model.decode(z_pd), hq),
        "unified": unified_loss(z, z_pd, "cosine"),
        "text": F.cross_entropy(model.classify_text(torch.cat([c_t, c_pd])),
                                torch.cat([task_class, torch.full_like(task_class, TASK_CLASS["pd"])])),
    }
    for name, value in expected.items():
        torch.testing.assert_close(parts[name], value.detach(), rtol=1e-4, atol=1e-6)
    weighted = expected["task"] + 0.25 * expected["unified"] + expected["recon"] + 0.05 * expected["text"]
    torch.testing.assert_close(total.detach(), weighted.detach(), rtol=1e-4, atol=1e-6)
    assert parts["task"] > 0 and parts["unified"] > 0


def test_cosine_l1_unified_measure_sees_scale():
    g = torch.Generator().manual_seed(1)
    z = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 8, 4, 4, generator=g)]
    assert float(unified_loss(z, z, "cosine_l1")) == pytest.approx(0.0, abs=1e-6)
    doubled = [2 * t for t in z]
    assert float(unified_loss(doubled, z, "cosine")) == pytest.approx(0.0, abs=1e-6)  # cosine is blind to it
    assert float(unified_loss(doubled, z, "cosine_l1")) == pytest.approx(1.0, abs=1e-5)  # |2z - z| / |z|
    # the clean latents are the target: no gradient flows into them through the L1 part
    target = [t.clone().requires_grad_(True) for t in z]
    from lure.training.losses import relative_latent_l1

    degraded = [t.clone().requires_grad_(True) for t in doubled]
    relative_latent_l1(degraded, target).backward()
    assert all(t.grad is None for t in target) and all(t.grad is not None for t in degraded)


def test_max_intensity_and_structure_terms():
    from lure.training.source_similarity import (
        max_intensity_loss,
        structure_similarity_loss,
        structure_weights,
    )

    g = torch.Generator().manual_seed(2)
    visible = torch.rand(1, 3, 32, 32, generator=g) * 0.5
    infrared = torch.zeros(1, 1, 32, 32)
    infrared[..., 8:16, 8:16] = 1.0  # a hot square on a flat background
    fused_max = torch.maximum(rgb_to_ycbcr(visible)[:, :1], infrared).expand(-1, 3, -1, -1)
    assert float(max_intensity_loss(fused_max, visible, infrared)) == pytest.approx(0.0, abs=1e-6)
    assert float(max_intensity_loss(visible, visible, infrared)) > 0.03  # the hot square is lost
    y_vi = rgb_to_ycbcr(visible)[:, :1]
    w = structure_weights(y_vi, infrared)
    assert w.shape == (1, 2, 32, 32)
    torch.testing.assert_close(w.sum(1), torch.ones(1, 32, 32))
    assert w[0, 1, 12, 8] > 0.5 > w[0, 1, 28, 28]  # infrared wins at its edge, visible texture elsewhere
    keeps_square = structure_similarity_loss(fused_max, visible, infrared)
    drops_square = structure_similarity_loss(visible, visible, infrared)
    assert float(keeps_square) < float(drops_square)


def test_latent_similarity_term_prefers_the_informative_source():
    from lure.training.source_similarity import information_weights, latent_similarity_loss
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(4)
    g = torch.Generator().manual_seed(3)
    textured = torch.rand(1, 3, 32, 32, generator=g)
    flat = torch.full((1, 1, 32, 32), 0.5)
    text = torch.randn(1, 384, generator=g)

    def encode(image, modality):
        return model.encode(image.expand(-1, 3, -1, -1), model.project_text(text), modality)

    towards_textured = latent_similarity_loss(encode, textured, textured, flat)
    towards_flat = latent_similarity_loss(encode, flat.expand(-1, 3, -1, -1), textured, flat)
    assert float(towards_textured.detach()) < float(towards_flat.detach())
    weights = information_weights(torch.tensor([3.0]), torch.tensor([1.0]), 0.1)
    assert weights[0, 0] > 0.99 and float(weights.sum()) == pytest.approx(1.0)


def test_stage2_objective_selects_its_term():
    from lure.training.config import Stage2LossWeights
    from lure.training.objectives import Stage2Objective
    from tests.model_helpers import seeded_demo_model

    def weights(perceptual_weight: float, perceptual: str = "vgg", intensity_weight: float = 0.0) -> Stage2LossWeights:
        return Stage2LossWeights(gradient_weight=2.0, perceptual_weight=perceptual_weight,
                                 intensity_weight=intensity_weight, perceptual=perceptual, perceptual_temperature=None)

    model = seeded_demo_model(5)
    model.set_stage("stage2")
    g = torch.Generator().manual_seed(4)
    vi, ir = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    t_vi, t_ir = torch.randn(2, 384, generator=g), torch.randn(2, 384, generator=g)
    base = Stage2Objective(model, weights(0.0))(vi, ir, t_vi, t_ir)
    for term in ("structure", "latent"):
        total, parts = Stage2Objective(model, weights(0.5, term, 1.0))(vi, ir, t_vi, t_ir)
        assert set(parts) == {"color", "grad", "intensity", "perceptual"}
        expected = base[0] + parts["intensity"] + 0.5 * parts["perceptual"]
        torch.testing.assert_close(total.detach(), expected.detach(), rtol=1e-4, atol=1e-6)
        total.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())
        model.zero_grad()
    with pytest.raises(ValueError, match="stage2.perceptual"):
        Stage2Objective(model, weights(0.5, "clip"))
    with pytest.raises(ValueError, match="VGG16"):
        Stage2Objective(model, weights(0.5, "vgg"))


def test_stage2_objective_degradation_aware_targets_the_clean_sources():
    """Degraded batches: the loss compares the fusion with the clean crops, and the consistency
    term is the L1 distance to the fusion of the clean pair (zero when the inputs are clean)."""
    from lure.training.config import Stage2LossWeights
    from lure.training.losses import color_loss
    from lure.training.objectives import Stage2Objective
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(5)
    model.set_stage("stage2")
    g = torch.Generator().manual_seed(4)
    vi_clean, ir_clean = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    vi, ir = vi_clean * 0.2, ir_clean * 0.5 + 0.25  # low light, low contrast
    t_vi, t_ir, pd_vi, pd_ir = (torch.randn(2, 384, generator=g) for _ in range(4))
    weights = Stage2LossWeights(gradient_weight=2.0, perceptual_weight=0.0, intensity_weight=0.0,
                                perceptual="none", perceptual_temperature=None, consistency_weight=0.5)
    objective = Stage2Objective(model, weights)
    total, parts = objective(vi, ir, t_vi, t_ir, vi_clean, ir_clean, pd_vi, pd_ir)
    assert set(parts) == {"color", "grad", "consistency"}
    with torch.no_grad():
        fused = model(vi, ir, t_vi, t_ir)
        reference = model(vi_clean, ir_clean, pd_vi, pd_ir)
    torch.testing.assert_close(parts["color"], color_loss(fused, vi_clean), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(parts["color"], color_loss(fused, vi), rtol=1e-3)  # not the degraded input
    torch.testing.assert_close(parts["consistency"], (fused - reference).abs().mean(), rtol=1e-4, atol=1e-6)
    assert float(parts["consistency"]) > 1e-3
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())
    # the clean pair with its pseudo descriptions is its own reference
    _, clean_parts = objective(vi_clean, ir_clean, pd_vi, pd_ir, vi_clean, ir_clean, pd_vi, pd_ir)
    assert float(clean_parts["consistency"]) < 1e-6


def test_stage2_latent_term_on_degraded_batches_compares_with_the_clean_latents():
    """``perceptual: latent`` on a degraded batch: the source latents are the clean crops' with
    their pseudo descriptions, and the fused image is encoded as a clean image (pd texts)."""
    from lure.training.config import Stage2LossWeights
    from lure.training.objectives import Stage2Objective
    from lure.training.source_similarity import latent_similarity_loss
    from tests.model_helpers import seeded_demo_model

    model = seeded_demo_model(6)
    model.set_stage("stage2")
    g = torch.Generator().manual_seed(7)
    vi_clean, ir_clean = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    vi, ir = vi_clean * 0.2, ir_clean * 0.5 + 0.25
    t_vi, t_ir, pd_vi, pd_ir = (torch.randn(2, 384, generator=g) for _ in range(4))
    weights = Stage2LossWeights(gradient_weight=2.0, perceptual_weight=1.0, intensity_weight=0.0,
                                perceptual="latent", perceptual_temperature=None)
    _, parts = Stage2Objective(model, weights)(vi, ir, t_vi, t_ir, vi_clean, ir_clean, pd_vi, pd_ir)

    def encoder(text_vi: torch.Tensor, text_ir: torch.Tensor):
        c = {0: model.project_text(text_vi), 1: model.project_text(text_ir)}
        return lambda image, modality: model.encode(image, c[modality], modality)

    with torch.no_grad():
        fused = model(vi, ir, t_vi, t_ir)
        expected = latent_similarity_loss(encoder(pd_vi, pd_ir), fused, vi_clean, ir_clean)
        degraded_reference = latent_similarity_loss(encoder(t_vi, t_ir), fused, vi, ir)
    torch.testing.assert_close(parts["perceptual"], expected, rtol=1e-4, atol=1e-6)
    assert abs(float(parts["perceptual"]) - float(degraded_reference)) > 1e-4
