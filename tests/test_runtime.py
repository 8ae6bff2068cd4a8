"""Process and file helpers: retain_freed_memory reuses large freed blocks instead of faulting
them in again; atomic writes never leave half a file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

CHILD = """
import resource, numpy as np
from lure.runtime import retain_freed_memory
applied = retain_freed_memory()
for _ in range(3):  # warm up: the heap grows once
    np.ones(16 * 1024 * 1024, dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # 64 MiB each, above glibc's largest mmap threshold
    np.ones(16 * 1024 * 1024, dtype=np.float32)
print(int(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(retain: str) -> tuple[bool, int]:
    env = dict(os.environ, LURE_RETAIN_FREED_MEMORY=retain)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    return applied == "1", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_freed_blocks_are_reused():
    applied, faults_retained = _page_faults("1")
    if not applied:
        pytest.skip("this libc has no mallopt (not glibc)")
    not_applied, faults_default = _page_faults("0")
    assert not not_applied
    # without reuse each 64 MiB block is faulted in again: at least 32 faults even with 2 MiB
    # transparent huge pages (16,384 with 4 KiB pages)
    assert faults_default >= 20 * 32
    assert faults_retained < faults_default / 20


def test_atomic_open_keeps_the_old_file_when_the_write_fails(tmp_path):
    from lure.fileio import atomic_open, atomic_write_text, sha256_file

    target = atomic_write_text(tmp_path / "sub" / "out.txt", "old\n")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]  # no temporary left
    with atomic_open(target, "w") as handle:
        handle.write("new ✓\n")
    assert target.read_text(encoding="utf-8") == "new ✓\n"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode
    assert sha256_file(target, chunk=3) == hashlib.sha256("new ✓\n".encode()).hexdigest()
