"""Checkpoint files: atomic writes, ``torch.load(weights_only=True)`` compatible contents."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lure.fileio import atomic_open
from lure.models.config import LUREConfig
from lure.models.lure_model import LURE

FORMAT = "lure-checkpoint-1"
RESUME_FORMAT = "lure-resume-2"  # training state written by lure.training.trainer
OLD_RESUME_FORMATS = ("lure-resume-1",)  # readable, so that a trainer can name and ignore them


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename over ``path``."""
    with atomic_open(path) as handle:
        torch.save(obj, handle)


def save_checkpoint(path: str | os.PathLike, model: LURE, profile: str, **extra: Any) -> None:
    """Write the model weights, its configuration and profile name (plus ``extra`` entries such
    as optimiser state, step and RNG states) atomically."""
    payload = {"format": FORMAT, "profile": profile, "model_config": model.config.to_dict(),
               "model": model.state_dict(), **extra}
    atomic_torch_save(payload, path)


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint (or training resume state) dictionary safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ValueError(f"{path} is not a readable LURE checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, RESUME_FORMAT, *OLD_RESUME_FORMATS):
        raise ValueError(f"{path} is not a LURE checkpoint (expected format {FORMAT!r})")
    return payload


def config_mismatch(expected: LUREConfig, found: dict[str, Any]) -> list[str]:
    """Human-readable differences between a configuration and a checkpoint's configuration."""
    wanted = expected.to_dict()
    try:  # fields added after the checkpoint was written take their defaults, as in from_dict
        found = LUREConfig.from_dict(found).to_dict()
    except (TypeError, ValueError):  # unknown or invalid fields: compare as written
        pass
    keys = sorted(set(wanted) | set(found))
    return [f"{k}: checkpoint has {found.get(k)!r}, expected {wanted.get(k)!r}"
            for k in keys if wanted.get(k) != found.get(k)]


def load_model(path: str | os.PathLike, expected: LUREConfig | None = None, expected_profile: str | None = None,
               map_location: str | torch.device = "cpu") -> tuple[LURE, dict[str, Any]]:
    """Build a LURE from a checkpoint. With ``expected`` (and/or ``expected_profile``) given, a
    checkpoint of a different architecture fails with a message naming each mismatch."""
    payload = read_checkpoint(path, map_location)
    problems = []
    if expected_profile is not None and payload["profile"] != expected_profile:
        problems.append(f"profile: checkpoint has {payload['profile']!r}, expected {expected_profile!r}")
    if expected is not None:
        problems += config_mismatch(expected, payload["model_config"])
    if problems:
        raise ValueError(f"checkpoint {path} does not match the requested model: " + "; ".join(problems))
    model = LURE(LUREConfig.from_dict(payload["model_config"]))
    model.load_state_dict(payload["model"])
    return model, payload
