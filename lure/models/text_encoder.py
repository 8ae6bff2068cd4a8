"""Text side of E_txt: a frozen pretrained sentence encoder and the trainable projection.

The frozen backbone (a BERT-family model loaded from a local Hugging Face folder, see
:func:`lure.text.sentence_encoder.load_sentence_encoder`) lives outside the LURE ``nn.Module`` so it
is never saved in checkpoints and never receives gradients. LURE owns only
``TextProjection`` (LayerNorm -> Linear to ``text_dim``) and the task classifier head.
"""

from __future__ import annotations

import torch
from torch import nn


class TextProjection(nn.Module):
    """Sentence embedding ``(B, backbone_dim)`` -> text feature ``c`` ``(B, text_dim)``."""

    def __init__(self, backbone_dim: int, text_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(backbone_dim)
        self.linear = nn.Linear(backbone_dim, text_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(embedding))


class SentenceEncoder(nn.Module):
    """Frozen transformer + mean pooling over tokens, with a cache of embedded texts.

    Call :meth:`embed` with a list of strings; returns ``(N, hidden)`` float32 on the
    module's device. Parameters have ``requires_grad=False`` and embedding runs under
    ``torch.no_grad``.
    """

    def __init__(self, model: nn.Module, tokenizer, max_length: int = 64) -> None:
        super().__init__()
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> SentenceEncoder:  # always frozen, always eval
        return super().train(False)

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            batch = self.tokenizer(missing, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(device)
            hidden = self.model(**batch).last_hidden_state  # (N, T, hidden)
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            for text, vector in zip(missing, pooled.float()):
                self._cache[text] = vector
        return torch.stack([self._cache[t] for t in texts]).to(device)

    def clear_cache(self) -> None:
        self._cache.clear()
