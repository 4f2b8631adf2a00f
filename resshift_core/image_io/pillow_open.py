"""Opening a file with Pillow under our size limit instead of Pillow's.

Pillow warns above 89 megapixels and refuses above 179: the wrong limits for photos. Our own check
(size_limit) runs after the open, from the header. Pillow's limit is a module global, so it is
lifted only for an image Pillow would refuse, under a lock, and restored at once.
"""

from __future__ import annotations

import io
import threading
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

_PILLOW_LIMIT_LOCK = threading.Lock()  # guards Pillow's global limit, not state of ours


def open_with_pillow(data: bytes, max_pixels: int | None) -> Image.Image:
    """Image.open of a file's bytes (lazy: the header only) without Pillow's decompression-bomb
    warning or error. From bytes, so a file is read once (a pipe can be read only once)."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            pass
        with _PILLOW_LIMIT_LOCK:
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                return Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old
