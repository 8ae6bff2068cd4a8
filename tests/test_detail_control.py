"""The detail control (issue 30): the fusion module's detail level d in [0, 1], its loss-conditional
stage-2 training, the request phrases and ``--detail`` that set it, the shipped model's response to
it and the evaluation's detail-curve table."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lure.checkpoint import save_checkpoint
from lure.config import load_params, model_config
from lure.metrics.reference import average_gradient, spatial_frequency
from lure.models.detail import DetailConditioning, detail_tensor
from lure.models.lure_model import LURE
from lure.text.parser import InstructionError, detail_request, parse
from lure.training.config import TrainingConfig
from lure.training.losses import gradient_loss
from lure.training.objectives import Stage2Objective, sample_detail_level
from lure.weights import default_shipped, shipped_weights


def detail_model(seed: int = 0) -> LURE:
    """The demo network with the detail control and a non-zero fusion zero-conv (so the learned
    branch, which the control modulates, contributes)."""
    torch.manual_seed(seed)
    config = dataclasses.replace(model_config(load_params(profile="demo")), detail_control=True, detail_default=0.3)
    model = LURE(config).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "zero_conv" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
    return model


def inputs(size: int = 32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    vi, ir = torch.rand(2, 3, size, size, generator=g), torch.rand(2, 1, size, size, generator=g)
    return vi, ir, torch.randn(2, 384, generator=g), torch.randn(2, 384, generator=g)


def randomise_film(model: LURE) -> None:
    with torch.no_grad():
        for layer in model.detail_conditioning.film:
            layer.weight.normal_(0, 0.5)
            layer.bias.normal_(0, 0.1)


# ----------------------------------------------------------------------------- model
def test_fresh_conditioning_leaves_the_fusion_unchanged_at_every_level():
    model = detail_model()
    plain = LURE(dataclasses.replace(model.config, detail_control=False)).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and all(k.startswith("detail_conditioning.") for k in unexpected)
    with torch.no_grad():
        reference = plain(*inputs())
        for level in (0.0, 0.5, 1.0):
            assert torch.equal(model(*inputs(), detail=level), reference)


def test_trained_conditioning_changes_the_fusion_with_the_level():
    model = detail_model()
    randomise_film(model)
    with torch.no_grad():
        low, high = model(*inputs(), detail=0.0), model(*inputs(), detail=1.0)
        default, explicit = model(*inputs()), model(*inputs(), detail=0.3)
        per_image = model(*inputs(), detail=torch.tensor([0.0, 1.0]))
    assert (low - high).abs().mean() > 1e-3
    assert torch.equal(default, explicit)  # None is config.detail_default
    assert torch.allclose(per_image[0], low[0], atol=1e-5) and torch.allclose(per_image[1], high[1], atol=1e-5)


def test_detail_outside_the_range_or_without_the_control_is_refused():
    model = detail_model()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(*inputs(), detail=1.5)
    with pytest.raises(ValueError, match="one per image"):
        detail_tensor(torch.tensor([0.1, 0.2, 0.3]), 2, torch.device("cpu"))
    plain = LURE(model_config(load_params(profile="demo")))
    with pytest.raises(ValueError, match="no detail control"):
        plain(*inputs(), detail=0.5)
    with pytest.raises(ValueError, match="detail_default"):
        dataclasses.replace(model.config, detail_default=2.0)


def test_stage2_trains_the_conditioning_and_stage1_freezes_it():
    model = detail_model()
    model.set_stage("stage2")
    assert all(p.requires_grad for p in model.detail_conditioning.parameters())
    assert not any(p.requires_grad for p in model.decoder.parameters())
    model.set_stage("stage1")
    assert not any(p.requires_grad for p in model.detail_conditioning.parameters())
    assert not any(p.requires_grad for p in model.fusion.parameters())
    assert "detail_conditioning" in model.part_parameters()


def test_conditioning_is_built_last_so_other_modules_initialise_as_before():
    torch.manual_seed(0)
    plain = LURE(model_config(load_params(profile="demo")))
    torch.manual_seed(0)
    with_control = LURE(dataclasses.replace(plain.config, detail_control=True))
    other = with_control.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, other[key]), key


# ----------------------------------------------------------------------------- training
def test_gradient_gain_raises_the_target_beyond_the_sources():
    g = torch.Generator().manual_seed(0)
    vi, ir = torch.rand(1, 3, 24, 24, generator=g), torch.rand(1, 3, 24, 24, generator=g)
    # a fused image equal to the sharper source meets the gain-1 target where that source wins
    base = gradient_loss(vi, vi, ir).item()
    assert gradient_loss(vi, vi, ir, 2.0).item() > base + 0.1
    assert gradient_loss(2 * vi - 0.5, vi, ir, 2.0).item() < gradient_loss(vi, vi, ir, 2.0).item()


def test_loss_weights_move_from_the_faithful_to_the_crisp_settings():
    params = load_params(profile="real")
    weights = TrainingConfig.from_params(params).stage2.loss_weights
    s2 = params["stage2"]
    assert weights.at_detail(0.0) == (s2["gradient_weight"], 1.0)
    assert weights.at_detail(1.0) == (s2["detail_gradient_weight"], s2["detail_gradient_gain"])
    mid_weight, mid_gain = weights.at_detail(0.5)
    assert mid_weight == pytest.approx((s2["gradient_weight"] + s2["detail_gradient_weight"]) / 2)
    assert mid_gain == pytest.approx((1 + s2["detail_gradient_gain"]) / 2)


def test_detail_levels_are_reproducible_and_cover_both_ends():
    levels = [sample_detail_level(0, step, 0.5) for step in range(2000)]
    assert levels == [sample_detail_level(0, step, 0.5) for step in range(2000)]
    assert all(0.0 <= v <= 1.0 for v in levels)
    ends = np.isin(levels, [0.0, 1.0]).mean()
    assert 0.4 < ends < 0.6 and 0.2 < np.mean(np.array(levels) == 0.0) < 0.3
    assert not np.isin([sample_detail_level(0, s, 0.0) for s in range(200)], [0.0, 1.0]).any()
    assert levels != [sample_detail_level(1, step, 0.5) for step in range(2000)]


def test_stage2_objective_asks_more_detail_at_the_crisp_end():
    model = detail_model()
    model.set_stage("stage2")
    weights = dataclasses.replace(TrainingConfig.from_params(load_params(profile="real")).stage2.loss_weights)
    objective = Stage2Objective(model, weights)
    vi, ir, t_vi, t_ir = inputs()
    ir3 = ir.expand(-1, 3, -1, -1)
    faithful, parts0 = objective(vi, ir3, t_vi, t_ir, detail=0.0)
    crisp, parts1 = objective(vi, ir3, t_vi, t_ir, detail=1.0)
    assert parts1["grad"] > parts0["grad"]  # the same output misses a higher gradient target
    crisp.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.detail_conditioning.parameters())


# ----------------------------------------------------------------------------- requests
@pytest.mark.parametrize(("text", "level", "tasks"), [
    ("make the details pop", 1.0, ("pd", "pd")),
    ("make the people stand out", 1.0, ("pd", "pd")),
    ("keep it natural", 0.0, ("pd", "pd")),
    ("a bit crisper please", 0.75, ("pd", "pd")),
    ("slightly more natural", 0.25, ("pd", "pd")),
    ("the visible image is too dark, make the details pop", 1.0, ("ll", "pd")),
    ("the thermal image is blurry; keep it natural", 0.0, ("pd", "sr4")),
    ("do not over-sharpen, the visible image is hazy", 0.0, ("hz", "pd")),
    ("the infrared is low contrast", None, ("pd", "lc")),
    ("increase the contrast of the infrared", None, ("pd", "lc")),
])
def test_request_phrases_set_the_detail_level(text, level, tasks):
    plan = parse(text)
    assert plan.detail == level and (plan.visible, plan.infrared) == tasks


def test_a_request_for_both_looks_is_refused_with_one_reason():
    with pytest.raises(InstructionError, match="natural and a crisp look"):
        parse("crisp but natural")
    assert detail_request("nothing about it")[0] is None


# ----------------------------------------------------------------------------- shipped model, CLI, evaluation
def shipped_with_control() -> dict:
    entry = default_shipped()
    if entry is None or not (entry.get("model_config") or {}).get("detail_control"):
        pytest.fail("the default shipped weights have no detail control (weights/manifest.json)")
    return entry


@pytest.fixture(scope="module")
def shipped_fuser():
    from lure.inference import Fuser
    from lure.weights import resolve_checkpoint

    shipped_with_control()
    return Fuser.from_checkpoint(resolve_checkpoint(None).path, device="cpu")


def test_shipped_model_gets_crisper_with_the_level_and_keeps_its_default(shipped_fuser, fusion_pairs):
    from lure.image_io import read_image

    name = fusion_pairs.names()[0]
    ir = read_image(fusion_pairs.root / "ir" / name, "infrared")
    vi = read_image(fusion_pairs.root / "vi" / name, "visible")
    grey = {}
    for level in (0.0, None, 1.0):
        fused = shipped_fuser.fuse(ir, vi, detail=level)
        grey[level] = np.asarray(fused.mean(axis=2) if fused.ndim == 3 else fused).round().astype(np.uint8)
    sf = {k: spatial_frequency(v) for k, v in grey.items()}
    ag = {k: average_gradient(v) for k, v in grey.items()}
    assert sf[0.0] < sf[None] < sf[1.0] and ag[0.0] < ag[1.0]
    assert sf[1.0] > 1.15 * sf[0.0]
    default = shipped_fuser.detail_default
    assert np.array_equal(grey[None], np.asarray(
        shipped_fuser.fuse(ir, vi, detail=default).mean(axis=2).round().astype(np.uint8)))


def test_cli_detail_option_and_words(shipped_fuser, fusion_pairs, tmp_path, capsys):
    from lure.cli import main

    name = fusion_pairs.names()[0]
    ir, vi = str(fusion_pairs.root / "ir" / name), str(fusion_pairs.root / "vi" / name)
    assert main(["fuse", "--ir", ir, "--vi", vi, "--detail", "1", "--out", str(tmp_path / "a.png"), "--no-progress"]) == 0
    assert "detail 1," in capsys.readouterr().out
    assert main(["fuse", "--ir", ir, "--vi", vi, "--text", "keep it natural", "--out", str(tmp_path / "b.png"),
                 "--no-progress"]) == 0
    assert "detail 0," in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["fuse", "--ir", ir, "--vi", vi, "--detail", "1.5"])
    assert "outside [0, 1]" in capsys.readouterr().err


def test_a_model_without_the_control_refuses_detail_in_one_line(fusion_pairs, tmp_path, capsys):
    from lure.cli import main

    demo = shipped_weights().get("lure-demo")
    if demo is None:
        pytest.skip("weights/lure-demo.pt is not shipped")
    name = fusion_pairs.names()[0]
    rc = main(["fuse", "--ir", str(fusion_pairs.root / "ir" / name), "--vi", str(fusion_pairs.root / "vi" / name),
               "--detail", "0.5", "--checkpoint", "lure-demo", "--out", str(tmp_path / "x.png"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "no detail control" in err[0]
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_evaluate_writes_the_detail_curve(fusion_pairs, niqe_params, tmp_path):
    from lure.evaluation.runner import evaluate
    from lure.weights import resolve_checkpoint
    from tests.model_helpers import write_pair_crops

    folder = write_pair_crops(fusion_pairs.root, tmp_path / "pairs", 128, 192, count=2)
    params = load_params(profile="real")
    params["evaluate"] = {"pair_sets": [f"folder:{folder}"], "tasks": [], "niqe_params": str(niqe_params),
                          "grid": {"crop": 96, "pairs": 0, "focus": "infrared"}, "save_fused": False,
                          "detail_curve": [0.0, 1.0]}
    result = evaluate(params, resolve_checkpoint(None).path, out_dir=tmp_path / "out",
                      data_root=tmp_path / "data", progress=False)
    curve = next(iter(result["detail_curve"].values()))
    default = shipped_with_control()["model_config"]["detail_default"]
    assert set(curve) == {f"detail={v:.2f}" for v in (0.0, default, 1.0)}
    assert curve["detail=0.00"]["SF"] < curve["detail=1.00"]["SF"]
    vanilla = next(iter(result["vanilla"].values()))
    assert curve[f"detail={default:.2f}"]["SF"] == vanilla["lure"]["SF"]
    assert curve[f"detail={default:.2f}"]["rank all-10"] == vanilla["lure"]["rank all-10"]
    table = next((tmp_path / "out" / "tables").glob("detail_curve_*.md")).read_text()
    assert "(default)" in table and "rank all-10" in table
    assert "detail_curve" in json.loads((tmp_path / "out" / "metrics.json").read_text())


def test_untrained_detail_model_round_trips_through_a_checkpoint(tmp_path):
    from lure.checkpoint import load_model

    model = detail_model()
    randomise_film(model)
    save_checkpoint(tmp_path / "m.pt", model, "demo")
    loaded, _ = load_model(tmp_path / "m.pt")
    assert isinstance(loaded.detail_conditioning, DetailConditioning)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(*inputs(), detail=0.7), model(*inputs(), detail=0.7))


def test_restore_refuses_detail_words_in_one_line():
    from lure.restore_cli import InputError, plan_task

    with pytest.raises(InputError, match="lure restore has no detail level"):
        plan_task(0, "make the details pop", None)
    assert plan_task(0, "the visible image is too dark", None) == "ll"


def test_range_term_penalises_only_new_clipping():
    from lure.training.losses import range_loss

    shape = (1, 3, 8, 8)
    vi, ir = torch.full(shape, 0.5), torch.full(shape, 0.9)
    assert range_loss(torch.full(shape, 0.93), vi, ir).item() == 0.0  # inside the open band
    assert range_loss(torch.full(shape, 1.1), vi, ir).item() == pytest.approx(0.14, abs=1e-5)
    assert range_loss(torch.full(shape, 0.01), vi, ir).item() == pytest.approx(0.03, abs=1e-5)
    bright = torch.full(shape, 1.0)  # a source that is itself white allows white
    assert range_loss(torch.full(shape, 1.0), vi, bright).item() == 0.0


def test_objective_with_the_range_term_reports_it():
    model = detail_model()
    model.set_stage("stage2")
    weights = dataclasses.replace(TrainingConfig.from_params(load_params(profile="real")).stage2.loss_weights,
                                  range_weight=10.0)
    vi, ir, t_vi, t_ir = inputs()
    _, parts = Stage2Objective(model, weights)(vi, ir.expand(-1, 3, -1, -1), t_vi, t_ir, detail=1.0)
    assert "range" in parts and parts["range"] >= 0


def test_info_lists_the_default_detail_level(capsys):
    from lure.cli import main

    entry = shipped_with_control()
    assert main(["info", "--weights"]) == 0
    out = capsys.readouterr().out
    assert f"--detail 0..1 (default {entry['model_config']['detail_default']:g})" in out


def test_a_smaller_infrared_image_keeps_the_requested_detail(tmp_path):
    from lure.fuse_cli import match_infrared
    from lure.text.vocabulary import TaskPlan

    ir, vi = np.zeros((24, 32), np.uint8), np.zeros((96, 128, 3), np.uint8)
    _, plan, note = match_infrared(ir, vi, tmp_path / "ir.png", tmp_path / "vi.png", TaskPlan(detail=1.0), False)
    assert plan.infrared == "sr4" and plan.detail == 1.0 and note
