"""How the command line's process asks the C allocator to hand freed memory back.

glibc serves blocks below its mmap threshold (128 KiB at first, raised up to 32 MiB as large
blocks are freed) from heaps it rarely returns to the system, so a process that makes and frees
many medium tensors (a UNet's activations, tile by tile) keeps their peak resident long after.
Serving every block of 1 MiB and more by mmap returns it on free: about 200 MB less peak for a
128->512 v3 run (issue 14). It is set only by the command line, for its own process: a library
or a host such as ComfyUI keeps its allocator as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD_BYTES = 1 << 20


def return_large_blocks_to_the_system() -> bool:
    """Set glibc's mmap threshold (Linux); True where it was set, False elsewhere (a no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


__all__ = ["return_large_blocks_to_the_system"]
