"""Inference runner: fuse (or restore) numpy images with a trained LURE checkpoint.

:class:`Fuser` is a pure runner (no argument parsing, no file I/O besides loading the
checkpoint and the frozen sentence encoder). Conventions:

* Inputs are numpy arrays: visible ``HxWx3`` RGB (``HxWx4`` loses its alpha) or ``HxW`` grey,
  uint8 (0-255) or uint16 (0-65535); infrared ``HxW`` (``HxWx1`` and the 3-channel grey of
  LLVIP accepted: the channels are averaged), uint8 or uint16. uint16 images are scaled by
  1/65535 (``ir_range="full"``); raw radiometric counts that use a small part of the 16-bit range
  can be stretched to their own min..max with ``ir_range="stretch"``.
* Outputs are uint8 with the visible image's size: ``HxWx3`` RGB for a colour visible image,
  ``HxW`` for a grey one.
* Colour (docs/paper-map.md#network): the network runs on RGB and its fused output's luminance Y (BT.601,
  :mod:`lure.color`) is kept; the chroma Cb/Cr comes from

  - the visible input when the visible task is ``pd`` (clean visible: its own colours are the
    most faithful, the standard IVIF practice), and
  - the network's fused RGB output when the visible image is degraded (``ll``, ``hz``, ``oe``):
    the raw chroma of a dark, hazy or clipped image is washed out, tinted by the airlight or
    noisy, while stage 2's colour loss trains the fused output's Cb/Cr to follow the clean
    visible chroma that the unified latent space represents. ``chroma="visible"`` or
    ``"network"`` forces one source.
* Texts: each modality gets the canonical text of its planned task
  (:func:`lure.text.canonical.canonical_text` of ``prompt_key(task, modality)``, the first seed
  sentence, which is also the text used by training-time validation); ``pd`` when clean.
* Large images run in overlapping tiles blended with a raised-cosine (Hann) ramp
  (:class:`TilingConfig`; on by default above ``min_pixels``). LURE's channel attention
  (Restormer-style) and NAFNet's simplified channel attention pool over the whole input, so a
  tile never reproduces the untiled output exactly; the defaults (768 px tiles, 256 px overlap,
  ramps over the whole overlap) keep the difference within 2/255 on 1280x1024 LLVIP pairs (see
  ``tests/test_inference.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from lure.checkpoint import load_model
from lure.color import luminance
from lure.image_io import infrared_tensor, to_uint8, visible_tensor, with_chroma
from lure.models.lure_model import LURE
from lure.models.text_encoder import SentenceEncoder
from lure.paths import REPO_ROOT
from lure.text.canonical import canonical_text
from lure.text.vocabulary import INFRARED, MODALITY_NAMES, VISIBLE, TaskPlan, check_task, prompt_key

__all__ = [
    "CHROMA_SOURCES",
    "DEFAULT_CHECKPOINT",
    "Fuser",
    "MissingCheckpointError",
    "TilingConfig",
    "blend_ramp",
    "default_device",
    "run_tiled",
    "tile_starts",
]

#: The final fusion model written by the training pipeline (``dvc repro`` / ``make demo``).
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "stage2" / "model.pt"
CHROMA_SOURCES = ("auto", "visible", "network")


class MissingCheckpointError(FileNotFoundError):
    """No checkpoint at the given (or default) path; the message says how to produce one."""


def default_device() -> torch.device:
    """The first visible CUDA GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class TilingConfig:
    """Tiled inference settings.

    ``mode``: ``"auto"`` (tile when the image has more than ``min_pixels`` pixels), ``"on"`` or
    ``"off"``. ``tile``: tile side in pixels (rounded up to the model's size multiple);
    ``overlap``: minimum overlap of neighbouring tiles in pixels, blended with a raised-cosine
    ramp of that length.
    """

    mode: str = "auto"
    tile: int = 768
    overlap: int = 256
    min_pixels: int = 1024 * 1024

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "on", "off"):
            raise ValueError(f"tiling mode must be auto, on or off, got {self.mode!r}")
        if self.tile < 16 or not 0 <= self.overlap < self.tile:
            raise ValueError(
                f"tiling needs tile >= 16 and 0 <= overlap < tile, got tile={self.tile}, "
                f"overlap={self.overlap}"
            )
        if self.min_pixels < 0:
            raise ValueError(f"tiling min_pixels must be >= 0, got {self.min_pixels}")

    def active(self, height: int, width: int) -> bool:
        """Whether an ``height x width`` image is processed in tiles."""
        if self.mode == "auto":
            return height * width > self.min_pixels and (height > self.tile or width > self.tile)
        return self.mode == "on"

    @classmethod
    def from_dict(cls, data: dict | None) -> TilingConfig:
        """From a params section such as ``{"mode": "auto", "tile": 768, "overlap": 256}``."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"mode", "tile", "overlap", "min_pixels"})
        if unknown:
            raise ValueError(f"unknown tiling parameter(s) {unknown}; known: mode, tile, overlap, min_pixels")
        return cls(**data)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with neighbours
    overlapping by at least ``overlap`` pixels (evenly spread; ``[0]`` when one tile fits)."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def blend_ramp(start: int, size: int, length: int, ramp: int) -> torch.Tensor:
    """1-D blending weight ``(size,)`` of a tile at ``start``: a raised-cosine rise over ``ramp``
    pixels at each side that borders another tile (not at the image border), 1 elsewhere.
    Weights stay strictly positive so every pixel has a defined weighted mean."""
    weight = torch.ones(size, dtype=torch.float64)
    ramp = min(ramp, size // 2)
    if ramp > 0:
        rise = 0.5 - 0.5 * torch.cos(math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp)
        if start > 0:
            weight[:ramp] = rise
        if start + size < length:
            weight[size - ramp :] = rise.flip(0)
    return weight


def run_tiled(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    tile: int,
    overlap: int,
    progress: bool = False,
) -> torch.Tensor:
    """Apply ``fn`` (``(B, C_i, h, w)`` tensors -> ``(B, C_out, h, w)``) on overlapping tiles of the
    equally sized ``inputs`` and blend the results with raised-cosine weights. The result has the
    inputs' height and width (float32, on the inputs' device)."""
    height, width = inputs[0].shape[-2:]
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    out: torch.Tensor | None = None
    total = torch.zeros(1, 1, height, width, dtype=torch.float32, device=inputs[0].device)
    positions = [(r, c) for r in rows for c in cols]
    iterator = positions
    if progress and len(positions) > 1:
        from tqdm import tqdm

        iterator = tqdm(positions, desc="tiles", unit="tile", leave=False)
    for r, c in iterator:
        result = fn(*[x[..., r : r + th, c : c + tw] for x in inputs]).float()
        weight = blend_ramp(r, th, height, overlap)[:, None] * blend_ramp(c, tw, width, overlap)[None, :]
        weight = weight.to(device=result.device, dtype=torch.float32)[None, None]
        if out is None:
            out = torch.zeros(
                result.shape[0], result.shape[1], height, width, dtype=torch.float32, device=result.device
            )
        out[..., r : r + th, c : c + tw] += result * weight
        total[..., r : r + th, c : c + tw] += weight
    assert out is not None
    return out / total


# ----------------------------------------------------------------------------- the runner
class Fuser:
    """Degradation-aware fusion and stage-1 restoration with a trained LURE network.

    Build it with :meth:`from_checkpoint`; call :meth:`fuse` (uint8 fused image),
    :meth:`restore` (uint8 restored image) or the tensor-level :meth:`fuse_tensor`. Everything
    runs under ``torch.inference_mode`` on ``device`` (GPU when visible, else CPU).
    """

    def __init__(
        self,
        model: LURE,
        encoder: SentenceEncoder,
        device: str | torch.device | None = None,
        tiling: TilingConfig | None = None,
        profile: str | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device).eval()
        self.encoder = encoder.to(self.device)
        self.tiling = tiling or TilingConfig()
        self.profile = profile
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._text_cache: dict[tuple[str, int], torch.Tensor] = {}

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        text_backbone: str | os.PathLike | None = None,
        tiling: TilingConfig | None = None,
        encoder: SentenceEncoder | None = None,
    ) -> Fuser:
        """Load a checkpoint (default :data:`DEFAULT_CHECKPOINT`) and the frozen sentence encoder
        (``text_backbone``: ``None`` = the packaged all-MiniLM-L6-v2, or a local HF folder; an
        already loaded ``encoder`` can be passed instead)."""
        path = Path(path) if path is not None else DEFAULT_CHECKPOINT
        if not path.is_file():
            hint = (
                "produce it with `make demo` (or `dvc repro`), or pass --checkpoint PATH"
                if path == DEFAULT_CHECKPOINT
                else "check the path"
            )
            raise MissingCheckpointError(f"checkpoint {path} not found: {hint}")
        device = torch.device(device) if device is not None else default_device()
        model, payload = load_model(path, map_location="cpu")
        if encoder is None:
            from lure.text.sentence_encoder import load_sentence_encoder

            encoder = load_sentence_encoder(text_backbone, device=str(device))
        if encoder.hidden_size != model.config.text_backbone_dim:
            raise ValueError(
                f"text encoder width {encoder.hidden_size} does not match the checkpoint's "
                f"text_backbone_dim {model.config.text_backbone_dim}: use the backbone it was "
                "trained with (text_encoder.backbone in params.yaml)"
            )
        return cls(
            model, encoder, device=device, tiling=tiling, profile=payload.get("profile"), checkpoint=path
        )

    # -- texts ---------------------------------------------------------------------------
    def text_embedding(self, task: str, modality: int) -> torch.Tensor:
        """Sentence embedding ``(1, D)`` of the canonical text of ``task`` on ``modality``."""
        check_task(task, modality)
        key = (task, modality)
        if key not in self._text_cache:
            self._text_cache[key] = self.encoder.embed([canonical_text(prompt_key(task, modality))]).to(
                self.device
            )
        return self._text_cache[key]

    @staticmethod
    def resolve_plan(
        plan: TaskPlan | None = None, vi_task: str | None = None, ir_task: str | None = None
    ) -> TaskPlan:
        """``plan`` (default: both clean) with ``vi_task``/``ir_task`` overriding its fields."""
        plan = plan or TaskPlan()
        return TaskPlan(visible=vi_task or plan.visible, infrared=ir_task or plan.infrared, detail=plan.detail)

    def _tiling(self, tile: str | TilingConfig | None) -> TilingConfig:
        if tile is None:
            return self.tiling
        if isinstance(tile, TilingConfig):
            return tile
        return replace(self.tiling, mode=tile)

    def _run(
        self,
        fn: Callable[..., torch.Tensor],
        inputs: list[torch.Tensor],
        tiling: TilingConfig,
        progress: bool,
    ) -> torch.Tensor:
        height, width = inputs[0].shape[-2:]
        if tiling.active(height, width):
            multiple = self.model.config.size_multiple
            tile = int(math.ceil(tiling.tile / multiple) * multiple)
            return run_tiled(fn, inputs, tile, tiling.overlap, progress=progress)
        return fn(*inputs).float()

    # -- fusion --------------------------------------------------------------------------
    @property
    def has_detail_control(self) -> bool:
        """Whether the model reads a detail level (trained with ``model.detail_control``)."""
        return self.model.detail_conditioning is not None

    @property
    def detail_default(self) -> float | None:
        """The detail level used when none is asked for (``None``: the model has no detail control)."""
        return self.model.config.detail_default if self.has_detail_control else None

    def check_detail(self, detail: float | None) -> float | None:
        """``detail`` when this model can use it; a one-line ``ValueError`` otherwise (out of [0, 1],
        or a model trained without the detail control)."""
        if detail is None:
            return None
        if not 0.0 <= float(detail) <= 1.0:
            raise ValueError(f"--detail {detail}: the detail level must lie in [0, 1] (0 faithful, 1 crisp)")
        if not self.has_detail_control:
            name = self.checkpoint.name if self.checkpoint is not None else "this checkpoint"
            raise ValueError(f"{name} has no detail control (trained without model.detail_control): "
                             "leave out --detail and detail words, or use the shipped lure-real weights")
        return float(detail)

    @torch.inference_mode()
    def fuse_tensor(
        self,
        visible: torch.Tensor,
        infrared: torch.Tensor,
        plan: TaskPlan | None = None,
        rule_only: bool = False,
        tile: str | TilingConfig | None = None,
        progress: bool = False,
        detail: float | None = None,
    ) -> torch.Tensor:
        """Raw network output ``(1, 3, H, W)`` float (clamped to [0, 1]) of a visible ``(1, 1|3, H, W)``
        and an infrared ``(1, 1, H, W)`` tensor in [0, 1]. ``rule_only``: DenseFuse l1 rule on the
        latents instead of the learned fusion. ``detail``: 0 (faithful) .. 1 (crisp), overriding
        ``plan.detail``; ``None`` for both: the model's default (:attr:`detail_default`)."""
        plan = plan or TaskPlan()
        detail = self.check_detail(plan.detail if detail is None else detail)
        if visible.shape[-2:] != infrared.shape[-2:]:
            raise ValueError(
                f"infrared {tuple(infrared.shape[-2:])} and visible {tuple(visible.shape[-2:])} "
                "images must have the same height and width (register/resize them first)"
            )
        t_vi = self.text_embedding(plan.visible, VISIBLE)
        t_ir = self.text_embedding(plan.infrared, INFRARED)

        inputs = [visible.to(self.device, torch.float32), infrared.to(self.device, torch.float32)]
        # whole-image statistics before tiling: every tile is corrected as its image is
        s_vi, s_ir = self.model.image_statistics(inputs[0], VISIBLE), self.model.image_statistics(inputs[1], INFRARED)

        def forward(vi: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
            return self.model(vi, ir, t_vi, t_ir, rule_only=rule_only, stats_visible=s_vi, stats_infrared=s_ir,
                              detail=None if rule_only else detail)

        return self._run(forward, inputs, self._tiling(tile), progress).clamp(0, 1)

    def fuse(
        self,
        ir: np.ndarray,
        vi: np.ndarray,
        plan: TaskPlan | None = None,
        vi_task: str | None = None,
        ir_task: str | None = None,
        rule_only: bool = False,
        chroma: str = "auto",
        tile: str | TilingConfig | None = None,
        ir_range: str = "full",
        progress: bool = False,
        detail: float | None = None,
    ) -> np.ndarray:
        """Fused uint8 image of an infrared and a visible array of the same height and width.

        ``plan`` (a :class:`~lure.text.parser.TaskPlan`, default both ``pd``) names each
        modality's degradation; ``vi_task``/``ir_task`` override it. ``chroma``: ``auto``
        (visible Cb/Cr when the visible task is ``pd``, the network's otherwise), ``visible`` or
        ``network``. ``tile``: ``auto``/``on``/``off`` or a :class:`TilingConfig` (default: the
        runner's). ``detail``: 0 (faithful) .. 1 (crisp), overriding ``plan.detail`` (``None``:
        the model's default). Returns ``HxWx3`` RGB, or ``HxW`` when ``vi`` is grey.
        """
        if chroma not in CHROMA_SOURCES:
            raise ValueError(f"chroma must be one of {CHROMA_SOURCES}, got {chroma!r}")
        plan = self.resolve_plan(plan, vi_task, ir_task)
        vi_t, ir_t = visible_tensor(vi), infrared_tensor(ir, ir_range)
        if vi_t.shape[-2:] != ir_t.shape[-2:]:
            raise ValueError(
                f"infrared image is {ir_t.shape[-1]}x{ir_t.shape[-2]} but visible image is "
                f"{vi_t.shape[-1]}x{vi_t.shape[-2]} (WxH): the pair must be registered to the same size"
            )
        fused = self.fuse_tensor(vi_t, ir_t, plan, rule_only=rule_only, tile=tile, progress=progress, detail=detail)
        return to_uint8(self.compose_colour(fused, vi_t.to(fused.device), plan.visible, chroma))

    @staticmethod
    def compose_colour(
        fused_rgb: torch.Tensor, visible: torch.Tensor, visible_task: str = "pd", chroma: str = "auto"
    ) -> torch.Tensor:
        """Final image ``(1, 3|1, H, W)``: the fused luminance with the chosen chroma (see the
        module docstring); one channel (the fused Y) when ``visible`` is grey."""
        y = luminance(fused_rgb)
        if visible.shape[1] == 1:
            return y.clamp(0, 1)
        source = chroma if chroma != "auto" else ("visible" if visible_task == "pd" else "network")
        return with_chroma(y, visible if source == "visible" else fused_rgb)

    # -- restoration ---------------------------------------------------------------------
    @torch.inference_mode()
    def restore(
        self,
        image: np.ndarray,
        task: str,
        modality: int,
        tile: str | TilingConfig | None = None,
        ir_range: str = "full",
        progress: bool = False,
    ) -> np.ndarray:
        """Stage-1 restoration ``D(E_img(x, c_task, m))`` of one image.

        ``modality`` 0 (visible: ``HxWx3`` in, ``HxWx3`` RGB out; a grey input gives ``HxW``) or
        1 (infrared: ``HxW`` in, the luminance of the decoded image ``HxW`` out); uint8 result.
        """
        check_task(task, modality)
        if modality == VISIBLE:
            x = visible_tensor(image)
        elif modality == INFRARED:
            x = infrared_tensor(image, ir_range)
        else:  # pragma: no cover - check_task rejects it
            raise ValueError(f"modality must be one of {sorted(MODALITY_NAMES)}")
        text = self.text_embedding(task, modality)

        x = x.to(self.device)
        stats = self.model.image_statistics(x, modality)  # of the whole image, before tiling

        def forward(img: torch.Tensor) -> torch.Tensor:
            return self.model.restore(img, text, modality, stats)

        out = self._run(forward, [x], self._tiling(tile), progress).clamp(0, 1)
        if modality == INFRARED or x.shape[1] == 1:
            out = luminance(out)
        return to_uint8(out)
