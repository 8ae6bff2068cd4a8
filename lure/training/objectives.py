"""The stage objectives as ``nn.Module``s, so DistributedDataParallel can wrap them whole.

Each ``forward`` returns ``(total_loss, {name: detached value})``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lure.models.lure_model import LURE, to_network_channels
from lure.text.vocabulary import TASK_CLASS
from lure.training.config import Stage1LossWeights, Stage2LossWeights
from lure.training.losses import color_loss, gradient_loss, l1_distance, range_loss, task_loss, unified_loss
from lure.training.perceptual import VGG16Features, perceptual_loss
from lure.training.source_similarity import (
    PERCEPTUAL_TERMS,
    latent_similarity_loss,
    max_intensity_loss,
    structure_similarity_loss,
)


def sample_detail_level(seed: int, step: int, endpoints: float) -> float:
    """The detail level of stage-2 step ``step``: 0 or 1 (half each) with probability ``endpoints``,
    else uniform in [0, 1]. A function of the seed and the step alone, so that a resumed run draws
    the same levels, and every rank of a distributed run the same one."""
    u, v = np.random.default_rng([seed, step, 0x6465]).random(2)
    return float(v < 0.5) if u < endpoints else float(v)


class Stage1Objective(nn.Module):
    """``L1 = L_task + a1 L_unified + a2 L_recon + a3 L_text`` with the weights of ``weights``
    (docs/paper-map.md#training), plus (ours) ``a_corr L_corr``, the L1 distance of the globally
    corrected inputs ``x'`` (and ``y'``) to ``y`` on the samples the global correction applies to.

    ``Z = E(x, c_t, m)``, ``Z_pd = E(y, c_pd, m)``, ``y_hat = D(Z)``, ``y_hat_pd = D(Z_pd)``.
    """

    def __init__(self, model: LURE, weights: Stage1LossWeights) -> None:
        super().__init__()
        self.model = model
        self.weights = weights

    def forward(self, lq: torch.Tensor, hq: torch.Tensor, modality: torch.Tensor, text_task: torch.Tensor,
                text_pd: torch.Tensor, task_class: torch.Tensor, lq_stats: torch.Tensor | None = None,
                hq_stats: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``lq_stats``/``hq_stats``: the whole images' statistics (for a model with a global
        correction; ``None``: read from the crops)."""
        model = self.model
        n = lq.shape[0]
        # x and y go through the encoder and decoder as one batch of 2B: the same result as two
        # passes (no layer mixes samples) at a better CPU/GPU efficiency than two batches of B.
        c_both = model.project_text(torch.cat([text_task, text_pd]))  # (2B, text_dim)
        images = torch.cat([to_network_channels(lq), to_network_channels(hq)])
        stats = None if lq_stats is None or hq_stats is None else torch.cat([lq_stats, hq_stats])
        latents = model.encode(images, c_both, torch.cat([modality, modality]), stats)
        restored = model.decode(latents)  # (2B, 3, H, W): y_hat, then y_hat_pd
        z, z_pd = [lat[:n] for lat in latents], [lat[n:] for lat in latents]
        w = self.weights
        l_task = task_loss(restored[:n], hq, w.task_gradient_weight)
        l_recon = l1_distance(restored[n:], hq)
        l_unified = unified_loss(z, z_pd, w.unified_measure)
        logits = model.classify_text(c_both)  # c_t rows, then c_pd rows
        pd_class = torch.full_like(task_class, TASK_CLASS["pd"])
        l_text = F.cross_entropy(logits.float(), torch.cat([task_class, pd_class]))
        total = l_task + w.unified_weight * l_unified + w.recon_weight * l_recon + w.text_weight * l_text
        parts = {"task": l_task, "unified": l_unified, "recon": l_recon, "text": l_text}
        if w.correction_weight > 0 and model.global_correction is not None:
            parts["correction"] = l_corr = self._correction_loss(images, c_both, torch.cat([modality, modality]),
                                                                 stats, to_network_channels(hq))
            total = total + w.correction_weight * l_corr
        return total, {k: v.detach() for k, v in parts.items()}

    def _correction_loss(self, images: torch.Tensor, text: torch.Tensor, modality: torch.Tensor,
                         stats: torch.Tensor | None, target: torch.Tensor) -> torch.Tensor:
        """``L_corr``: mean L1 of the corrected ``images`` (x, then y; ``(2B, C, H, W)``) to the clean
        ``target`` ``(B, C, H, W)``, over the samples of corrected modalities (0 when there are none)."""
        chosen = self.model.corrected_samples(modality)
        if not bool(chosen.any()):
            return images.new_zeros(())
        corrected = self.model.correct_input(images[chosen], text[chosen], modality[chosen],
                                             None if stats is None else stats[chosen])
        return l1_distance(corrected, torch.cat([target, target])[chosen])


class Stage2Objective(nn.Module):
    """``L2 = L_color + a1' L_grad + a2' L_per (+ a_int L_int + a_cons L_cons + a_range L_range)``.

    The paper encodes both clean inputs with ``c_pd``; degradation-aware batches (ours) encode
    degraded inputs with their task descriptions and compare the fusion with the clean sources,
    and ``consistency_weight`` adds ``L_cons``, the L1 distance to the fusion of the clean pair.

    ``weights.perceptual`` selects the U2Fusion-role term ``L_per``: ``vgg`` (needs ``vgg``),
    ``latent`` (the frozen encoder's latents), ``structure`` (image structure) or ``none``
    (:mod:`lure.training.source_similarity`); a positive ``intensity_weight`` adds the
    max-intensity term.
    """

    def __init__(self, model: LURE, weights: Stage2LossWeights, vgg: VGG16Features | None = None) -> None:
        super().__init__()
        perceptual = weights.perceptual
        if perceptual not in PERCEPTUAL_TERMS:
            raise ValueError(f"stage2.perceptual must be one of {PERCEPTUAL_TERMS}, got {perceptual!r}")
        if perceptual == "vgg" and weights.perceptual_weight > 0 and vgg is None:
            raise ValueError("perceptual_weight > 0 needs VGG16 features (stage2.vgg16_weights)")
        self.model = model
        self.weights = weights
        self.gradient_weight = weights.gradient_weight
        self.perceptual = perceptual if weights.perceptual_weight > 0 else "none"
        self.perceptual_weight = weights.perceptual_weight
        self.intensity_weight = weights.intensity_weight
        self.consistency_weight = weights.consistency_weight
        self.temperature = weights.perceptual_temperature
        self.vgg = vgg

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor, text_vi: torch.Tensor,
                text_ir: torch.Tensor, visible_clean: torch.Tensor | None = None,
                infrared_clean: torch.Tensor | None = None, text_vi_pd: torch.Tensor | None = None,
                text_ir_pd: torch.Tensor | None = None, stats_vi: torch.Tensor | None = None,
                stats_ir: torch.Tensor | None = None, stats_vi_clean: torch.Tensor | None = None,
                stats_ir_clean: torch.Tensor | None = None,
                detail: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of fusing ``visible``/``infrared`` (``(B, 3, H, W)`` in [0, 1]) described by
        ``text_vi``/``text_ir``. Degradation-aware batches also pass the clean crops (the loss
        targets) and their pseudo descriptions (the consistency term's reference fusion).
        ``stats_*``: whole-image statistics of the inputs and of the clean images (for a model with a
        global correction; ``None``: read from the crops). ``detail``: the batch's detail level in
        [0, 1] (a model with detail control; ``None``: none), read by the fusion module and
        setting the gradient term (:meth:`Stage2LossWeights.at_detail`)."""
        model = self.model
        gradient_weight, gain = (self.gradient_weight, 1.0) if detail is None else self.weights.at_detail(detail)
        target_vi = visible if visible_clean is None else visible_clean
        target_ir = infrared if infrared_clean is None else infrared_clean
        if self.perceptual == "latent":  # keep the source latents: the term compares against them
            c_vi, c_ir = model.project_text(text_vi), model.project_text(text_ir)
            z_vi, z_ir = model.encode(visible, c_vi, 0, stats_vi), model.encode(infrared, c_ir, 1, stats_ir)
            fused = model.decode(model.fuse_latents(z_vi, z_ir, detail))
            if visible_clean is not None:  # degraded batch: compare with the clean sources' latents,
                # and encode the (clean) fused image as a clean image, with the pseudo descriptions
                c_vi, c_ir = model.project_text(text_vi_pd), model.project_text(text_ir_pd)
                with torch.no_grad():
                    z_vi = model.encode(visible_clean, c_vi, 0, stats_vi_clean)
                    z_ir = model.encode(infrared_clean, c_ir, 1, stats_ir_clean)
        else:
            fused = model(visible, infrared, text_vi, text_ir, stats_visible=stats_vi, stats_infrared=stats_ir,
                          detail=detail)
        visible, infrared = target_vi, target_ir  # every term below compares with the clean sources
        l_color = color_loss(fused, visible)
        range_weight = self.weights.range_weight
        # with the range term, out-of-range values (clipped at output) earn no gradient credit
        l_grad = gradient_loss(fused.clamp(0, 1) if range_weight > 0 else fused, visible, infrared, gain)
        total = l_color + gradient_weight * l_grad
        parts = {"color": l_color, "grad": l_grad}
        if range_weight > 0:
            parts["range"] = range_loss(fused, visible, infrared, self.weights.range_band)
            total = total + range_weight * parts["range"]
        if self.intensity_weight > 0:
            parts["intensity"] = max_intensity_loss(fused, visible, infrared)
            total = total + self.intensity_weight * parts["intensity"]
        if self.consistency_weight > 0 and visible_clean is not None:
            with torch.no_grad():  # the current model's fusion of the clean pair is the reference
                reference = model(visible_clean, infrared_clean, text_vi_pd, text_ir_pd,
                                  stats_visible=stats_vi_clean, stats_infrared=stats_ir_clean, detail=detail)
            parts["consistency"] = l1_distance(fused, reference)
            total = total + self.consistency_weight * parts["consistency"]
        if self.perceptual != "none":
            extra = {} if self.temperature is None else {"temperature": self.temperature}
            if self.perceptual == "vgg":
                l_per = perceptual_loss(self.vgg, fused, visible, infrared, **extra)
            elif self.perceptual == "latent":
                def encode(image: torch.Tensor, modality: int) -> list[torch.Tensor]:
                    return model.encode(image, c_vi if modality == 0 else c_ir, modality)

                l_per = latent_similarity_loss(encode, fused, visible, infrared, source_latents=(z_vi, z_ir), **extra)
            else:
                l_per = structure_similarity_loss(fused, visible, infrared, **extra)
            total = total + self.perceptual_weight * l_per
            parts["perceptual"] = l_per
        return total, {k: v.detach() for k, v in parts.items()}


class CombinedObjective(nn.Module):
    """The objectives of one stage run as one module, so that one DistributedDataParallel wraps
    the model they share (the single-stage ablation trains restoration and fusion together).

    ``forward(inputs)`` takes ``{name: the objective's positional inputs}`` and returns the sum of
    the objectives' losses (in the order given at construction) and their merged parts. Stage 2 of
    the single-stage ablation has none: it only re-exports stage 1's model."""

    def __init__(self, objectives: dict[str, nn.Module]) -> None:
        super().__init__()
        self.objectives = nn.ModuleDict(objectives)

    def forward(self, inputs: dict[str, tuple]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total: torch.Tensor | None = None
        parts: dict[str, torch.Tensor] = {}
        for name, objective in self.objectives.items():
            loss, loss_parts = objective(*inputs[name])
            total = loss if total is None else total + loss
            parts.update(loss_parts)
        if total is None:
            raise RuntimeError("CombinedObjective without objectives has no loss")
        return total, parts
