"""Frozen sentence embeddings of the task texts, sampled per training example."""

from __future__ import annotations

import torch

from lure.models.text_encoder import SentenceEncoder
from lure.text.vocabulary import prompt_key


class TextBank:
    """Embeds every text of every prompt key once (the backbone is frozen, so this is exact)
    and samples one embedding per example. ``texts``: prompt key -> list of texts."""

    def __init__(self, encoder: SentenceEncoder, texts: dict[str, list[str]]) -> None:
        missing = [k for k, v in texts.items() if not v]
        if missing:
            raise ValueError(f"no task texts for prompt key(s) {missing}: regenerate prompts/generated.json")
        self.texts = texts
        self.embeddings = {key: encoder.embed(list(values)).cpu() for key, values in texts.items()}

    def sample(self, task_ids: list[str], modalities: list[int], generator: torch.Generator) -> torch.Tensor:
        """One random text embedding per (task, modality): ``(B, backbone_dim)``."""
        rows = []
        for task_id, modality in zip(task_ids, modalities):
            table = self.embeddings[prompt_key(task_id, int(modality))]
            rows.append(table[int(torch.randint(len(table), (1,), generator=generator))])
        return torch.stack(rows)

    def first(self, task_id: str, modality: int, batch: int = 1) -> torch.Tensor:
        """The first text of a key (deterministic, used for validation): ``(batch, backbone_dim)``."""
        return self.embeddings[prompt_key(task_id, modality)][:1].expand(batch, -1)
