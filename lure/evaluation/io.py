"""Atomic JSON writing for evaluation outputs (images: :func:`lure.image_io.write_image`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lure.fileio import atomic_write_text


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats turned into ``None`` (valid JSON), numpy scalars into floats."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2, sort_keys=False) + "\n")
