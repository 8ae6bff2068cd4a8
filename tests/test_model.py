"""The LURE network (docs/paper-map.md#network): shapes, fusion at init, text conditioning, freezing,
ablation switches, checkpoints and determinism. No mocks: the real modules throughout."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lure.checkpoint import load_model, read_checkpoint, save_checkpoint
from lure.cli import main as cli_main
from lure.config import load_params, model_config
from lure.models.base_blocks import BottleNeck
from lure.models.config import LUREConfig
from lure.models.encoder import InnerResidualEncoderLayer
from lure.models.fusion import ScaleFusion, l1_activity, prior_fusion_rule
from lure.models.lure_model import LURE
from lure.models.text_guided_attention import TextGateBlock, TGABlock

TINY = LUREConfig(widths=(8, 16, 16, 24), latent_channels=(4, 8, 8, 8), base_blocks=(1, 1, 1, 1),
                  branch_blocks=(2, 1, 1, 1), decoder_blocks=(1, 1, 1, 1), fusion_blocks=(1, 1, 1, 2),
                  heads=2, text_backbone_dim=32, text_dim=16)


def make_model(config: LUREConfig = TINY, seed: int = 0) -> LURE:
    torch.manual_seed(seed)
    return LURE(config).eval()


def texts(config: LUREConfig, batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, config.text_backbone_dim, generator=g),
            torch.randn(batch, config.text_backbone_dim, generator=g))


def images(h: int, w: int, batch: int = 2, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, h, w, generator=g), torch.rand(batch, 1, h, w, generator=g)


def randomise_zero_convs(model: LURE) -> None:
    with torch.no_grad():
        for scale in model.fusion.scales:
            scale.zero_conv.weight.normal_(std=0.1)


# -- shapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(257, 311), (64, 64), (33, 17)])
def test_output_shapes_odd_sizes(size):
    model = make_model()
    vi, ir = images(*size)
    t_vi, t_ir = texts(TINY)
    with torch.no_grad():
        fused = model(vi, ir, t_vi, t_ir)
        restored_ir = model.restore(ir, t_ir, 1)
        restored_vi = model.restore(vi, t_vi, 0)
        grey_vi = model(vi.mean(1, keepdim=True), ir, t_vi, t_ir)
    assert fused.shape == (2, 3, *size)
    assert restored_ir.shape == restored_vi.shape == grey_vi.shape == (2, 3, *size)
    assert torch.isfinite(fused).all()


def test_latent_shapes_per_scale():
    model = make_model()
    vi, _ = images(64, 96)
    t, _ = texts(TINY)
    with torch.no_grad():
        latents = model.encode(vi, model.project_text(t), 0)
    assert [tuple(z.shape) for z in latents] == [
        (2, 4, 64, 96), (2, 8, 32, 48), (2, 8, 16, 24), (2, 8, 8, 12)]


def test_mismatched_pair_sizes_rejected():
    model = make_model()
    t_vi, t_ir = texts(TINY)
    with pytest.raises(ValueError, match="same height and width"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 40), t_vi[:1], t_ir[:1])


# -- fusion at initialisation -----------------------------------------------------------

def test_zero_conv_initial_output_equals_rule_fusion():
    model = make_model()
    vi, ir = images(48, 40)
    t_vi, t_ir = texts(TINY)
    with torch.no_grad():
        fused = model(vi, ir, t_vi, t_ir)
        z_vi = model.encode(vi, model.project_text(t_vi), 0)
        z_ir = model.encode(ir, model.project_text(t_ir), 1)
        by_rule = model.decode(model.fusion.rule_only(z_vi, z_ir))
        assert torch.equal(fused, by_rule)
        assert torch.equal(fused, model(vi, ir, t_vi, t_ir, rule_only=True))
        randomise_zero_convs(model)
        assert not torch.allclose(model(vi, ir, t_vi, t_ir), by_rule)


def test_l1_rule_matches_densefuse_by_hand():
    z_vi = torch.zeros(1, 2, 3, 3)
    z_ir = torch.zeros(1, 2, 3, 3)
    z_vi[0, :, 1, 1] = torch.tensor([3.0, -1.0])   # |.|_1 = 4 at the centre
    z_ir[0, :, 1, 1] = torch.tensor([1.0, 1.0])    # |.|_1 = 2 at the centre
    # 3x3 box mean over the whole 3x3 map at the centre: 4/9 and 2/9 -> weights 2/3, 1/3
    fused = prior_fusion_rule(z_vi, z_ir, "l1", window=3)
    expected = (2 / 3) * z_vi[0, :, 1, 1] + (1 / 3) * z_ir[0, :, 1, 1]
    torch.testing.assert_close(fused[0, :, 1, 1], expected)
    assert l1_activity(z_vi, 3)[0, 0, 1, 1].item() == pytest.approx(4 / 9)
    torch.testing.assert_close(prior_fusion_rule(z_vi, z_ir, "add"), z_vi + z_ir)
    torch.testing.assert_close(prior_fusion_rule(z_vi, z_ir, "avg"), (z_vi + z_ir) / 2)
    assert torch.count_nonzero(prior_fusion_rule(z_vi, z_ir, "none")) == 0
    soft = prior_fusion_rule(z_vi, z_ir, "l1_softmax")
    w = torch.softmax(torch.tensor([4 / 9, 2 / 9]), 0)
    torch.testing.assert_close(soft[0, :, 1, 1], w[0] * z_vi[0, :, 1, 1] + w[1] * z_ir[0, :, 1, 1])


# -- text conditioning ------------------------------------------------------------------

@pytest.mark.parametrize("text_block", ["tga", "gate"])
def test_changing_the_text_changes_the_encoder_output(text_block):
    model = make_model(dataclasses.replace(TINY, text_block=text_block))
    vi, _ = images(32, 32)
    t_a, t_b = texts(TINY)
    with torch.no_grad():
        z_a = model.encode(vi, model.project_text(t_a), 0)
        z_a2 = model.encode(vi, model.project_text(t_a), 0)
        z_b = model.encode(vi, model.project_text(t_b), 0)
    for za, za2, zb in zip(z_a, z_a2, z_b):
        assert torch.equal(za, za2)
        assert (za - zb).abs().max() > 1e-4


def test_modality_embedding_changes_the_encoding():
    model = make_model()
    vi, _ = images(32, 32)
    t, _ = texts(TINY)
    with torch.no_grad():
        c = model.project_text(t)
        assert not torch.allclose(model.encode(vi, c, 0)[0], model.encode(vi, c, 1)[0])


def test_frozen_text_backbone_gets_no_gradient():
    from lure.text.sentence_encoder import load_sentence_encoder

    encoder = load_sentence_encoder()
    config = dataclasses.replace(TINY, text_backbone_dim=encoder.hidden_size)
    model = make_model(config).train()
    embedding = encoder.embed(["the visible image is too dark", "the infrared image is clean"])
    assert embedding.shape == (2, 384)
    assert not embedding.requires_grad
    vi, _ = images(32, 32)
    out = model.restore(vi, embedding, torch.tensor([0, 0]))
    logits = model.classify_text(model.project_text(embedding))
    (out.abs().mean() + logits.logsumexp(1).mean()).backward()
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    assert model.text_projection.linear.weight.grad is not None
    # cached: the same text gives the same vector without recomputation
    again = encoder.embed(["the visible image is too dark"])
    assert torch.equal(again[0], embedding[0])


def test_stage2_mode_only_fusion_parameters_get_gradients():
    model = make_model().train()
    model.set_stage("stage2")
    randomise_zero_convs(model)
    vi, ir = images(32, 32)
    t_vi, t_ir = texts(TINY)
    model(vi, ir, t_vi, t_ir).mean().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad, "no parameter received a gradient"
    assert all(n.startswith("fusion.") for n in with_grad), sorted(with_grad)[:5]
    assert {n for n, _ in model.fusion.named_parameters(prefix="fusion")} == with_grad
    model.zero_grad(set_to_none=True)
    model.set_stage("stage1")
    model.restore(vi, t_vi, 0).mean().backward()
    assert all(p.grad is None for p in model.fusion.parameters())
    assert model.encoder.stem.weight.grad is not None


# -- ablation switches --------------------------------------------------------------------

def count(model: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


def test_inner_residual_switch_removes_the_base_path():
    with_ir = make_model()
    without = make_model(dataclasses.replace(TINY, inner_residual=False))
    layers = [m for m in with_ir.modules() if isinstance(m, InnerResidualEncoderLayer)]
    assert len(layers) == 4 and all(layer.base_projection is not None for layer in layers)
    assert all(m.base_projection is None for m in without.modules() if isinstance(m, InnerResidualEncoderLayer))
    assert count(with_ir, BottleNeck) == count(without, BottleNeck) == sum(TINY.branch_blocks)
    # with the base path, z = phi_t - phi_d: zeroing the branch leaves exactly the 1x1 projection
    layer = layers[0]
    x = torch.rand(1, 8, 16, 16)
    c = torch.randn(1, 16)
    with torch.no_grad():
        layer.branch[-1].reduce.weight.zero_()
        layer.branch[-1].reduce.bias.zero_()
        z, _ = layer(x, c, torch.tensor([0]))
        h = x
        for text_block, base in zip(layer.base_text, layer.base):
            h = base(text_block(h, c), torch.tensor([0]))
        torch.testing.assert_close(z, layer.base_projection(h))


def test_text_block_switch_replaces_tga_with_gate():
    tga = make_model()
    gate = make_model(dataclasses.replace(TINY, text_block="gate"))
    n_blocks = sum(TINY.base_blocks) + sum(TINY.branch_blocks)
    assert count(tga, TGABlock) == n_blocks and count(tga, TextGateBlock) == 0
    assert count(gate, TextGateBlock) == n_blocks and count(gate, TGABlock) == 0


@pytest.mark.parametrize("rule", ["l1", "add", "avg", "none"])
def test_fusion_rule_switch(rule):
    model = make_model(dataclasses.replace(TINY, fusion_rule=rule))
    assert all(isinstance(s, ScaleFusion) and s.rule == rule for s in model.fusion.scales)
    vi, ir = images(32, 32)
    t_vi, t_ir = texts(TINY)
    with torch.no_grad():
        z_vi = model.encode(vi, model.project_text(t_vi), 0)
        z_ir = model.encode(ir, model.project_text(t_ir), 1)
        fused = model.fuse_latents(z_vi, z_ir)
    expected = {"l1": None, "add": z_vi[0] + z_ir[0], "avg": (z_vi[0] + z_ir[0]) / 2,
                "none": torch.zeros_like(z_vi[0])}[rule]
    if expected is not None:
        torch.testing.assert_close(fused[0], expected)


def test_invalid_switch_values_are_rejected():
    with pytest.raises(ValueError, match="text_block"):
        dataclasses.replace(TINY, text_block="film")
    with pytest.raises(ValueError, match="fusion_rule"):
        dataclasses.replace(TINY, fusion_rule="max")
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(TINY, heads=3)


# -- checkpoints and determinism ------------------------------------------------------------

def test_checkpoint_round_trip_and_profile_mismatch(tmp_path):
    model = make_model()
    randomise_zero_convs(model)
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(path, model, profile="tiny", step=7)
    payload = torch.load(path, weights_only=True)
    assert payload["step"] == 7 and payload["profile"] == "tiny"
    loaded, meta = load_model(path, expected=TINY, expected_profile="tiny")
    vi, ir = images(40, 24)
    t_vi, t_ir = texts(TINY)
    with torch.no_grad():
        assert torch.equal(model(vi, ir, t_vi, t_ir), loaded.eval()(vi, ir, t_vi, t_ir))
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary left behind
    demo = model_config(load_params(profile="demo"))
    with pytest.raises(ValueError, match=r"widths: checkpoint has \[8, 16, 16, 24\]"):
        load_model(path, expected=demo)
    with pytest.raises(ValueError, match="profile: checkpoint has 'tiny', expected 'paper'"):
        load_model(path, expected_profile="paper")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt is not a readable LURE checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")


def test_same_seed_gives_bit_identical_output():
    vi, ir = images(40, 56)
    t_vi, t_ir = texts(TINY)
    outputs = []
    for _ in range(2):
        model = make_model(seed=123)
        with torch.no_grad():
            outputs.append(model(vi, ir, t_vi, t_ir))
    assert torch.equal(outputs[0], outputs[1])
    other = make_model(seed=124)
    with torch.no_grad():
        assert not torch.equal(outputs[0], other(vi, ir, t_vi, t_ir))


# -- profiles and `lure info` ------------------------------------------------------------------

def test_profiles_build_and_info_cli_reports_counts(capsys):
    assert cli_main(["info", "--profile", "demo", "--json", "--height", "64", "--width", "96"]) == 0
    info = json.loads(capsys.readouterr().out)
    params = info["parameters"]
    assert info["profile"] == "demo"
    assert params["total"] == sum(params[k] for k in ("text_projection", "encoder", "decoder", "fusion"))
    assert info["gflops"] > 0
    paper = LURE(model_config(load_params(profile="paper")))
    counts = paper.part_parameters()
    assert 10e6 < counts["total"] < 80e6  # the paper-size network is tens of millions of parameters
    assert counts["total"] > 20 * params["total"]


def test_unknown_profile_is_a_clear_error(capsys):
    assert cli_main(["info", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


# -- channels-last kernels against the textbook formulas ----------------------------------
def _reference_layer_norm(norm, x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight[:, None, None] + norm.bias[:, None, None]


def _reference_channel_attention(q, k, v, heads, temperature):
    b, c, h, w = q.shape
    q = torch.nn.functional.normalize(q.reshape(b, heads, c // heads, h * w), dim=-1)
    k = torch.nn.functional.normalize(k.reshape(b, heads, c // heads, h * w), dim=-1)
    attn = (q @ k.transpose(-2, -1)) * temperature
    return (attn.softmax(dim=-1) @ v.reshape(b, heads, c // heads, h * w)).reshape(b, c, h, w)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_channels_last_blocks_match_the_reference_formulas(memory_format):
    from lure.models.nafblock import LayerNorm2d
    from lure.models.text_guided_attention import GatedDconvFeedForward, channel_attention

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 12, 9, 14, generator=g) * 3 + 1).contiguous(memory_format=memory_format)
    torch.manual_seed(0)
    norm = LayerNorm2d(12)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    assert torch.allclose(norm(x), _reference_layer_norm(norm, x), atol=1e-5)

    q, k, v = (torch.randn(2, 12, 9, 14, generator=g).contiguous(memory_format=memory_format) for _ in range(3))
    temperature = torch.tensor([0.7, 2.0, 1.3]).view(3, 1, 1)
    assert torch.allclose(channel_attention(q, k, v, 3, temperature),
                          _reference_channel_attention(q, k, v, 3, temperature), atol=1e-5)

    ffn = GatedDconvFeedForward(12, 1.5)
    a, b = ffn.dwconv(ffn.project_in(x)).chunk(2, dim=1)  # the block as Restormer writes it
    assert torch.allclose(ffn(x), ffn.project_out(torch.nn.functional.gelu(a) * b), atol=1e-5)


def test_activations_are_channels_last_and_gradients_flow():
    model = make_model().train()
    vi, ir = images(32, 48)
    t_vi, t_ir = texts(TINY)
    latents = model.encode(vi, model.project_text(t_vi), 0)
    assert all(z.is_contiguous(memory_format=torch.channels_last) for z in latents)
    model(vi, ir, t_vi, t_ir).mean().backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g_ is not None and torch.isfinite(g_).all() for g_ in grads)
