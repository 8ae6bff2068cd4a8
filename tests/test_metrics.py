"""Tests of lure.metrics: every reference metric against hand-computed values or a literal
loop port of the toolbox's .m code, NIQE, and the offline-only pyiqa wrapper."""

from __future__ import annotations

import importlib.machinery
import math
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lure.metrics import niqe as niqe_module
from lure.metrics import no_reference
from lure.metrics import reference as ref

EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- literal MATLAB ports


def fspecial_gaussian(n: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian', n, sigma), built in 2-D."""
    x = np.arange(n) - (n - 1) / 2
    xx, yy = np.meshgrid(x, x)
    h = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    h[h < EPS * h.max()] = 0
    return h / h.sum()


def filter2_valid(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """MATLAB filter2(h, x, 'valid') by explicit loops over the output."""
    k = h.shape[0]
    rows, cols = x.shape[0] - k + 1, x.shape[1] - k + 1
    out = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.sum(h * x[i : i + k, j : j + k])
    return out


def conv2_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """MATLAB conv2(x, h, 'same') for a 3 x 3 kernel, by loops with zero padding."""
    padded = np.pad(x, 1)
    flipped = h[::-1, ::-1]
    out = np.empty_like(x, dtype=float)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = np.sum(flipped * padded[i : i + 3, j : j + 3])
    return out


def loop_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB ssim(x, y) defaults (double input: DynamicRange 1), by loops."""
    w = fspecial_gaussian(11, 1.5)
    c1, c2 = 0.01**2, 0.03**2
    xp, yp = np.pad(x, 5, mode="edge"), np.pad(y, 5, mode="edge")
    vals = []
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            px, py = xp[i : i + 11, j : j + 11], yp[i : i + 11, j : j + 11]
            mx, my = np.sum(w * px), np.sum(w * py)
            sx = np.sum(w * px * px) - mx * mx
            sy = np.sum(w * py * py) - my * my
            sxy = np.sum(w * px * py) - mx * my
            vals.append((2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sx + sy + c2)))
    return float(np.mean(vals))


def loop_mef_ssim(seq: np.ndarray, f: np.ndarray) -> float:
    """mef_ssim.m, line by line (K = 0.03, Gaussian 11/1.5 window)."""
    window = fspecial_gaussian(11, 1.5)
    s1, s2, s3 = seq.shape
    w_size, bd = 11, 5
    s_window = np.ones((w_size, w_size)) / w_size**2
    mu = np.zeros((s1 - 2 * bd, s2 - 2 * bd, s3))
    ed = np.zeros_like(mu)
    for k in range(s3):
        img = seq[:, :, k]
        mu[:, :, k] = filter2_valid(s_window, img)
        sigma_sq = filter2_valid(s_window, img * img) - mu[:, :, k] ** 2
        ed[:, :, k] = np.sqrt(np.maximum(w_size**2 * sigma_sq, 0)) + 0.001
    r = np.zeros((s1 - 2 * bd, s2 - 2 * bd))
    for i in range(bd, s1 - bd):
        for j in range(bd, s2 - bd):
            vecs = seq[i - bd : i + bd + 1, j - bd : j + bd + 1, :].reshape(-1, s3)
            den = sum(np.linalg.norm(vecs[:, k] - mu[i - bd, j - bd, k]) for k in range(s3))
            tot = vecs.sum(axis=1)
            num = np.linalg.norm(tot - tot.mean())
            r[i - bd, j - bd] = (num + EPS) / (den + EPS)
    r[r > 1] = 1 - EPS
    r[r < 0] = EPS
    p = np.minimum(np.tan(np.pi / 2 * r), 10)
    w_map = (ed / w_size) ** p[:, :, None] + EPS
    w_map = w_map / w_map.sum(axis=2, keepdims=True)
    max_ed = ed.max(axis=2)
    c = (0.03 * 255) ** 2
    q = np.zeros_like(r)
    for i in range(bd, s1 - bd):
        for j in range(bd, s2 - bd):
            blocks = seq[i - bd : i + bd + 1, j - bd : j + bd + 1, :]
            r_block = np.zeros((w_size, w_size))
            for k in range(s3):
                r_block += (
                    w_map[i - bd, j - bd, k]
                    * (blocks[:, :, k] - mu[i - bd, j - bd, k])
                    / ed[i - bd, j - bd, k]
                )
            if np.linalg.norm(r_block) > 0:
                r_block = r_block / np.linalg.norm(r_block) * max_ed[i - bd, j - bd]
            f_block = f[i - bd : i + bd + 1, j - bd : j + bd + 1]
            m1, m2 = np.sum(window * r_block), np.sum(window * f_block)
            v1 = np.sum(window * (r_block - m1) ** 2)
            v2 = np.sum(window * (f_block - m2) ** 2)
            v12 = np.sum(window * (r_block - m1) * (f_block - m2))
            q[i - bd, j - bd] = (2 * v12 + c) / (v1 + v2 + c)
    return float(q.mean())


def loop_downsample(x: np.ndarray) -> np.ndarray:
    """imfilter(x, ones(2)/4, 'symmetric', 'same') then x(1:2:end, 1:2:end), by loops."""
    padded = np.pad(x, ((0, 1), (0, 1)), mode="symmetric")
    same = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            same[i, j] = padded[i : i + 2, j : j + 2].sum() / 4
    return same[::2, ::2]


def loop_ms_ssim(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    weight = np.array([0.0448, 0.2856, 0.3001])
    weight = weight / weight.sum()
    qs = []
    for level in range(3):
        qs.append(loop_mef_ssim(np.stack([a, b], axis=2), f))
        if level < 2:
            a, b, f = loop_downsample(a), loop_downsample(b), loop_downsample(f)
    return float(np.prod(np.array(qs) ** weight))


def loop_qabf(pa: np.ndarray, pb: np.ndarray, pf: np.ndarray) -> float:
    """analysis_Qabf.m, line by line."""
    tg, kg, dg, ta, ka, da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)

    def strength_angle(p):
        sx, sy = conv2_same(p, h3), conv2_same(p, h1)
        g = np.sqrt(sx**2 + sy**2)
        a = np.empty_like(g)
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                a[i, j] = np.pi / 2 if sx[i, j] == 0 else math.atan(sy[i, j] / sx[i, j])
        return g, a

    ga, aa = strength_angle(pa)
    gb, ab = strength_angle(pb)
    gf, af = strength_angle(pf)

    def q(gs, as_):
        out = np.empty_like(gs)
        for i in range(gs.shape[0]):
            for j in range(gs.shape[1]):
                if gs[i, j] > gf[i, j]:
                    gr = gf[i, j] / gs[i, j]
                elif gs[i, j] == gf[i, j]:
                    gr = gf[i, j]
                else:
                    gr = gs[i, j] / gf[i, j]
                ar = 1 - abs(as_[i, j] - af[i, j]) / (np.pi / 2)
                out[i, j] = tg / (1 + math.exp(kg * (gr - dg))) * ta / (1 + math.exp(ka * (ar - da)))
        return out

    return float(np.sum(q(ga, aa) * ga + q(gb, ab) * gb) / np.sum(ga + gb))


def loop_vifp(ref_img: np.ndarray, dist: np.ndarray) -> float:
    """vifp_mscale.m, line by line, with 2-D fspecial kernels and loop filter2."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = fspecial_gaussian(n, n / 5)
        if scale > 1:
            ref_img = filter2_valid(win, ref_img)[::2, ::2]
            dist = filter2_valid(win, dist)[::2, ::2]
        mu1, mu2 = filter2_valid(win, ref_img), filter2_valid(win, dist)
        s1 = filter2_valid(win, ref_img * ref_img) - mu1 * mu1
        s2 = filter2_valid(win, dist * dist) - mu2 * mu2
        s12 = filter2_valid(win, ref_img * dist) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        g[s1 < 1e-10] = 0
        sv[s1 < 1e-10] = s2[s1 < 1e-10]
        s1[s1 < 1e-10] = 0
        g[s2 < 1e-10] = 0
        sv[s2 < 1e-10] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g**2 * s1 / (sv + 2)))
        den += np.sum(np.log10(1 + s1 / 2))
    return float(num / den)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x.ravel().astype(float), y.ravel().astype(float))[0, 1])


# --------------------------------------------------------------------------- fixtures


def structured_triple(size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small IR/VI/fused triple with edges, texture, flat areas and saturated pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    ir = 90 + 60 * np.sin(xx / 5.0) + rng.normal(0, 8, (size, size))
    ir[10:20, 10:30] = 250
    vi = 120 + 80 * np.cos(yy / 7.0) * np.sin(xx / 11.0) + rng.normal(0, 12, (size, size))
    vi[30:, :12] = 40
    ir, vi = (np.clip(np.round(v), 0, 255).astype(np.uint8) for v in (ir, vi))
    fused = np.maximum(ir, vi).astype(np.float64) * 0.6 + vi * 0.4
    return np.clip(np.round(fused), 0, 255).astype(np.uint8), ir, vi


@pytest.fixture(scope="module")
def triple():
    return structured_triple()


# --------------------------------------------------------------------------- single-image metrics


def test_entropy_hand_values():
    assert ref.entropy(np.array([[0, 0], [1, 1]], np.uint8)) == pytest.approx(1.0)
    assert ref.entropy(np.array([[0, 1], [2, 3]], np.uint8)) == pytest.approx(2.0)
    assert ref.entropy(np.full((3, 5), 7, np.uint8)) == 0.0
    # p = (1/2, 1/4, 1/4) -> 1.5 bits
    assert ref.entropy(np.array([[9, 9, 200, 255]], np.uint8)) == pytest.approx(1.5)


def test_standard_deviation_population_on_0_255():
    image = np.array([[0, 2], [4, 6]], np.uint8)
    assert ref.standard_deviation(image) == pytest.approx(math.sqrt(5.0))  # mean 3, var (9+1+1+9)/4
    # far from 0: uint8 saturation of the old .m (F - mean -> 0) must not happen
    assert ref.standard_deviation(np.array([[0, 255]], np.uint8)) == pytest.approx(127.5)


def test_spatial_frequency_hand_value():
    image = np.array([[0, 1], [2, 3]], np.uint8)  # row differences 2, 2; column differences 1, 1
    assert ref.spatial_frequency(image) == pytest.approx(math.sqrt(4 + 1))
    image = np.array([[0, 10, 0], [10, 0, 10], [0, 0, 0]], np.uint8)
    rows = [10, 10, 10, 10, 0, 10]  # |diff| down the columns
    cols = [10, 10, 10, 10, 0, 0]  # |diff| along the rows
    expected = math.sqrt(np.mean(np.square(rows)) + np.mean(np.square(cols)))
    assert ref.spatial_frequency(image) == pytest.approx(expected)


def matlab_gradient_1d(v: np.ndarray) -> np.ndarray:
    out = np.empty(len(v))
    out[0], out[-1] = v[1] - v[0], v[-1] - v[-2]
    for i in range(1, len(v) - 1):
        out[i] = (v[i + 1] - v[i - 1]) / 2
    return out


def test_average_gradient_hand_value_and_loop():
    ramp = np.array([[0, 1, 2], [0, 1, 2]], np.uint8)  # gx = 1 everywhere, gy = 0
    assert ref.average_gradient(ramp) == pytest.approx(6 * math.sqrt(0.5) / (1 * 2))
    image, _, _ = structured_triple(9, seed=3)
    f = image.astype(float)
    gx = np.array([matlab_gradient_1d(row) for row in f])
    gy = np.array([matlab_gradient_1d(col) for col in f.T]).T
    expected = np.sum(np.sqrt((gx**2 + gy**2) / 2)) / (8 * 8)
    assert ref.average_gradient(image) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- metrics against the sources


def test_mse_and_psnr_hand_values():
    fused = np.zeros((2, 2), np.uint8)
    ir = np.full((2, 2), 255, np.uint8)
    vi = np.zeros((2, 2), np.uint8)
    assert ref.mean_squared_error(fused, ir, vi) == pytest.approx(0.5)  # [0, 1] scale
    assert ref.psnr(fused, ir, vi) == pytest.approx(20 * math.log10(255 / math.sqrt(0.5)))
    assert ref.psnr(vi, vi, vi) == math.inf


def test_cc_and_scd_against_pearson(triple):
    fused, ir, vi = triple
    expected_cc = 0.5 * (pearson(ir, fused) + pearson(vi, fused))
    assert ref.correlation_coefficient(fused, ir, vi) == pytest.approx(expected_cc, rel=1e-12)
    f, a, b = (x.astype(float) for x in triple)
    expected_scd = pearson(f - b, a) + pearson(f - a, b)
    assert ref.scd(fused, ir, vi) == pytest.approx(expected_scd, rel=1e-12)
    assert ref.correlation_coefficient(ir, ir, ir) == pytest.approx(1.0)


def test_mutual_information_hand_values_and_saturation_quirk():
    f = np.array([[0, 1], [2, 3]], np.uint8)
    constant = np.zeros((2, 2), np.uint8)
    # MI(A=F) = H(F) = 2; MI(B const, F) = 0 + 2 - 2 = 0
    assert ref.mutual_information(f, f, constant) == pytest.approx(2.0)
    # Hab.m: uint8(254)+1 and uint8(255)+1 both saturate to 255 -> one joint bin
    g = np.array([[254, 255], [0, 0]], np.uint8)  # H = 1.5, saturated joint H = 1.0
    assert ref.mutual_information(g, g, g) == pytest.approx(2 * (1.5 + 1.5 - 1.0))


def test_mi_of_identical_images_is_twice_entropy(triple):
    fused, _, _ = triple
    image = np.minimum(fused, 253)  # below the saturated bins
    assert ref.mutual_information(image, image, image) == pytest.approx(2 * ref.entropy(image), rel=1e-12)


def test_ssim_against_loop_and_identity(triple):
    fused, ir, vi = triple
    f, a, b = (x.astype(float) for x in triple)
    expected = 0.5 * loop_ssim(f, a) + 0.5 * loop_ssim(f, b)
    assert ref.ssim(fused, ir, vi) == pytest.approx(expected, rel=1e-10)
    assert ref.ssim(ir, ir, ir) == 1.0
    # constant images: (2cd + C1) / (c^2 + d^2 + C1) with C1 = 1e-4 (DynamicRange 1)
    c, d = np.full((16, 16), 100, np.uint8), np.full((16, 16), 50, np.uint8)
    assert ref.ssim(c, d, d) == pytest.approx((2 * 100 * 50 + 1e-4) / (100**2 + 50**2 + 1e-4), rel=1e-8)


def test_ms_ssim_against_loop_port(triple):
    fused, ir, vi = triple
    f, a, b = (x.astype(float) for x in triple)
    assert ref.ms_ssim(fused, ir, vi) == pytest.approx(loop_ms_ssim(a, b, f), rel=1e-9)
    assert ref.ms_ssim(ir, ir, ir) == pytest.approx(1.0, abs=1e-6)
    small = np.zeros((40, 60), np.uint8)
    assert ref.ms_ssim(small, small, small) == -math.inf  # min side / 4 < 11


def test_qabf_against_loop_port():
    fused, ir, vi = structured_triple(14, seed=5)
    ir[:, 10:] = 60  # flat region: exercises gA == gF == 0 and Sx == 0
    vi[3:6, 3:6] = fused[3:6, 3:6]  # equal edges: the gA == gF -> G = gF quirk
    a, b, f = (x.astype(float) for x in (ir, vi, fused))
    assert ref.qabf(fused, ir, vi) == pytest.approx(loop_qabf(a, b, f), rel=1e-12)
    identical = ref.qabf(ir, ir, ir)
    assert identical == pytest.approx(loop_qabf(a, a, a), rel=1e-12)
    assert 0.97 < identical < 0.98  # Tg / (1 + e^(kg (gF - Dg))) * Ta / (1 + e^(ka (1 - Da))), not 1


def test_vif_against_loop_port(triple):
    fused, ir, vi = triple
    f, a, b = (x.astype(float) for x in triple)
    assert ref.vif(fused, ir, vi) == pytest.approx(loop_vifp(a, f) + loop_vifp(b, f), rel=1e-10)
    assert ref.vif(ir, ir, ir) == pytest.approx(2.0, abs=1e-6)


def test_rgb2gray_matches_matlab_rounding():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30]]], np.uint8)
    grey = ref.rgb2gray_matlab(rgb)
    # 0.298936*255 = 76.23; 0.587043*255 = 149.70; 0.114021*255 = 29.08; 10/20/30 -> 18.11
    assert grey.dtype == np.uint8
    assert grey.tolist() == [[76, 150, 29, 255, 18]]


def test_fusion_metrics_keys_values_and_identity(triple):
    fused, ir, vi = triple
    metrics = ref.fusion_metrics(fused, ir, vi)
    assert list(metrics) == list(ref.METRIC_NAMES)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["SSIM"] == pytest.approx(ref.ssim(fused, ir, vi), rel=1e-12)
    assert metrics["MS_SSIM"] == pytest.approx(ref.ms_ssim(fused, ir, vi), rel=1e-12)
    assert metrics["PSNR"] == pytest.approx(ref.psnr(fused, ir, vi))
    same = ref.fusion_metrics(ir, ir, ir)
    assert same["SSIM"] == 1.0 and same["MSE"] == 0.0 and same["CC"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("args", "name", "reason"),
    [
        (
            (np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), np.zeros((4, 4), np.uint8)),
            "ir",
            "differs",
        ),
        (
            (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)),
            "fused",
            "uint8",
        ),
        (
            (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8)),
            "vi",
            "2-D",
        ),
        (
            (np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8)),
            "fused",
            "empty",
        ),
        (([[1, 2]], np.zeros((1, 2), np.uint8), np.zeros((1, 2), np.uint8)), "fused", "numpy array"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(args, name, reason):
    with pytest.raises(ValueError, match=rf"^{name}:.*{reason}"):
        ref.fusion_metrics(*args)


def test_bad_rgb_input():
    with pytest.raises(ValueError, match="rgb:.*H x W x 3"):
        ref.rgb2gray_matlab(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="rgb:.*uint8"):
        ref.rgb2gray_matlab(np.zeros((4, 4, 3), np.float64))


def _load_grey(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        if image.mode == "L":
            return np.asarray(image)
        return ref.rgb2gray_matlab(np.asarray(image.convert("RGB")))


def test_psnr_quirk_near_60_db_on_real_pair(shared_data):
    ir_path = shared_data / "msrs" / "ir" / "00537D.png"
    vi_path = shared_data / "msrs" / "vi" / "00537D.png"
    if not (ir_path.is_file() and vi_path.is_file()):
        pytest.skip("MSRS pair 00537D absent")
    _assert_psnr_quirk(_load_grey(ir_path), _load_grey(vi_path))


def test_psnr_quirk_near_60_db_on_generated_pair():
    """The same on a generated demo scene (every clone has it)."""
    from data_prep.sources.demo import render_scene

    ir, vi = render_scene(3, 240, 320)
    _assert_psnr_quirk(ir, ref.rgb2gray_matlab(vi))


def _assert_psnr_quirk(ir: np.ndarray, vi: np.ndarray) -> None:
    fused = ((ir.astype(np.uint16) + vi) // 2).astype(np.uint8)
    metrics = ref.fusion_metrics(fused, ir, vi)
    assert 55.0 < metrics["PSNR"] < 70.0
    assert all(math.isfinite(v) for v in metrics.values())
    assert 0 < metrics["SSIM"] < 1 and 0 < metrics["MS_SSIM"] < 1 and 0 < metrics["Qabf"] < 1


# --------------------------------------------------------------------------- NIQE


def test_niqe_missing_parameter_file_names_file(tmp_path):
    missing = tmp_path / "nowhere" / "niqe_pris_params.npz"
    with pytest.raises(FileNotFoundError, match=r"niqe_pris_params\.npz.*nowhere|nowhere.*niqe_pris_params"):
        niqe_module.calculate_niqe(np.zeros((200, 200), np.uint8), missing)


def loop_imresize_half(x: np.ndarray) -> np.ndarray:
    """BasicSR matlab_functions.imresize(scale=0.5, antialiasing=True) along both axes, by loops."""

    def cubic(t):
        t = abs(t)
        if t <= 1:
            return 1.5 * t**3 - 2.5 * t**2 + 1
        if t <= 2:
            return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
        return 0.0

    def resize_rows(img):
        n = img.shape[0]
        out_n = math.ceil(n * 0.5)
        out = np.zeros((out_n,) + img.shape[1:])
        for o in range(1, out_n + 1):
            u = o / 0.5 + 0.5 * (1 - 1 / 0.5)
            left = math.floor(u - 8 / 2)
            taps = [(left + t, 0.5 * cubic((u - (left + t)) * 0.5)) for t in range(10)]
            total = sum(w for _, w in taps)
            for idx, w in taps:
                i = idx - 1
                i = -i - 1 if i < 0 else (2 * n - 1 - i if i >= n else i)
                out[o - 1] += w / total * img[i]
        return out

    return resize_rows(resize_rows(x).T).T


def test_imresize_matches_loop_port():
    x = np.random.default_rng(1).uniform(0, 1, (13, 18))
    np.testing.assert_allclose(niqe_module.imresize_matlab(x, 0.5), loop_imresize_half(x), rtol=0, atol=1e-12)
    np.testing.assert_allclose(niqe_module.imresize_matlab(np.full((10, 8), 0.3), 0.5), 0.3, atol=1e-12)


def test_aggd_params_against_per_block_formula():
    from scipy.special import gamma

    rng = np.random.default_rng(2)
    blocks = rng.laplace(0.1, 1.0, (3, 12, 12))
    alpha, beta_l, beta_r = niqe_module._aggd_params(blocks)
    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))
    for k, block in enumerate(blocks):
        b = block.ravel()
        left, right = np.sqrt(np.mean(b[b < 0] ** 2)), np.sqrt(np.mean(b[b > 0] ** 2))
        gh = left / right
        rhat = np.mean(np.abs(b)) ** 2 / np.mean(b**2)
        rn = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
        a = gam[np.argmin((r_gam - rn) ** 2)]
        assert alpha[k] == a
        assert beta_l[k] == pytest.approx(left * np.sqrt(gamma(1 / a) / gamma(3 / a)), rel=1e-12)
        assert beta_r[k] == pytest.approx(right * np.sqrt(gamma(1 / a) / gamma(3 / a)), rel=1e-12)


def test_niqe_real_image_clean_beats_degraded(shared_data):
    from PIL import Image

    params_path = shared_data / "niqe" / "niqe_pris_params.npz"
    image_path = shared_data / "msrs" / "vi" / "00537D.png"
    if not (params_path.is_file() and image_path.is_file()):
        pytest.skip("NIQE parameters or MSRS image absent")
    with Image.open(image_path) as image:
        _assert_niqe_clean_beats_degraded(np.asarray(image.convert("RGB")), params_path)


def test_niqe_generated_image_clean_beats_degraded(niqe_params):
    """The same on a generated demo scene, with the shared NIQE model or (in a user's clone) one
    fitted on other generated scenes."""
    from data_prep.sources.demo import render_scene

    _assert_niqe_clean_beats_degraded(render_scene(3, 240, 320)[1], niqe_params)


def _assert_niqe_clean_beats_degraded(clean: np.ndarray, params_path) -> None:
    from PIL import Image, ImageFilter

    params = niqe_module.load_niqe_params(params_path)
    clean_image = Image.fromarray(clean)
    blurred = np.asarray(clean_image.filter(ImageFilter.GaussianBlur(3)), dtype=np.float64)
    noisy = blurred + np.random.default_rng(0).normal(0, 25, blurred.shape)
    degraded = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    score_clean = niqe_module.calculate_niqe(clean, params)
    score_degraded = niqe_module.calculate_niqe(degraded, params)
    assert math.isfinite(score_clean) and score_clean > 0
    assert score_clean < score_degraded
    # grey input path and crop_border run too
    grey = niqe_module.calculate_niqe(ref.rgb2gray_matlab(clean), params, crop_border=4)
    assert math.isfinite(grey) and grey > 0


def test_niqe_rejects_too_small_image(niqe_params):
    with pytest.raises(ValueError, match="two 96 x 96 blocks"):
        niqe_module.calculate_niqe(np.zeros((100, 100, 3), np.uint8), niqe_params)


# --------------------------------------------------------------------------- no-reference (pyiqa)


def test_no_reference_rejects_bad_image():
    with pytest.raises(ValueError, match="image_rgb_uint8"):
        no_reference.no_reference_metrics(np.zeros((8, 8), np.uint8))


def _install_stub_pyiqa(monkeypatch, create_metric) -> None:
    stub = types.ModuleType("pyiqa")
    stub.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    stub.create_metric = create_metric
    monkeypatch.setitem(sys.modules, "pyiqa", stub)


def test_no_reference_without_pyiqa_returns_none_with_notes(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # find_spec -> None, as for a missing package
    notes: dict[str, str] = {}
    out = no_reference.no_reference_metrics(np.zeros((8, 8, 3), np.uint8), notes=notes)
    assert out == dict.fromkeys(no_reference.DEFAULT_NR_METRICS)
    assert set(notes) == set(no_reference.DEFAULT_NR_METRICS)
    assert all("pyiqa is not installed" in line for line in notes.values())


def test_no_reference_never_downloads_missing_weights(monkeypatch, tmp_path):
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls: list[str] = []

    def create_metric(name, device=None, as_loss=False):
        calls.append(name)
        if name == "musiq":
            torch.hub.download_url_to_file("https://example.invalid/musiq.pth", str(cache / "musiq.pth"))
        if name == "liqe":
            socket.create_connection(("127.0.0.1", 9))  # any other network path
        return lambda tensor: torch.full((1, 1), float(tensor.mean()) + 0.25)

    _install_stub_pyiqa(monkeypatch, create_metric)
    cache = no_reference.pyiqa_cache_dir()
    assert cache == tmp_path / "hub" / "pyiqa"
    notes: dict[str, str] = {}
    image = np.zeros((8, 8, 3), np.uint8)

    # no cache folder: skipped before pyiqa is even asked
    out = no_reference.no_reference_metrics(image, names=("musiq",), notes=notes)
    assert out == {"musiq": None} and "weights not cached at" in notes["musiq"] and calls == []

    # a cache with other files: pyiqa's attempt to fetch its weights is refused, not performed
    cache.mkdir(parents=True)
    (cache / "other.pth").write_bytes(b"x")

    notes.clear()
    out = no_reference.no_reference_metrics(
        image, names=("musiq", "liqe", "clipiqa"), device="cpu", notes=notes
    )
    assert out["musiq"] is None and out["liqe"] is None
    assert out["clipiqa"] == pytest.approx(0.25)
    assert "musiq.pth" in notes["musiq"] and "weights not cached at" in notes["musiq"]
    assert "network connection" in notes["liqe"]
    assert "clipiqa" not in notes
    assert not (cache / "musiq.pth").exists()
    # the guard is lifted afterwards
    assert torch.hub.download_url_to_file.__name__ == "download_url_to_file"


def test_offline_guard_blocks_then_restores_sockets():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with no_reference._offline_guard(), pytest.raises(no_reference.WeightsNotCachedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        server.close()


def test_no_reference_scorer_builds_each_metric_once(monkeypatch, tmp_path):
    """An evaluation scores every image with the metrics built at its first image."""
    import torch

    from lure.evaluation.scoring import Scorer

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    built: list[str] = []

    def create_metric(name, device=None, as_loss=False):
        built.append(name)
        if name == "liqe":
            raise RuntimeError("broken metric")
        return lambda tensor: torch.full((1, 1), float(tensor.mean()))

    _install_stub_pyiqa(monkeypatch, create_metric)
    (tmp_path / "hub" / "pyiqa").mkdir(parents=True)
    (tmp_path / "hub" / "pyiqa" / "weights.pth").write_bytes(b"x")
    notes: list[str] = []
    scorer = Scorer(None, ["musiq", "liqe"], notes)
    rng = np.random.default_rng(0)
    for _ in range(3):
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        scores = scorer(image, image[..., 0], image)
        assert scores["musiq"] == pytest.approx(image.mean() / 255.0, rel=1e-5) and np.isnan(scores["liqe"])
    scorer.finish()
    assert built == ["musiq", "liqe"]  # once each, not once per image
    assert notes == ["liqe: skipped: pyiqa failed on 'liqe': RuntimeError: broken metric"]


def test_target_contrast_kept_by_averaging_max_and_copying():
    from lure.metrics import target_contrast_kept

    rng = np.random.default_rng(0)
    ir = np.full((64, 64), 60.0) + rng.normal(0, 2, (64, 64))
    ir[20:26, 30:34] = 220.0  # a warm person, 24 px of 4096 (above the 99th percentile)
    vi = np.full((64, 64), 120.0)
    ir8, vi8 = ir.clip(0, 255).astype(np.uint8), vi.astype(np.uint8)
    assert target_contrast_kept(ir8, ir8) == pytest.approx(1.0)
    assert target_contrast_kept(((ir8.astype(float) + vi8) / 2).astype(np.uint8), ir8) == pytest.approx(0.5, abs=0.01)
    assert target_contrast_kept(vi8, ir8) == pytest.approx(0.0, abs=1e-9)  # the visible image alone
    # pixel max keeps the target (220) but lifts its surround to the visible 120: (220 - 120) / (220 - 60)
    assert target_contrast_kept(np.maximum(ir8, vi8), ir8) == pytest.approx(100 / 160, abs=0.03)
    flat = np.full((64, 64), 60, np.uint8)
    assert np.isnan(target_contrast_kept(vi8, flat))  # no warm target
    with pytest.raises(ValueError, match="two grey images of one size"):
        target_contrast_kept(vi8, ir8[:32])
