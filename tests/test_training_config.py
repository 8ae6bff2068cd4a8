"""Typed training configurations: every profile loads, defaults live in the dataclasses only,
unknown keys and bad values fail with one line naming the key and the section."""

from __future__ import annotations

import ast
import copy
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from lure.config import load_params, profile_names
from lure.training.config import Stage1Config, Stage2Config, TrainingConfig

TRAINING = Path(__file__).resolve().parents[1] / "lure" / "training"


@pytest.mark.parametrize("profile", profile_names())
def test_every_profile_loads_with_its_values(profile):
    params = load_params(profile=profile)
    config = TrainingConfig.from_params(params)
    for section, typed in (("stage1", config.stage1), ("stage2", config.stage2)):
        resolved = typed.to_dict()
        for key, value in params[section].items():  # every key present keeps its value
            assert resolved[key] == value or resolved[key] == pytest.approx(value), (section, key)


def test_unknown_key_names_itself_the_section_and_the_valid_keys():
    params = copy.deepcopy(load_params(profile="demo"))
    params["stage1"]["eval_evry"] = 50
    with pytest.raises(ValueError) as info:
        TrainingConfig.from_params(params)
    message = str(info.value)
    assert "\n" not in message
    assert "'eval_evry'" in message and "profiles.demo.stage1" in message
    assert all(f.name in message for f in fields(Stage1Config))
    params = copy.deepcopy(load_params(profile="paper"))
    params["stage2"]["eval_samples_per_task"] = 2  # a stage-1 key in stage 2
    with pytest.raises(ValueError, match=r"unknown key 'eval_samples_per_task' in profiles\.paper\.stage2; valid"):
        TrainingConfig.from_params(params)


@pytest.mark.parametrize(("key", "value", "pattern"), [
    ("steps", "many", r"profiles\.demo\.stage2\.steps must be an integer, got 'many'"),
    ("steps", -1, r"profiles\.demo\.stage2\.steps must be >= 0"),
    ("lr", 0, r"profiles\.demo\.stage2\.lr must be > 0"),
    ("betas", [0.9], r"profiles\.demo\.stage2\.betas must be a list of 2 values"),
    ("betas", [0.9, 1.5], r"profiles\.demo\.stage2\.betas must be two values in \[0, 1\)"),
    ("bf16", "yes", r"profiles\.demo\.stage2\.bf16 must be true or false"),
    ("perceptual", "clip", r"profiles\.demo\.stage2\.perceptual must be one of vgg, latent, structure, none"),
    ("train_sets", 3, r"profiles\.demo\.stage2\.train_sets must be a list"),
    ("degraded_fraction", 1.5, r"profiles\.demo\.stage2\.degraded_fraction must be <= 1"),
    ("gamma_jitter", -0.1, r"profiles\.demo\.stage2\.gamma_jitter must be >= 0"),
    ("gamma_range", [0.0, 2.0], r"profiles\.demo\.stage2\.gamma_range must be > 0"),
    ("gamma_range", [2.0, 0.5], r"profiles\.demo\.stage2\.gamma_range must be two exponents low <= high"),
])
def test_bad_values_fail_with_one_line(key, value, pattern):
    params = copy.deepcopy(load_params(profile="demo"))
    params["stage2"][key] = value
    with pytest.raises(ValueError, match=pattern) as info:
        TrainingConfig.from_params(params)
    assert "\n" not in str(info.value)


def test_missing_required_key_and_yaml_conveniences():
    params = copy.deepcopy(load_params(profile="demo"))
    del params["stage1"]["steps"]
    with pytest.raises(ValueError, match=r"profiles\.demo\.stage1 is missing the required key\(s\) steps"):
        TrainingConfig.from_params(params)
    params = copy.deepcopy(load_params(profile="demo"))
    params["stage1"].update(lr="1e-3", steps=10.0, train_sets="demo/train")  # PyYAML reads 1e-3 as a string
    s1 = TrainingConfig.from_params(params).stage1
    assert s1.lr == 1e-3 and s1.steps == 10 and isinstance(s1.steps, int) and s1.train_sets == ("demo/train",)


def test_defaults_live_in_the_dataclasses_only():
    """A section of only the required keys takes every other value from the field defaults, and
    the training code reads no configuration key by name (no second set of defaults)."""
    for cls in (Stage1Config, Stage2Config):
        required = {f.name for f in fields(cls) if f.default is MISSING}
        minimal = {k: v for k, v in load_params(profile="demo")[cls.SECTION].items() if k in required}
        config = cls.from_dict(minimal)
        for f in fields(cls):
            if f.name not in required:
                assert getattr(config, f.name) == f.default, f.name
    keys = {f.name for cls in (Stage1Config, Stage2Config) for f in fields(cls)}
    for module in ("trainer.py", "objectives.py", "validation.py"):
        looked_up = set()  # string keys of x["key"] and x.get("key", ...)
        for node in ast.walk(ast.parse((TRAINING / module).read_text())):
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Constant):
                looked_up.add(node.slice.value)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                looked_up.add(node.args[0].value)
        assert not looked_up & keys, (module, sorted(looked_up & keys))


def test_refinement_loss_weights_replace_only_what_is_set():
    """refine_unified_weight and refine_correction_weight replace their first-phase weights in the
    refinement; unset (None) they keep them."""
    params = copy.deepcopy(load_params(profile="demo"))
    base = Stage1Config.from_params(params)
    assert base.loss_weights.correction_weight == 0.0
    params["stage1"].update(correction_weight=0.5, refine_correction_weight=2.0, refine_unified_weight=3.0)
    config = Stage1Config.from_params(params)
    assert (config.loss_weights.correction_weight, config.loss_weights.unified_weight) == (0.5, base.unified_weight)
    refine = config.refine_loss_weights
    assert (refine.correction_weight, refine.unified_weight) == (2.0, 3.0)
    assert refine.task_gradient_weight == base.loss_weights.task_gradient_weight
    params["stage1"].update(refine_correction_weight=None, refine_unified_weight=None)
    assert Stage1Config.from_params(params).refine_loss_weights == config.loss_weights
