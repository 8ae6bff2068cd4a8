"""Validation measured during training: restoration (stage 1) and fusion (stage 2)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from lure.color import luminance
from lure.image_io import luminance_uint8, to_tensor
from lure.models.lure_model import LURE, crop_to, pad_to_multiple
from lure.text.bank import TextBank
from lure.text.vocabulary import INFRARED
from lure.training.losses import latent_similarity

GRADIENT_METRICS = ("AG", "SF", "SD", "EN", "Qabf")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] images (values clamped)."""
    mse = float((a.clamp(0, 1) - b.clamp(0, 1)).pow(2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@torch.no_grad()
def stage1_validation(model: LURE, samples: list[dict], bank: TextBank, device: torch.device) -> dict[str, float]:
    """Per task: PSNR of the restored image and of the degraded input against the clean target
    (dB), and the mean cosine similarity of ``Z(x, c_t)`` and ``Z(y, c_pd)`` over all samples.
    An infrared restoration is scored as :meth:`lure.inference.Fuser.restore` returns it: the
    luminance of the decoded RGB (the target is grey, repeated to 3 channels)."""
    model.eval()
    scores: dict[str, list[float]] = defaultdict(list)
    cosines = []
    for sample in samples:
        task, modality = sample["task"], int(sample["modality"])
        lq, hq = to_tensor(sample["lq"]).to(device), to_tensor(sample["hq"]).to(device)
        text_t, text_pd = bank.first(task, modality).to(device), bank.first("pd", modality).to(device)
        lq_p, size = pad_to_multiple(lq, model.config.size_multiple)
        hq_p, _ = pad_to_multiple(hq, model.config.size_multiple)
        z = model.encode(lq_p, model.project_text(text_t), modality, model.image_statistics(lq, modality))
        z_pd = model.encode(hq_p, model.project_text(text_pd), modality, model.image_statistics(hq, modality))
        cosines.append(float(latent_similarity(z, z_pd, "cosine")))
        restored = crop_to(model.decode(z), size)  # = model.restore(lq, text_t, modality), reusing z
        if modality == INFRARED:
            restored = luminance(restored).expand_as(restored)
        scores[f"psnr_{task}"].append(psnr(restored, hq))
        scores[f"psnr_input_{task}"].append(psnr(lq, hq))
    metrics = {k: float(np.mean(v)) for k, v in sorted(scores.items())}
    metrics["latent_cosine"] = float(np.mean(cosines)) if cosines else float("nan")
    gains = [metrics[f"psnr_{t}"] - metrics[f"psnr_input_{t}"] for t in sorted({s["task"] for s in samples}) if t != "pd"]
    if gains:
        metrics["psnr_gain_mean"] = float(np.mean(gains))
    return metrics


@torch.no_grad()
def stage2_validation(model: LURE, pairs: list[tuple[str, np.ndarray, np.ndarray]], bank: TextBank,
                      device: torch.device) -> dict[str, float]:
    """Reference fusion metrics (docs/paper-map.md#evaluation) of the learned fusion and of the rule-only
    output (zero conv at its initial value), means over the pairs: ``fused_<M>``, ``rule_<M>``."""
    from lure.metrics import fusion_metrics, rgb2gray_matlab

    model.eval()
    scores: dict[str, list[float]] = defaultdict(list)
    t_vi, t_ir = bank.first("pd", 0).to(device), bank.first("pd", 1).to(device)
    for _key, ir, vi in pairs:
        vi_t, ir_t = to_tensor(vi).to(device), to_tensor(ir, channels=1).to(device)
        vi_grey = rgb2gray_matlab(vi) if vi.ndim == 3 else vi
        ir_grey = ir if ir.ndim == 2 else rgb2gray_matlab(ir)
        for name, rule_only in (("fused", False), ("rule", True)):
            out = model(vi_t, ir_t, t_vi, t_ir, rule_only=rule_only)
            for metric, value in fusion_metrics(luminance_uint8(out), ir_grey, vi_grey).items():
                scores[f"{name}_{metric}"].append(value)
    return {k: float(np.mean(v)) for k, v in sorted(scores.items())}
