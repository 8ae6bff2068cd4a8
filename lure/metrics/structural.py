"""Structural reference metrics of the MATLAB toolbox: SSIM, MS-SSIM (MEF-SSIM form), Qabf and
VIF, with the toolbox's quirks (conventions: :mod:`lure.metrics.reference`)."""

from __future__ import annotations

import numpy as np

from lure.metrics.matlab import _EPS, _correlate1d, _filter_valid, _fspecial_gaussian_1d, _Images, _images_of

# --------------------------------------------------------------------------- SSIM family


def _ssim_from_stats(stats: _Images, x: str, y: str, dynamic_range: float = 1.0) -> float:
    c1 = (0.01 * dynamic_range) ** 2
    c2 = (0.03 * dynamic_range) ** 2
    mux = stats.gauss_same(x)
    muy = stats.gauss_same(y)
    muxy = mux * muy
    mux2 = mux * mux
    muy2 = muy * muy
    sigmax2 = stats.gauss_same(x + x) - mux2
    sigmay2 = stats.gauss_same(y + y) - muy2
    sigmaxy = stats.gauss_same(x + y) - muxy
    num = (2.0 * muxy + c1) * (2.0 * sigmaxy + c2)
    den = (mux2 + muy2 + c1) * (sigmax2 + sigmay2 + c2)
    return float(np.mean(num / den))


def ssim_matlab(x: np.ndarray, ref: np.ndarray, dynamic_range: float = 1.0) -> float:
    """MATLAB ``ssim(x, ref)`` with its defaults on two equal-size float images.

    Gaussian weighting ``fspecial('gaussian', 11, 1.5)`` (size ``2 ceil(3 * 1.5) + 1``) applied
    with ``imfilter(..., 'conv', 'replicate')`` ('same' size, edges replicated);
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, ``C3 = C2 / 2`` with ``L`` the ``DynamicRange``
    (exponents 1, so the two-term form of the SSIM formula); the value is the mean of the whole
    SSIM map. For ``double`` input MATLAB's default ``DynamicRange`` is 1.
    """
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape or x.ndim != 2:
        raise ValueError(f"x, ref: expected two 2-D arrays of equal shape, got {x.shape} and {ref.shape}")
    return _ssim_from_stats(_Images({"x": x, "y": ref}), "x", "y", dynamic_range)


def _ssim(stats: _Images) -> float:
    return 0.5 * _ssim_from_stats(stats, "f", "a") + 0.5 * _ssim_from_stats(stats, "f", "b")


def ssim(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """SSIM: ``0.5 ssim(F, A) + 0.5 ssim(F, B)`` as ``analysis_Reference.m`` computes it.

    MATLAB ``ssim`` (see :func:`ssim_matlab`) on ``double`` images holding the 0-255 values with
    its default ``DynamicRange`` of 1, so the stabilising constants are ``C1 = 1e-4`` and
    ``C2 = 9e-4`` rather than ``(0.01 * 255)^2`` and ``(0.03 * 255)^2`` (toolbox quirk, kept:
    flat regions of F against textured sources score near 0). Exactly ``1`` when ``F = A = B``.
    """
    return _ssim(_images_of(fused, ir, vi))


def _downsample_2x2(image: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)``.

    The 2 x 2 kernel's centre is its top-left tap (MATLAB: ``floor((size + 1) / 2)``), so the
    kept samples are the means of the non-overlapping 2 x 2 blocks; an odd last row/column is
    averaged with its symmetric (= replicated) copy.
    """
    h, w = image.shape
    padded = np.pad(image, ((0, h % 2), (0, w % 2)), mode="symmetric")
    return (padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]) / 4.0


def _mef_ssim(stats: _Images, sources: tuple[str, ...] = ("a", "b"), fused: str = "f") -> float:
    """One scale of Kede Ma's MEF-SSIM (``mef_ssim.m``), vectorised.

    Images on the 0-255 scale. Window 11 x 11: box window for the patch statistics,
    Gaussian(1.5) window for the SSIM terms, ``K = 0.03``, ``C = (K * 255)^2``, only patches
    fully inside the image ('valid'). Per patch, the desired patch is
    ``r = sum_k w_k (x_k - mu_k) / ed_k`` rescaled to norm ``max_k ed_k`` and compared with the
    fused patch; every per-patch sum is expanded into local sums of image products (exact box
    sums, Gaussian-weighted moments), which equals the ``.m`` loop up to floating-point
    rounding. (On perfectly flat patches MATLAB's ``filter2`` noise makes ``r`` an arbitrary
    vector of norm ~0.001 where ours is 0; the quality map differs there by < 1e-3.)
    """
    w_size = 11
    n_pix = float(w_size * w_size)
    k_count = len(sources)
    s1 = {k: stats.box_sum(k) for k in sources}

    def centred(i: str, j: str) -> np.ndarray:
        """sum over the patch of (x_i - mu_i)(x_j - mu_j), with mu the box mean."""
        return (n_pix * stats.box_sum(i + j) - s1[i] * s1[j]) / n_pix

    pairs = [(sources[i], sources[j]) for i in range(k_count) for j in range(i, k_count)]
    cross = {(i, j): centred(i, j) for i, j in pairs}
    norms = {k: np.sqrt(np.maximum(cross[(k, k)], 0.0)) for k in sources}  # ||x_k - mu_k||
    ed = {k: norms[k] + 0.001 for k in sources}  # sqrt(max(wSize^2 * sigmaSq, 0)) + 0.001

    # structural consistency R = ||sum_k x_k - mean|| / sum_k ||x_k - mu_k||
    total_sq = sum(cross.values()) + sum(cross[p] for p in pairs if p[0] != p[1])
    numerator = np.sqrt(np.maximum(total_sq, 0.0))
    denominator = sum(norms.values())
    r = (numerator + _EPS) / (denominator + _EPS)
    r = np.where(r > 1.0, 1.0 - _EPS, r)
    r = np.where(r < 0.0, _EPS, r)
    p = np.minimum(np.tan(np.pi / 2.0 * r), 10.0)

    w_map = {k: np.exp(p * np.log(ed[k] / w_size)) + _EPS for k in sources}  # (ed / wSize) .^ p + eps
    normaliser = sum(w_map.values())
    max_ed = np.maximum.reduce([ed[k] for k in sources])
    coeff = {k: w_map[k] / normaliser / ed[k] for k in sources}  # a_k = w_k / ed_k

    # rescale factor maxEd / ||r|| (1 where r = 0)
    norm_sq = sum((1.0 if i == j else 2.0) * coeff[i] * coeff[j] * cross[(i, j)] for i, j in pairs)
    norm_r = np.sqrt(np.maximum(norm_sq, 0.0))
    scale = np.ones_like(norm_r)
    np.divide(max_ed, norm_r, out=scale, where=norm_r > 0.0)

    # Gaussian-weighted moments; the patch means mu_k cancel out because sum(window) = 1
    g = {k: stats.gauss_valid(k) for k in (*sources, fused)}
    sigma2_sq = stats.gauss_valid(fused + fused) - g[fused] * g[fused]
    sigma1_sq = sum(
        (1.0 if i == j else 2.0) * coeff[i] * coeff[j] * (stats.gauss_valid(i + j) - g[i] * g[j])
        for i, j in pairs
    )
    sigma12 = sum(coeff[k] * (stats.gauss_valid(k + fused) - g[k] * g[fused]) for k in sources)
    sigma1_sq = sigma1_sq * scale * scale
    sigma12 = sigma12 * scale
    c = (0.03 * 255.0) ** 2
    q_map = (2.0 * sigma12 + c) / (sigma1_sq + sigma2_sq + c)
    return float(np.mean(q_map))


def _ms_ssim(stats: _Images) -> float:
    level = 3
    weights = np.array([0.0448, 0.2856, 0.3001])
    weights = weights / weights.sum()
    if min(stats.images["f"].shape) / 2 ** (level - 1) < 11:
        return float("-inf")
    scores = []
    for lev in range(level):
        scores.append(_mef_ssim(stats))
        if lev < level - 1:
            stats = _Images({k: _downsample_2x2(stats.images[k]) for k in ("a", "b", "f")})
    q = np.array(scores)
    with np.errstate(invalid="ignore"):
        return float(np.prod(q**weights))


def ms_ssim(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """MS_SSIM: the toolbox's ``analysis_ms_ssim(imgSeq, F)`` on the 0-255 values.

    This is Kede Ma's multi-scale MEF-SSIM (``analysis_ms_ssim.m`` + ``mef_ssim.m``), not
    Wang's MS-SSIM: at each of 3 scales the infrared and visible patches are merged into one
    "desired" patch (structure weighted by signal strength and a consistency-driven exponent)
    and compared with F by an SSIM-like structure term (``K = 0.03``, ``C = (0.03 * 255)^2``,
    see :func:`_mef_ssim`); between scales all images are 2 x 2-averaged
    (``imfilter(ones(2)/4, 'symmetric')``) and subsampled; the scores are combined as
    ``prod(Q_l ^ w_l)`` with ``w = [0.0448, 0.2856, 0.3001] / sum``. ``-inf`` when
    ``min(H, W) / 4 < 11`` (toolbox behaviour); NaN when a scale scores below 0 (MATLAB would
    return a complex number). About 1 when ``F = A = B``.
    """
    return _ms_ssim(_images_of(fused, ir, vi))


# --------------------------------------------------------------------------- Qabf and VIF


def _sobel_strength_angle(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength and angle from ``conv2(p, h3, 'same')`` and ``conv2(p, h1, 'same')``.

    ``h1 = [1 2 1; 0 0 0; -1 -2 -1]``, ``h3 = [-1 0 1; -2 0 2; -1 0 1]``, true convolution
    with zero padding; both kernels are separable, so they are applied as two 1-D passes of
    shifted sums (exact: integer weights on integer-valued data).
    """
    p = np.pad(image, 1)  # zero padding
    # conv2 flips the kernel: Sx(i, j) = sum_u [1 2 1](u) * (p(i+u, j) - p(i+u, j+2)), Sy likewise
    col_smooth = p[:-2] + 2.0 * p[1:-1] + p[2:]  # [1 2 1] down the columns
    sx = col_smooth[:, :-2] - col_smooth[:, 2:]
    col_diff = p[2:] - p[:-2]  # [-1 0 1] down the columns
    sy = col_diff[:, :-2] + 2.0 * col_diff[:, 1:-1] + col_diff[:, 2:]
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0.0
    angle = np.arctan(sy / np.where(zero, 1.0, sx))
    angle[zero] = np.pi / 2.0
    return g, angle


def _qabf_edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray
) -> np.ndarray:
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    # G = gF / gA where gA > gF, gA / gF where gA < gF, and gF itself where gA == gF (quirk)
    g_rel = g_f.copy()
    np.divide(g_f, g_src, out=g_rel, where=g_src > g_f)
    np.divide(g_src, g_f, out=g_rel, where=g_src < g_f)
    a_rel = 1.0 - np.abs(a_src - a_f) / (np.pi / 2.0)
    q_g = tg / (1.0 + np.exp(kg * (g_rel - dg)))
    q_a = ta / (1.0 + np.exp(ka * (a_rel - da)))
    return q_g * q_a


def _qabf(stats: _Images) -> float:
    g_a, a_a = _sobel_strength_angle(stats.images["a"])
    g_b, a_b = _sobel_strength_angle(stats.images["b"])
    g_f, a_f = _sobel_strength_angle(stats.images["f"])
    q_af = _qabf_edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _qabf_edge_preservation(g_b, a_b, g_f, a_f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.sum(q_af * g_a + q_bf * g_b) / np.sum(g_a + g_b))


def qabf(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """Qabf: Xydeas-Petrovic gradient-based fusion quality (``analysis_Qabf.m``), 0-255 values.

    Sobel responses by ``conv2(..., 'same')`` (zero padding, so image borders produce edges);
    orientation ``atan(Sy / Sx)`` (not ``atan2``; ``pi/2`` where ``Sx == 0``). Relative strength
    ``G = min(gA, gF) / max(gA, gF)``, except that where ``gA == gF`` the toolbox sets
    ``G = gF`` (quirk kept: 0 on flat pixels, and ``>= 1`` on equal non-zero edges of 0-255
    images); ``Q = Tg / (1 + e^(kg (G - Dg))) * Ta / (1 + e^(ka (A - Da)))`` with
    ``Tg, kg, Dg = 0.9994, -15, 0.5`` and ``Ta, ka, Da = 0.9879, -22, 0.8``; the score is
    ``sum(QAF gA + QBF gB) / sum(gA + gB)`` (``L = 1``). Because of the constants, ``F = A = B``
    gives about 0.975, not 1. NaN when all three images are flat. (The SeAFusion-era driver fed
    ``im2double`` [0, 1] images, on which the ``G = gF`` quirk yields lower values; the current
    driver and this port use 0-255.)
    """
    return _qabf(_images_of(fused, ir, vi))


def _filter_valid_subsample(image: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """``x = filter2(g1' * g1, x, 'valid'); x = x(1:2:end, 1:2:end)`` without the discarded samples."""
    k = g1.size
    h, w = image.shape
    if h < k or w < k:
        return np.zeros((max(h - k + 1, 0), max(w - k + 1, 0)))[::2, ::2]
    half = k // 2
    out = _correlate1d(image, g1, 0, "constant")[half : h - half : 2]
    return _correlate1d(out, g1, 1, "constant")[:, half : w - half : 2]


def _vif_sums(references: list[np.ndarray], distorted: np.ndarray) -> list[tuple[float, float]]:
    """``(num, den)`` of ``vifp_mscale.m`` for each reference against one distorted image.

    The distorted image's pyramid and local statistics are computed once and shared. The
    ``1e-10`` guards of the ``.m`` file are applied in its order:
    ``sigma^2 < 0 -> 0``; ``g = sigma12 / (sigma1^2 + 1e-10)``, ``sv^2 = sigma2^2 - g sigma12``;
    where ``sigma1^2 < 1e-10``: ``g = 0, sv^2 = sigma2^2, sigma1^2 = 0``; where
    ``sigma2^2 < 1e-10``: ``g = 0, sv^2 = 0``; where ``g < 0``: ``sv^2 = sigma2^2, g = 0``;
    finally ``sv^2 <= 1e-10 -> 1e-10``.
    """
    sigma_nsq = 2.0
    sums = [[0.0, 0.0] for _ in references]
    refs = list(references)
    dist = distorted
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        g1 = _fspecial_gaussian_1d(n, n / 5.0)
        if scale > 1:
            refs = [_filter_valid_subsample(ref, g1) for ref in refs]
            dist = _filter_valid_subsample(dist, g1)
        mu2 = _filter_valid(dist, g1)
        sigma2_sq = _filter_valid(dist * dist, g1) - mu2 * mu2
        np.maximum(sigma2_sq, 0.0, out=sigma2_sq)
        low2 = sigma2_sq < 1e-10
        for index, ref in enumerate(refs):
            mu1 = _filter_valid(ref, g1)
            sigma1_sq = _filter_valid(ref * ref, g1) - mu1 * mu1
            sigma12 = _filter_valid(ref * dist, g1) - mu1 * mu2
            np.maximum(sigma1_sq, 0.0, out=sigma1_sq)
            g = sigma12 / (sigma1_sq + 1e-10)
            sv_sq = sigma2_sq - g * sigma12
            low1 = sigma1_sq < 1e-10
            g[low1] = 0.0
            sv_sq[low1] = sigma2_sq[low1]
            sigma1_sq[low1] = 0.0
            g[low2] = 0.0
            sv_sq[low2] = 0.0
            neg = g < 0.0
            sv_sq[neg] = sigma2_sq[neg]
            g[neg] = 0.0
            np.maximum(sv_sq, 1e-10, out=sv_sq)  # sv_sq(sv_sq <= 1e-10) = 1e-10

            sv_sq += sigma_nsq
            g *= g
            g *= sigma1_sq
            g /= sv_sq
            g += 1.0
            sums[index][0] += float(np.sum(np.log10(g)))
            sigma1_sq /= sigma_nsq
            sigma1_sq += 1.0
            sums[index][1] += float(np.sum(np.log10(sigma1_sq)))
    return [(num, den) for num, den in sums]


def _ratio(num: float, den: float) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(den))


def vifp_mscale(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Sheikh & Bovik's multi-scale pixel-domain VIF (``vifp_mscale.m``) of two float 0-255 images.

    Four scales with Gaussian windows ``fspecial('gaussian', N, N/5)``, ``N = 17, 9, 5, 3``;
    from scale 2 on both images are filtered (``filter2 'valid'``) with that scale's window and
    subsampled by 2; local statistics by ``filter2 'valid'``; ``sigma_nsq = 2``; the
    ``1e-10`` guards applied in the ``.m`` file's order. Returns ``num / den`` summed over scales.
    """
    reference = np.asarray(reference, dtype=np.float64)
    distorted = np.asarray(distorted, dtype=np.float64)
    if reference.shape != distorted.shape or reference.ndim != 2:
        raise ValueError(
            f"reference, distorted: expected two 2-D arrays of equal shape, got {reference.shape} "
            f"and {distorted.shape}"
        )
    ((num, den),) = _vif_sums([reference], distorted)
    return _ratio(num, den)


def _vif(stats: _Images) -> float:
    (num_a, den_a), (num_b, den_b) = _vif_sums([stats.images["a"], stats.images["b"]], stats.images["f"])
    return _ratio(num_a, den_a) + _ratio(num_b, den_b)


def vif(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray) -> float:
    """VIF: ``vifp_mscale(A, F) + vifp_mscale(B, F)`` on the 0-255 values (sum, not mean).

    Each term is about 1 when F equals that source, so ``F = A = B`` gives about 2. Needs at
    least 41 pixels on each side for all four scales to be non-empty (NaN otherwise).
    """
    return _vif(_images_of(fused, ir, vi))


