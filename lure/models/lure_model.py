"""The complete LURE network: text projection, image encoder, decoder and fusion module."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lure.models.config import MODALITIES, LUREConfig
from lure.models.decoder import Decoder
from lure.models.detail import DetailConditioning, detail_tensor
from lure.models.encoder import ImageEncoder
from lure.models.fusion import FusionModule
from lure.models.global_correction import GlobalAffineCorrection, image_statistics
from lure.models.text_encoder import TextProjection

STAGES = ("stage1", "stage2", "joint")


def to_network_channels(image: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Repeat a single-channel image ``(B, 1, H, W)`` to ``channels``; pass others through."""
    if image.shape[1] == channels:
        return image
    if image.shape[1] == 1:
        return image.expand(-1, channels, -1, -1)
    raise ValueError(f"expected 1 or {channels} image channels, got shape {tuple(image.shape)}")


def pad_to_multiple(image: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad H and W up to a multiple of ``multiple``; returns the padded image and the
    original ``(H, W)`` for :func:`crop_to`. Sizes below 2 pixels fall back to replicate padding."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if h > ph and w > pw else "replicate"
        image = F.pad(image, (0, pw, 0, ph), mode=mode)
    return image, (h, w)


def crop_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return image[..., : size[0], : size[1]]


class LURE(nn.Module):
    """LURE (Ma et al.). Images are ``(B, C, H, W)`` float in [0,1] with C = 1 or 3 (one-channel
    inputs are repeated to 3); any H, W (padded internally to ``config.size_multiple`` and cropped
    back). Text inputs are frozen sentence embeddings ``(B, text_backbone_dim)``; modality ids are
    0 (visible) and 1 (infrared).

    * :meth:`encode` — ``E_img(x, c, m)`` -> list of latents (finest first);
    * :meth:`decode` — ``D(Z)`` -> image;
    * :meth:`fuse_latents` — per-scale fusion module;
    * :meth:`restore` — stage-1 restoration ``D(E_img(x, c, m))``;
    * :meth:`forward` — fusion ``D(fuse(E_img(x_vi, c_vi, 0), E_img(x_ir, c_ir, 1)))``.

    With ``config.detail_control`` the fusion also reads a detail level ``d`` in [0, 1] per image
    (0 faithful, 1 crisp; ``config.detail_default`` when none is given).
    """

    def __init__(self, config: LUREConfig) -> None:
        super().__init__()
        self.config = config
        self.text_projection = TextProjection(config.text_backbone_dim, config.text_dim)
        self.task_classifier = nn.Linear(config.text_dim, config.num_tasks)
        self.encoder = ImageEncoder(config)
        self.decoder = Decoder(config)
        self.fusion = FusionModule(config)
        # built last: with it switched on, every other module starts from the same weights
        self.global_correction = (
            GlobalAffineCorrection(config.image_channels, config.text_dim,
                                   with_log_spread=config.global_correction_log_spread)
            if config.global_correction else None)
        # after everything else, for the same reason: a model without it initialises as before
        self.detail_conditioning = (DetailConditioning(config.latent_channels)
                                    if config.detail_control else None)

    # -- building blocks ---------------------------------------------------------------
    def project_text(self, embedding: torch.Tensor) -> torch.Tensor:
        """Sentence embedding -> text feature ``c`` ``(B, text_dim)``."""
        return self.text_projection(embedding)

    def classify_text(self, text_feature: torch.Tensor) -> torch.Tensor:
        """Task logits ``(B, num_tasks)`` from a text feature (for ``L_text``)."""
        return self.task_classifier(text_feature)

    def corrects(self, modality: int) -> bool:
        """Whether the global correction applies to images of ``modality`` (0 visible, 1 infrared)."""
        return (self.global_correction is not None
                and MODALITIES[modality] in self.config.global_correction_modalities)

    def image_statistics(self, image: torch.Tensor, modality: int | None = None) -> torch.Tensor | None:
        """Whole-image statistics for :meth:`encode`: compute them on the whole, unpadded image
        before cropping or tiling it. ``None`` when the model has no global correction, or when
        it does not correct ``modality`` (0 visible, 1 infrared; ``None``: any modality)."""
        if self.global_correction is None or (modality is not None and not self.corrects(modality)):
            return None
        return image_statistics(image, self.config.image_channels)

    def encode(self, image: torch.Tensor, text_feature: torch.Tensor,
               modality: torch.Tensor | int, stats: torch.Tensor | None = None) -> list[torch.Tensor]:
        """``E_img``; ``image`` H, W must be multiples of ``config.size_multiple``. ``stats``: the
        :meth:`image_statistics` of the whole image ``image`` was cut from (``None``: of ``image``
        itself); used only by a model with ``config.global_correction``, on the images of the
        modalities in ``config.global_correction_modalities``."""
        image = to_network_channels(image, self.config.image_channels)
        batch_modality = self._modality_tensor(modality, image)
        if self.global_correction is not None and (not isinstance(modality, int) or self.corrects(modality)):
            image = self.correct_input(image, text_feature, batch_modality, stats)
        return self.encoder(image, text_feature, batch_modality)

    def corrected_samples(self, modality: torch.Tensor) -> torch.Tensor:
        """Boolean ``(B,)``: which samples of a batch with modality ids ``modality`` the global
        correction applies to (all ``False`` without one)."""
        if self.global_correction is None:
            return torch.zeros_like(modality, dtype=torch.bool)
        ids = [MODALITIES.index(m) for m in self.config.global_correction_modalities]
        return torch.isin(modality, torch.tensor(ids, device=modality.device))

    def correct_input(self, image: torch.Tensor, text_feature: torch.Tensor, modality: torch.Tensor,
                      stats: torch.Tensor | None) -> torch.Tensor:
        """The global correction of the samples of corrected modalities, the others unchanged.
        ``image`` ``(B, image_channels, H, W)``; ``stats`` of the whole images (``None``: of ``image``).
        Needs a model with ``config.global_correction``."""
        stats = image_statistics(image) if stats is None else stats.to(image.device)
        corrected = self.global_correction(image, stats, text_feature)
        if len(self.config.global_correction_modalities) < len(MODALITIES):  # per sample
            corrected = torch.where(self.corrected_samples(modality)[:, None, None, None], corrected, image)
        return corrected

    def decode(self, latents: list[torch.Tensor]) -> torch.Tensor:
        return self.decoder(latents)

    def fuse_latents(self, latents_vi: list[torch.Tensor], latents_ir: list[torch.Tensor],
                     detail: torch.Tensor | float | None = None) -> list[torch.Tensor]:
        """The fusion module on the two latents. ``detail``: one level in [0, 1] or one per image
        (``None``: ``config.detail_default``); refused by a model without ``config.detail_control``."""
        if self.detail_conditioning is None:
            if detail is not None:
                raise ValueError("this model has no detail control (trained without model.detail_control)")
            return self.fusion(latents_vi, latents_ir)
        z = latents_vi[0]
        d = detail_tensor(self.config.detail_default if detail is None else detail, z.shape[0], z.device)
        return self.fusion(latents_vi, latents_ir, self.detail_conditioning(d))

    # -- whole passes on arbitrary sizes -----------------------------------------------
    def restore(self, image: torch.Tensor, text_embedding: torch.Tensor, modality: torch.Tensor | int,
                stats: torch.Tensor | None = None) -> torch.Tensor:
        """Stage-1 pass ``D(E_img(x, c, m))`` on an image of any size; output has the input's size.
        ``stats``: of the whole image when ``image`` is a tile of it (see :meth:`encode`)."""
        if stats is None:
            stats = self.image_statistics(image, modality if isinstance(modality, int) else None)
        padded, size = pad_to_multiple(image, self.config.size_multiple)
        latents = self.encode(padded, self.project_text(text_embedding), modality, stats)
        return crop_to(self.decode(latents), size)

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor, text_visible: torch.Tensor,
                text_infrared: torch.Tensor, rule_only: bool = False, stats_visible: torch.Tensor | None = None,
                stats_infrared: torch.Tensor | None = None,
                detail: torch.Tensor | float | None = None) -> torch.Tensor:
        """Fused image ``(B, 3, H, W)`` from a visible and an infrared image of equal size.

        ``rule_only=True`` decodes the prior-rule fusion without the learned branch. ``detail``: see
        :meth:`fuse_latents`.
        ``stats_visible``/``stats_infrared``: of the whole images when these are tiles or crops."""
        if visible.shape[-2:] != infrared.shape[-2:]:
            raise ValueError(f"visible {tuple(visible.shape[-2:])} and infrared {tuple(infrared.shape[-2:])} "
                             "images must have the same height and width")
        if stats_visible is None:
            stats_visible = self.image_statistics(visible, 0)
        if stats_infrared is None:
            stats_infrared = self.image_statistics(infrared, 1)
        vi, size = pad_to_multiple(visible, self.config.size_multiple)
        ir, _ = pad_to_multiple(infrared, self.config.size_multiple)
        z_vi = self.encode(vi, self.project_text(text_visible), 0, stats_visible)
        z_ir = self.encode(ir, self.project_text(text_infrared), 1, stats_infrared)
        fused = self.fusion.rule_only(z_vi, z_ir) if rule_only else self.fuse_latents(z_vi, z_ir, detail)
        return crop_to(self.decode(fused), size)

    # -- training modes ----------------------------------------------------------------
    def set_stage(self, stage: str) -> None:
        """Select what trains: ``stage1`` (all but fusion), ``stage2`` (fusion and its detail
        conditioning only; encoders, text projection and decoder frozen) or ``joint`` (everything;
        ablation "single stage")."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.requires_grad_(stage != "stage2")
        fusion_parts = [m for m in (self.fusion, self.detail_conditioning) if m is not None]
        for part in fusion_parts:
            part.requires_grad_(stage != "stage1")

    def part_parameters(self) -> dict[str, int]:
        """Parameter counts per part."""
        parts = {
            "text_projection": [self.text_projection, self.task_classifier],
            "encoder": [self.encoder], "decoder": [self.decoder], "fusion": [self.fusion],
        }
        if self.detail_conditioning is not None:
            parts["detail_conditioning"] = [self.detail_conditioning]
        if self.global_correction is not None:
            parts["global_correction"] = [self.global_correction]
        counts = {k: sum(p.numel() for m in mods for p in m.parameters()) for k, mods in parts.items()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts

    @staticmethod
    def _modality_tensor(modality: torch.Tensor | int, image: torch.Tensor) -> torch.Tensor:
        if isinstance(modality, int):
            return torch.full((image.shape[0],), modality, dtype=torch.long, device=image.device)
        return modality.to(device=image.device, dtype=torch.long)
