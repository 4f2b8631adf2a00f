"""16-bit PNG bytes to numpy arrays, through imagecodecs (libpng).

Pillow opens 16-bit RGB(A) and gray+alpha PNGs as 8-bit; imagecodecs decodes them whole. Ours is
only the IHDR peek (to route a file here and check its size before decoding). Writing, 8 or 16
bits, is `png_stream`'s.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import NamedTuple

import numpy as np

from ..errors import ImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_BYTES = 33  # signature, then the IHDR chunk: length, type, 13 bytes of fields, CRC


class PngHeader(NamedTuple):
    width: int
    height: int
    bit_depth: int
    color_type: int


class PngDecodeError(Exception):
    """libpng refused the data; the message starts with "truncated" or "corrupt"."""


def png_header(head: bytes) -> PngHeader | None:
    """The IHDR fields from the first HEADER_BYTES bytes of a file, or None if it is not a PNG."""
    if len(head) < HEADER_BYTES or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, ctype = struct.unpack(">IIBB", head[16:26])
    return PngHeader(width, height, depth, ctype)


def _imagecodecs() -> ModuleType:
    try:
        import imagecodecs
    except ImportError:
        raise ImageError(
            "16-bit PNG files need the imagecodecs package, which is not installed; "
            "install it with `pip install imagecodecs`"
        ) from None
    return imagecodecs


def decode(data: bytes) -> np.ndarray:
    """HxWxC uint16 pixels (C = 1..4); libpng turns a tRNS colour key into an alpha channel."""
    codecs = _imagecodecs()
    try:
        pixels = codecs.png_decode(data)
    except codecs.PngError as exc:
        why = "truncated" if "too small" in str(exc) else "corrupt"  # imagecodecs' words for data running out
        raise PngDecodeError(f"{why} (libpng: {exc})") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]
