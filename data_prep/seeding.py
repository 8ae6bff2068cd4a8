"""The per-sample seed rule of the seeded degradations (no parser imports: evaluation uses it too).

A degraded copy of the sample ``key`` for ``task`` under the data seed ``seed`` is made with
``degrade(..., seed=sample_seed(seed, key, task))``, both when the shards are built
(:mod:`data_prep.derived`) and when the evaluation stage degrades clean pairs on the fly, so the
two give the same images.
"""

from __future__ import annotations

import hashlib

__all__ = ["sample_seed"]


def sample_seed(seed: int, key: str, task: str) -> int:
    """The 32-bit seed of sample ``key`` and task ``task`` (e.g. ``"ll"``, ``"oe+lc"``): the first
    four bytes, little-endian, of SHA-256 of ``"<seed>:<key>:<task>"``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}:{task}".encode()).digest()[:4], "little")
