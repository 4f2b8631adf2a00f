"""EXIF orientation: read the tag, and turn the pixels upright as viewers show them."""

from __future__ import annotations

from typing import Any

import numpy as np


def exif_orientation(exif: Any) -> int:
    """The orientation (1..8) in a Pillow Exif or raw EXIF bytes; 1 when absent or malformed."""
    try:
        if isinstance(exif, (bytes, bytearray)):
            from PIL import Image

            parsed = Image.Exif()
            parsed.load(bytes(exif))
            exif = parsed
        value = int(exif.get(0x0112, 1)) if exif is not None else 1
    except Exception:  # malformed EXIF: ignore it, as viewers do
        return 1
    return value if 1 <= value <= 8 else 1


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxWxC array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(1, 0, 2)
    if orientation == 6:
        return arr.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return arr.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return arr.transpose(1, 0, 2)[::-1]
    return arr
