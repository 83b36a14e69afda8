"""Host memory policy of the CPU paths: freed blocks are kept for reuse.

glibc's malloc serves large blocks (from 128 KiB, rising with use to 32 MiB) with fresh mmap'ed pages and
returns them to the OS when freed, so every new activation tensor of a network page-faults on its first
touch; on the CPU that is a sizeable part of a forward pass (measured in docs/performance.md). Raising the
mmap and trim thresholds makes malloc reuse freed blocks instead. The price is a resident size that stays
near its peak. Applied once, when an op first runs on a CPU tensor; TORCH_UTILS_KEEP_FREED_MEMORY=0
leaves malloc as it is. Elsewhere than glibc this does nothing.
"""

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameters of glibc's malloc.h.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # Blocks from this size on still get pages of their own.
TRIM_THRESHOLD = 1 << 30    # Free memory at the top of the heap kept for reuse.

_applied = False


def keep_freed_memory():
    """Applies the policy once per process; returns whether malloc accepted it."""
    global _applied
    if _applied:
        return _applied == 'ok'
    _applied = 'skipped'
    if os.environ.get('TORCH_UTILS_KEEP_FREED_MEMORY', '1') == '0':
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').mallopt
    except (OSError, AttributeError):
        return False  # Not glibc.
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
        _applied = 'ok'
    return _applied == 'ok'
