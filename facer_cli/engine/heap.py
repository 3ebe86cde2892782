"""Freed image buffers kept for the next image, not handed back to the kernel and faulted in again.

Every photo allocates a few large blocks (the decoded image, its resized copies, the detector's
input). glibc's malloc gives such blocks back to the kernel when they are freed (above its dynamic
mmap threshold, or by trimming the heap's top), so the next photo page-faults every page in again
and the kernel zeroes each one: about 1,700 page faults and 5 ms of kernel time per large photo,
measured on 1-12 MP JPEGs. Fixing the two thresholds keeps freed blocks in the heap for the next
photo; and one arena for every thread keeps them for worker threads too (glibc unmaps a thread
arena's heap segment as soon as it is empty, whatever the trim threshold). The process's peak
memory stays what it was. Measured (`benchmarks/bench_heap.py`, against glibc's defaults): one
engine thread 0.91x the time per photo, `facer serve` with two model slots 1.13x the throughput.

Only glibc on Linux has these knobs. A process whose malloc was tuned from the environment
(`GLIBC_TUNABLES`, `MALLOC_*`) is left as it was set.
"""

from __future__ import annotations

import os
import sys
from functools import cache

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# glibc's largest mmap threshold on 64-bit (it refuses more): blocks up to this size are reused.
MMAP_THRESHOLD = 32 * 1024 * 1024
# Free memory at the heap's top kept rather than trimmed: room for a few decoded 12 MP photos.
TRIM_THRESHOLD = 256 * 1024 * 1024


def tuned_from_environment() -> bool:
    # glibc reads MALLOC_ARENA_MAX, MALLOC_TRIM_THRESHOLD_, ... and the glibc.malloc.* tunables.
    return "malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(name.startswith("MALLOC_") for name in os.environ)


@cache
def reuse_freed_memory() -> str:
    """Set the thresholds once per process; says what was done ("kept for reuse", or why not)."""
    if not sys.platform.startswith("linux"):
        return "left to the platform's malloc"
    if tuned_from_environment():
        return "left as the environment set it"
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "left to the C library's malloc (no mallopt)"
    if not (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        return "left to the C library's malloc"
    mallopt(M_ARENA_MAX, 1)  # best effort: without it, only blocks freed in worker threads still fault
    return "kept for reuse"
