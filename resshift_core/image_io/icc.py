"""ICC profiles: which colour space one describes, read from its header."""

from __future__ import annotations


def icc_space(icc: bytes | None) -> bytes | None:
    """The profile's data colour space (b"RGB ", b"GRAY", b"CMYK", ...), or None for no or a short profile."""
    return icc[16:20] if icc and len(icc) >= 128 else None
