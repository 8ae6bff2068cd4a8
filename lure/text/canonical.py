"""Task texts for training and inference: the seeds and the generated paraphrases.

Background: docs/paper-map.md#tasks-and-texts; file contents: docs/data-layout.md#task-texts.

``prompts/seed_instructions.yaml`` holds the hand-written seeds (prompt key → list of sentences);
``prompts/generated.json`` (written by :mod:`lure.text.prompt_generation`) holds, per prompt key, a
``train`` split (the seeds plus paraphrases) and a ``heldout`` split (paraphrases only, never
used in training). Prompt keys are :data:`lure.text.vocabulary.PROMPT_KEYS`.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

import yaml

from lure.paths import REPO_ROOT
from lure.text.vocabulary import PROMPT_KEYS

SEEDS_PATH = REPO_ROOT / "prompts" / "seed_instructions.yaml"
GENERATED_PATH = REPO_ROOT / "prompts" / "generated.json"
SPLITS = ("train", "heldout")

__all__ = ["GENERATED_PATH", "SEEDS_PATH", "SPLITS", "canonical_text", "load_seeds", "load_task_texts"]


def load_seeds(path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """The seed sentences per prompt key; raises ``ValueError`` naming the file when a key is missing."""
    path = Path(path) if path else SEEDS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"seed instructions {path} not found")
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle) or {}
    seeds: dict[str, list[str]] = {}
    for key in PROMPT_KEYS:
        texts = [str(t).strip() for t in raw.get(key) or [] if str(t).strip()]
        if not texts:
            raise ValueError(f"{path}: prompt key {key!r} has no seed instructions")
        seeds[key] = texts
    unknown = sorted(set(raw) - set(PROMPT_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown prompt keys {unknown}; expected {', '.join(PROMPT_KEYS)}")
    return seeds


@lru_cache(maxsize=4)
def _seeds_cached(path: str) -> dict[str, list[str]]:
    return load_seeds(path)


def canonical_text(key: str, seeds_path: str | os.PathLike | None = None) -> str:
    """The fixed description of prompt ``key`` (its first seed), used when the user gives no text."""
    if key not in PROMPT_KEYS:
        raise ValueError(f"unknown prompt key {key!r}; expected one of {', '.join(PROMPT_KEYS)}")
    return _seeds_cached(str(seeds_path or SEEDS_PATH))[key][0]


def load_task_texts(path: str | os.PathLike = GENERATED_PATH) -> dict[str, dict[str, list[str]]]:
    """Prompt key → split (``train``/``heldout``) → texts, from ``prompts/generated.json``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task texts {path} not found; run `dvc repro prompts` (or the generate-prompts flow)")
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    texts = data.get("texts")
    if not isinstance(texts, dict):
        raise ValueError(f"{path}: no 'texts' section; regenerate it with the generate-prompts flow")
    out: dict[str, dict[str, list[str]]] = {}
    for key in PROMPT_KEYS:
        entry = texts.get(key)
        if not isinstance(entry, dict) or not entry.get("train"):
            raise ValueError(f"{path}: prompt key {key!r} has no train texts; regenerate it")
        out[key] = {split: list(entry.get(split) or []) for split in SPLITS}
    return out
