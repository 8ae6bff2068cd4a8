"""The seeded degradation library: determinism, shapes, and that each task does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from data_prep.degradations import degrade, degrade_pair, depth_proxy, downsample
from data_prep.sources.demo import render_scene
from lure.text.vocabulary import DEGRADED_EVAL_TASKS


@pytest.fixture(scope="module")
def scene():
    return render_scene(3)


def _y(img: np.ndarray) -> np.ndarray:
    return img.astype(float) if img.ndim == 2 else img.astype(float) @ np.array([0.299, 0.587, 0.114])


@pytest.mark.parametrize("task", ["ll", "hz", "oe", "lc", "sr4", "sr8", "pd"])
def test_same_seed_same_bytes(scene, task):
    ir, vi = scene
    img = ir if task in ("lc", "sr4", "sr8") else vi
    a, b = degrade(img, task, seed=11), degrade(img, task, seed=11)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert a.tobytes() == b.tobytes()
    if task in ("ll",):  # random noise: another seed gives other bytes
        assert a.tobytes() != degrade(img, task, seed=12).tobytes()


def test_low_light_is_dark_and_noisy(scene):
    vi = scene[1]
    out = degrade(vi, "ll", seed=0)
    assert _y(out).mean() < 0.35 * _y(vi).mean()
    fixed = degrade(vi, "ll", seed=0, exposure=0.1, shot_noise=0.0, read_noise=0.0, gamma=1.0)
    expect = np.clip(np.round(vi.astype(float) * 0.1), 0, 255)
    assert np.abs(fixed.astype(float) - expect).max() <= 1


def test_haze_follows_scattering_model(scene):
    vi = scene[1]
    out = degrade(vi, "hz", seed=0, beta=1.5, airlight=0.9, tint=0.0)
    t = np.exp(-1.5 * depth_proxy(vi))[..., None]
    expect = vi / 255.0 * t + 0.9 * (1 - t)
    assert np.abs(out / 255.0 - expect).max() < 1 / 255 + 1e-9
    assert out.astype(float).std() < vi.astype(float).std()  # contrast reduced
    top, bottom = np.abs(out.astype(float) - vi)[:20].mean(), np.abs(out.astype(float) - vi)[-20:].mean()
    assert top > bottom  # far (top) is hazier


def test_over_exposure_clips(scene):
    vi = scene[1]
    out = degrade(vi, "oe", seed=0)
    assert _y(out).mean() > _y(vi).mean() + 30
    assert (out == 255).mean() > (vi == 255).mean() + 0.05


def test_low_contrast_compresses_range(scene):
    ir = scene[0]
    out = degrade(ir, "lc", seed=0, contrast=0.3, offset=0.0)
    assert out.std() == pytest.approx(0.3 * ir.std(), rel=0.05)
    assert abs(out.mean() - ir.mean()) < 2


@pytest.mark.parametrize("factor", [4, 8])
def test_super_resolution_input(scene, factor):
    ir = scene[0]
    small = downsample(ir, factor)
    assert small.shape == (ir.shape[0] // factor, ir.shape[1] // factor)
    out = degrade(ir, f"sr{factor}", seed=0)
    assert out.shape == ir.shape
    assert np.abs(np.diff(out.astype(float), axis=1)).mean() < np.abs(np.diff(ir.astype(float), axis=1)).mean()
    assert np.abs(out.astype(float) - ir).mean() < 20  # same picture, less detail


def test_pair_and_combinations(scene):
    ir, vi = scene
    ir_d, vi_d = degrade_pair(ir, vi, "oe", "lc", seed=4)
    assert ir_d.shape == ir.shape and vi_d.shape == vi.shape
    assert ir_d.std() < ir.std() and _y(vi_d).mean() > _y(vi).mean()
    same = degrade_pair(ir, vi, "oe", "lc", seed=4)
    assert same[0].tobytes() == ir_d.tobytes() and same[1].tobytes() == vi_d.tobytes()
    pd_ir, pd_vi = degrade_pair(ir, vi, "pd", "pd", seed=4)
    assert np.array_equal(pd_ir, ir) and np.array_equal(pd_vi, vi)
    assert set(DEGRADED_EVAL_TASKS) == {"ll", "hz", "oe", "lc", "sr4", "sr8", "oe+lc", "ll+lc"}


def test_errors_name_the_problem(scene):
    ir, vi = scene
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(vi, "rain", seed=0)
    with pytest.raises(ValueError, match="not defined for the visible"):
        degrade_pair(ir, vi, "lc", "pd", seed=0)
    with pytest.raises(TypeError, match="uint8"):
        degrade(vi.astype(np.float32), "ll", seed=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        degrade(vi, "ll", seed=0, brightness=2)
