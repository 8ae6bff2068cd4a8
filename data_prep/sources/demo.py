"""``demo`` source: seeded procedural aligned infrared/visible scenes for the offline demo and tests.

Each scene (``height x width``, default 128 x 160) has

* a textured background: sky gradient above a random horizon, ground with value-noise texture,
  random stripes (road markings, fences) or a brick/tile pattern, seen in colour by the visible
  camera; the infrared camera sees a smooth, mostly texture-free temperature field (cold sky, warm
  ground) — so visible texture is information only the visible image carries;
* 3–7 objects (rectangles, ellipses, people, vehicles) whose colour and heat are drawn
  independently: hot people may be camouflaged in the visible image (colour close to the
  background) and bright-coloured objects may be cold — so each modality carries something the
  other lacks, which is what a fusion network must learn to combine;
* an infrared image rendered at ``1/ir_scale`` of the resolution (default 1: full resolution),
  blurred by the optics, upsampled back to the visible size when ``ir_scale > 1`` (aligned), plus
  sensor noise: Gaussian (``ir_noise``) and fixed-pattern column stripes (``ir_stripe_noise``),
  standard deviations on the [0, 1] scale;
* a visible image with mild optical blur and noise.

Splits ``train`` and ``test`` use disjoint seeds. Fusion pairs are the clean scenes; stage-1
triplets cover every task: visible ``pd, ll, hz, oe`` and infrared ``pd, lc, sr4, sr8`` built with
:func:`data_prep.degradations.degrade` from that scene's clean images.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from data_prep.degradations import degrade
from lure.text.vocabulary import INFRARED, MODALITY_TASKS, VISIBLE

from .base import FusionRecord, ParsedSource, Stage1Record

VERSION = "demo-v2"  # v2: infrared rendered at full resolution with less sensor noise, so SR has detail to restore
DEFAULTS = {"train": 48, "test": 8, "height": 128, "width": 160, "ir_scale": 1, "ir_noise": 0.006,
            "ir_stripe_noise": 0.004, "seed": 0}


def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4, base: int = 4) -> np.ndarray:
    """Fractal value noise in [0, 1], ``h x w``."""
    out = np.zeros((h, w))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = base * 2**o
        grid = rng.random((max(2, cells * h // max(h, w)), max(2, cells * w // max(h, w)))).astype(np.float32)
        layer = np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC), dtype=np.float64)
        out += amp * layer
        total += amp
        amp *= 0.5
    out /= total
    return np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1)


def _soft(d: np.ndarray, softness: float) -> np.ndarray:
    """Soft inside-mask from a signed distance (negative inside), anti-aliased over ``softness`` px."""
    return 1.0 / (1.0 + np.exp(np.clip(d / softness, -30, 30)))


def _object_mask(kind: str, p: dict, yy: np.ndarray, xx: np.ndarray, softness: float) -> np.ndarray:
    cy, cx, hh, hw = p["cy"], p["cx"], p["hh"], p["hw"]
    if kind == "rect":
        d = np.maximum(np.abs(yy - cy) - hh, np.abs(xx - cx) - hw)
        return _soft(d, softness)
    if kind == "ellipse":
        r = np.sqrt(((yy - cy) / hh) ** 2 + ((xx - cx) / hw) ** 2)
        return _soft((r - 1.0) * min(hh, hw), softness)
    if kind == "person":
        body = np.sqrt(((yy - cy) / hh) ** 2 + ((xx - cx) / (hw * 0.55)) ** 2)
        head_r = hw * 0.45
        head = np.sqrt((yy - (cy - hh - head_r * 0.8)) ** 2 + (xx - cx) ** 2) - head_r
        return np.maximum(_soft((body - 1.0) * hw * 0.55, softness), _soft(head, softness))
    # vehicle: body box + cabin + two wheels
    body = _soft(np.maximum(np.abs(yy - cy) - hh * 0.5, np.abs(xx - cx) - hw), softness)
    cabin = _soft(np.maximum(np.abs(yy - (cy - hh * 0.8)) - hh * 0.35, np.abs(xx - cx) - hw * 0.55), softness)
    wheels = [np.sqrt((yy - (cy + hh * 0.5)) ** 2 + (xx - (cx + s * hw * 0.6)) ** 2) - hh * 0.35 for s in (-1, 1)]
    return np.maximum.reduce([body, cabin, *(_soft(w, softness) for w in wheels)])


def _pattern(kind: str, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A visible surface texture in [0, 1] (only the visible image sees it)."""
    if kind == "stripes":
        period, angle = rng.uniform(4, 10), rng.uniform(0, np.pi)
        return 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period))
    if kind == "checker":
        period = rng.uniform(4, 10)
        return ((np.floor(yy / period) + np.floor(xx / period)) % 2).astype(np.float64)
    if kind == "noise":
        return _value_noise(rng, *yy.shape, octaves=3, base=8)
    return np.full(yy.shape, 0.5)


def render_scene(seed: int, height: int = DEFAULTS["height"], width: int = DEFAULTS["width"],
                 ir_scale: int = DEFAULTS["ir_scale"], ir_noise: float = DEFAULTS["ir_noise"],
                 ir_stripe_noise: float = DEFAULTS["ir_stripe_noise"]) -> tuple[np.ndarray, np.ndarray]:
    """One aligned scene: ``(ir uint8 HxW, vi uint8 HxWx3 RGB)``, deterministic given ``seed``."""
    rng = np.random.default_rng(seed)
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    lh, lw = max(8, h // ir_scale), max(8, w // ir_scale)
    lyy, lxx = np.mgrid[0:lh, 0:lw].astype(np.float64)
    lyy, lxx = (lyy + 0.5) * h / lh - 0.5, (lxx + 0.5) * w / lw - 0.5  # low-res grid in full-res coordinates

    horizon = rng.uniform(0.25, 0.5) * h
    sky_mask, sky_low = _soft(yy - horizon, 1.5), _soft(lyy - horizon, 1.5)

    # visible background: sky gradient + textured ground (+ stripes or tiles)
    sky_top, sky_bottom = rng.uniform(0.3, 0.9, 3), rng.uniform(0.5, 1.0, 3)
    t = np.clip(yy / max(horizon, 1), 0, 1)[..., None]
    sky = sky_top * (1 - t) + sky_bottom * t
    ground_col = rng.uniform(0.15, 0.7, 3)
    ground_tex = _value_noise(rng, h, w, octaves=5, base=6)
    ground = ground_col * (0.55 + 0.8 * ground_tex[..., None])
    extra = rng.choice(["stripes", "tiles", "none"])
    if extra == "stripes":
        lane = (np.abs(((xx - rng.uniform(0, w)) % rng.uniform(18, 40)) - 3) < 1.5) & (yy > horizon)
        ground = np.where(lane[..., None], rng.uniform(0.8, 1.0, 3), ground)
    elif extra == "tiles":
        size = rng.uniform(6, 14)
        grout = ((yy % size) < 1.2) | (((xx + (np.floor(yy / size) % 2) * size / 2) % (2 * size)) < 1.2)
        ground = np.where((grout & (yy > horizon))[..., None], ground * 0.45, ground)
    vi = sky * sky_mask[..., None] + ground * (1 - sky_mask[..., None])

    # infrared background: cold sky, warm ground with smooth (texture-free) variation
    sky_temp, ground_temp = rng.uniform(0.02, 0.2), rng.uniform(0.3, 0.55)
    ir_ground = ground_temp + 0.12 * (_value_noise(rng, lh, lw, octaves=2, base=3) - 0.5)
    ir = sky_temp * sky_low + ir_ground * (1 - sky_low)

    # objects: colour and heat independent
    n_obj = int(rng.integers(3, 8))
    objects = []
    for _ in range(n_obj):
        kind = str(rng.choice(["rect", "ellipse", "person", "vehicle"], p=[0.3, 0.2, 0.3, 0.2]))
        scale = rng.uniform(0.08, 0.22) * h
        p = {"cy": rng.uniform(horizon, h - 0.5 * scale), "cx": rng.uniform(0.08 * w, 0.92 * w),
             "hh": scale * (1.4 if kind == "person" else rng.uniform(0.6, 1.2)),
             "hw": scale * (0.5 if kind == "person" else rng.uniform(0.8, 1.8))}
        objects.append((p["cy"] + p["hh"], kind, p))
    for _, kind, p in sorted(objects, key=lambda o: o[0]):  # far (top) objects first
        mask = _object_mask(kind, p, yy, xx, 0.7)[..., None]
        mask_low = _object_mask(kind, p, lyy, lxx, 0.7 * h / lh)
        if rng.random() < 0.25:  # camouflage: colour close to the ground
            colour = np.clip(ground_col * rng.uniform(0.9, 1.4) + rng.normal(0, 0.04, 3), 0, 1)
        else:
            colour = rng.uniform(0.0, 1.0, 3)
        pattern = _pattern(str(rng.choice(["flat", "stripes", "checker", "noise"])), rng, yy, xx)[..., None]
        surface = np.clip(colour * (0.6 + 0.5 * pattern), 0, 1)
        vi = vi * (1 - mask) + surface * mask
        heat = rng.uniform(0.75, 1.0) if kind == "person" else rng.uniform(0.0, 1.0)
        gradient = 0.08 * (lyy - p["cy"]) / max(p["hh"], 1)  # smooth internal temperature variation
        ir = ir * (1 - mask_low) + np.clip(heat - gradient, 0, 1) * mask_low

    # visible: illumination, optical blur, noise
    vi = vi * rng.uniform(0.75, 1.1)
    vi = gaussian_filter(vi, sigma=(0.5, 0.5, 0)) + rng.normal(0, 0.008, vi.shape)
    # infrared: optics blur at low resolution, upsample to the visible size, sensor noise
    ir = gaussian_filter(ir, sigma=0.6)
    ir = np.asarray(Image.fromarray(ir.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC), dtype=np.float64)
    ir = ir + rng.normal(0, ir_noise, ir.shape) + rng.normal(0, ir_stripe_noise, (1, w))
    to8 = partial(np.clip, a_min=0, a_max=255)
    return (to8(np.round(ir * 255)).astype(np.uint8), to8(np.round(vi * 255)).astype(np.uint8))


def _scene_seed(seed: int, split: str, index: int) -> int:
    digest = hashlib.sha256(f"{seed}:{split}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def parse(root: object = None, train: int = DEFAULTS["train"], test: int = DEFAULTS["test"],
          height: int = DEFAULTS["height"], width: int = DEFAULTS["width"], ir_scale: int = DEFAULTS["ir_scale"],
          ir_noise: float = DEFAULTS["ir_noise"], ir_stripe_noise: float = DEFAULTS["ir_stripe_noise"],
          seed: int = DEFAULTS["seed"], tasks: dict[str, list[str]] | None = None, **_: object) -> ParsedSource:
    """Generate the demo: ``train`` and ``test`` scenes; images are produced lazily (and cached per scene).

    ``tasks`` optionally restricts the stage-1 tasks: ``{"visible": [...], "infrared": [...]}``.
    """
    vis_tasks = list((tasks or {}).get("visible", MODALITY_TASKS[VISIBLE]))
    ir_tasks = list((tasks or {}).get("infrared", MODALITY_TASKS[INFRARED]))
    params = {"train": train, "test": test, "height": height, "width": width, "ir_scale": ir_scale,
              "ir_noise": ir_noise, "ir_stripe_noise": ir_stripe_noise, "seed": seed,
              "visible": vis_tasks, "infrared": ir_tasks, "version": VERSION}
    out = ParsedSource(version=VERSION, fingerprint=hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest())
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def scene(s: int) -> tuple[np.ndarray, np.ndarray]:
        if s not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[s] = render_scene(s, height, width, ir_scale, ir_noise, ir_stripe_noise)
        return cache[s]

    def image(s: int, modality: int) -> np.ndarray:
        return scene(s)[0] if modality == INFRARED else scene(s)[1]

    def degraded(s: int, modality: int, task: str, task_seed: int) -> np.ndarray:
        return degrade(image(s, modality), task, task_seed)

    for split, count in (("train", train), ("test", test)):
        for i in range(int(count)):
            s = _scene_seed(seed, split, i)
            name = f"{split}/scene{i:05d}"
            out.add_fusion(split, FusionRecord(f"demo_{split}_{i:05d}", partial(image, s, INFRARED),
                                               partial(image, s, VISIBLE), "demo", name))
            for modality, task_list in ((VISIBLE, vis_tasks), (INFRARED, ir_tasks)):
                for task in task_list:
                    key = f"demo_{split}_{i:05d}_{'vi' if modality == VISIBLE else 'ir'}_{task}"
                    lq = partial(degraded, s, modality, task, (s + sum(map(ord, task)) * 7919) % 2**32)
                    out.add_stage1(split, Stage1Record(key, task, modality, lq, partial(image, s, modality), "demo", name))
    return out
