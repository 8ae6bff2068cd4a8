"""Atomic writers for evaluation outputs (JSON, PNG) on top of :mod:`lure.fileio`."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lure.fileio import atomic_write_bytes, atomic_write_text


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


def atomic_write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 ``HxW`` or ``HxWx3`` array as PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
