"""Locations of the project tree and of the optional shared real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The ``shared`` folder beside the repository, or ``None`` (its layout:
    docs/data-layout.md#shared-real-data).

    ``LURE_SHARED_DIR`` overrides the default ``<repo>/../shared``.
    """
    env = os.environ.get("LURE_SHARED_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if (path / "data").is_dir() else None


def shared_data_dir() -> Path | None:
    """``<shared>/data`` when present, else ``None``."""
    root = shared_dir()
    return root / "data" if root else None


def display_path(path: str | os.PathLike) -> str:
    """``path`` as reports show it: relative to the repository when it lies inside it (a report
    then does not name the folders of the machine it ran on), otherwise unchanged."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)
