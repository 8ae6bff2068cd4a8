"""Process-level settings for CPU inference and training.

:func:`retain_freed_memory` keeps large freed blocks in glibc's heap for reuse instead of
returning them to the kernel (which zeroes fresh pages on first touch); the process keeps its
peak heap until it exits. Why, and what it saves: docs/architecture.md#conventions-shared-by-every-layer.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["retain_freed_memory"]

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_MAX = -4
_applied = False


def retain_freed_memory() -> bool:
    """Make glibc keep freed blocks for reuse instead of returning them to the kernel.

    Call it once at the start of a long-running entry point (CLI, pipeline stage, benchmark).
    A no-op returning ``False`` on non-glibc systems or when the environment variable
    ``LURE_RETAIN_FREED_MEMORY=0`` is set; ``True`` once the setting is in effect.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("LURE_RETAIN_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # no mmap for large blocks (they come from the heap and are reused) and no trimming of the
    # heap top; both return 1 on success
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _applied
