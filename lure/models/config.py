"""Architecture hyper-parameters of a LURE network (one named profile in params.yaml)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

TEXT_BLOCKS = ("tga", "gate")
FUSION_RULES = ("l1", "l1_softmax", "add", "avg", "none")
#: Modality names in the order of their ids (0 visible, 1 infrared).
MODALITIES = ("visible", "infrared")


@dataclass(frozen=True)
class LUREConfig:
    """Sizes and ablation switches. Per-level tuples run from the finest scale to the coarsest.

    Paper values (Sec. 4.1): widths 48/96/192/384, latents 16/32/64/128, ``base_blocks``
    (K_bt) 1/1/2/2, ``branch_blocks`` (K_tb) 2/2/4/8, decoder 1/1/1/1, fusion 1/1/2/2, 4 heads.
    """

    widths: tuple[int, ...] = (48, 96, 192, 384)
    latent_channels: tuple[int, ...] = (16, 32, 64, 128)
    base_blocks: tuple[int, ...] = (1, 1, 2, 2)
    branch_blocks: tuple[int, ...] = (2, 2, 4, 8)
    decoder_blocks: tuple[int, ...] = (1, 1, 1, 1)
    fusion_blocks: tuple[int, ...] = (1, 1, 2, 2)
    heads: int = 4
    image_channels: int = 3
    text_backbone_dim: int = 384
    text_dim: int = 256
    num_tasks: int = 7
    ffn_expansion: float = 2.66
    # ablation switches (paper Table 6)
    text_block: str = "tga"  # "tga" | "gate"
    inner_residual: bool = True
    fusion_rule: str = "l1"  # "l1" (DenseFuse) | "l1_softmax" | "add" | "avg" | "none"
    l1_window: int = 3
    # ours: whole-image statistics + text -> per-channel gain/shift of the input (global_correction.py),
    # applied to the images of the listed modalities
    global_correction: bool = False
    global_correction_modalities: tuple[str, ...] = MODALITIES
    # the correction's MLP also reads log(std) and log(1-99 % range) of each channel
    global_correction_log_spread: bool = False
    # ours: the fusion module reads a detail level d in [0, 1] (0 faithful, 1 crisp; models/detail.py),
    # trained loss-conditionally in stage 2; ``detail_default`` is the level used when none is given
    detail_control: bool = False
    detail_default: float = 0.0

    def __post_init__(self) -> None:
        levels = len(self.widths)
        for f in ("latent_channels", "base_blocks", "branch_blocks", "decoder_blocks", "fusion_blocks"):
            if len(getattr(self, f)) != levels:
                raise ValueError(f"model.{f} needs {levels} entries (one per level), got {getattr(self, f)}")
        if self.text_block not in TEXT_BLOCKS:
            raise ValueError(f"model.text_block must be one of {TEXT_BLOCKS}, got {self.text_block!r}")
        if self.fusion_rule not in FUSION_RULES:
            raise ValueError(f"model.fusion_rule must be one of {FUSION_RULES}, got {self.fusion_rule!r}")
        for name in ("widths", "latent_channels"):
            bad = [c for c in getattr(self, name) if c % self.heads]
            if bad:
                raise ValueError(f"model.{name} {bad} must be divisible by model.heads={self.heads}")
        unknown = [m for m in self.global_correction_modalities if m not in MODALITIES]
        if unknown or not self.global_correction_modalities:
            raise ValueError(f"model.global_correction_modalities must list some of {MODALITIES}, "
                             f"got {list(self.global_correction_modalities)}")
        if self.global_correction_log_spread and not self.global_correction:
            raise ValueError("model.global_correction_log_spread needs model.global_correction: true")
        if not 0.0 <= self.detail_default <= 1.0:
            raise ValueError(f"model.detail_default must lie in [0, 1], got {self.detail_default}")
        if min(self.base_blocks) < 1 or min(self.branch_blocks) < 1:
            raise ValueError("model.base_blocks and model.branch_blocks need at least 1 block per level")

    @property
    def levels(self) -> int:
        return len(self.widths)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (inputs are padded to it)."""
        return 2 ** (self.levels - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LUREConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
