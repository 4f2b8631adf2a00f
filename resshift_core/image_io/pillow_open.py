"""Opening a file with Pillow under our size limit instead of Pillow's.

Pillow warns above 89 megapixels and refuses above 179: the wrong limits for photos. Our own check
(size_limit) runs after the open, from the header. Pillow's limit is a module global, so it is
lifted only for an image Pillow would refuse, under a lock, and restored at once.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

_PILLOW_LIMIT_LOCK = threading.Lock()  # guards Pillow's global limit, not state of ours


def open_with_pillow(path: Path, max_pixels: int | None) -> Image.Image:
    """Image.open (lazy: the header only) without Pillow's decompression-bomb warning or error."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            pass
        with _PILLOW_LIMIT_LOCK:
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = old
