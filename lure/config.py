"""Reading ``params.yaml``: the selected profile resolved into one flat dictionary.

``params.yaml`` has shared top-level sections (``seed``, ``text_encoder``, ``prompts``) and one
block per named profile under ``profiles`` (``demo``, ``real``, ``paper``), each with its own ``model``,
``data``, ``stage1``, ``stage2`` and ``evaluate`` sections. ``profile`` selects one, e.g.
``dvc exp run -S profile=paper``; any single key stays overridable, e.g.
``dvc exp run -S profiles.demo.stage1.steps=50``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from lure.models.config import LUREConfig
from lure.paths import REPO_ROOT

SHARED_SECTIONS = ("seed", "text_encoder", "prompts")


def read_params(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The raw contents of ``params.yaml`` (default: the repository's)."""
    path = Path(path) if path else REPO_ROOT / "params.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} not found (run from the repository root)")
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def load_params(path: str | os.PathLike | None = None, profile: str | None = None) -> dict[str, Any]:
    """The resolved configuration: shared sections plus the sections of the selected profile.

    ``profile`` overrides the file's ``profile`` key. The result has a ``profile`` key naming it.
    """
    raw = read_params(path)
    name = profile or raw.get("profile", "demo")
    profiles = raw.get("profiles") or {}
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; params.yaml defines: {', '.join(sorted(profiles))}")
    resolved: dict[str, Any] = {k: raw[k] for k in SHARED_SECTIONS if k in raw}
    resolved.update(profiles[name])
    resolved["profile"] = name
    return resolved


def model_config(params: dict[str, Any]) -> LUREConfig:
    """The :class:`LUREConfig` of a resolved parameter dictionary."""
    return LUREConfig.from_dict(params["model"])


def profile_names(path: str | os.PathLike | None = None) -> list[str]:
    return sorted((read_params(path).get("profiles") or {}).keys())
