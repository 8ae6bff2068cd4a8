"""Process-level settings for CPU inference and training.

glibc's ``malloc`` serves every block above its mmap threshold (at most 32 MiB) with a fresh
``mmap`` and gives it back with ``munmap`` when freed. A 640x480 feature map with 32 channels is
39 MB, so every layer of the network allocates fresh pages, and the kernel zeroes them on first
touch: measured on 2 CPU cores, a demo-profile forward pass spent 4.7 s of its 8.5 s in the
kernel (1.5 M page faults). Keeping freed memory in the heap for reuse removes that cost
(8.5 s -> 3.2 s with one thread, 6.2 s -> 2.4 s with two); the price is that the process keeps
its peak heap until it exits, which the entry points that call this accept.
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
