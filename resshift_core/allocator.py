"""How the command line's process hands freed memory back to the system between bands.

glibc serves blocks below its mmap threshold (128 KiB at first, raised up to 32 MiB as large
blocks are freed) from heaps, and a process that makes and frees many medium tensors (a UNet's
activations, tile by tile) leaves free holes there that stay resident. Two ways out:

* a fixed low threshold (1 MiB), so every such block is mmap'd and unmapped on free. That was
  this module's first rule, and it is slow: each new block is fresh zeroed pages, 1.4 million
  page faults per 64->256 v3 run, 6.4 s instead of 4.4 s in fp32 (issue 14);
* glibc's own threshold while the networks run (blocks reused without faults), and
  `malloc_trim(0)` after every band of output rows, which returns the free pages inside the
  heaps too. The peak within a band is the same either way give or take fragmentation; what
  accumulated over many tiles goes back at each band.

The command line uses the second. bench's measuring processes leave glibc's threshold alone too
(so their timings are the command line's) and have no bands to release between. The library
never touches the allocator, so a host such as ComfyUI keeps its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from typing import TypeVar

T = TypeVar("T")


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system (glibc's malloc_trim); False where there
    is no such call (not glibc), True where it ran."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def releasing_between(items: Iterable[T]) -> Iterator[T]:
    """`items`, with the free memory released after each one has been used."""
    for item in items:
        yield item
        release_free_memory()


__all__ = ["release_free_memory", "releasing_between"]
