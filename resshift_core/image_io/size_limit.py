"""The largest image load_image accepts (decompression bombs), checked from the header alone."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImageError

#: Default largest image (width x height) that load_image accepts; see the package docstring.
MAX_PIXELS = 1 << 28


def default_max_pixels() -> int | None:
    """MAX_PIXELS, or RESSHIFT_MAX_PIXELS when set (a number; 'none' for no limit)."""
    env = os.environ.get("RESSHIFT_MAX_PIXELS", "").strip()
    if not env:
        return MAX_PIXELS
    if env.lower() in ("none", "0", "off", "unlimited"):
        return None
    try:
        return int(float(env))
    except ValueError:
        raise ImageError(f"RESSHIFT_MAX_PIXELS={env!r} is not a number; set it to e.g. 400000000, or 'none'") from None


def check_size(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image with no pixels, or with more than max_pixels (None: no limit)."""
    if width == 0 or height == 0:
        raise ImageError(
            f"{path} has zero width or height ({width}x{height}): there is nothing to upscale; re-export the image"
        )
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{path} is too large: {width}x{height} = {width * height / 1e6:.0f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.0f} megapixels that guards against decompression bombs; if the image is "
            f"genuine, raise the limit (load_image(..., max_pixels=None) or the environment variable "
            f"RESSHIFT_MAX_PIXELS=none)"
        )
