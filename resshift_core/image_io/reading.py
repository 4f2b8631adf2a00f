"""load_image: checks any file must pass, then the reader for it (16-bit PNG, or Pillow for the rest)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ImageError
from . import png16, read_errors
from .loaded import LoadedImage
from .read_pillow import load_with_pillow
from .read_png16 import load_png16
from .size_limit import check_size, default_max_pixels


def load_image(path: str | os.PathLike, *, max_pixels: int | None = -1) -> LoadedImage:
    """Decode one image file; see :class:`LoadedImage`.

    max_pixels: largest width*height accepted (default :data:`MAX_PIXELS`, or RESSHIFT_MAX_PIXELS);
    None for no limit. Raises ImageError (naming the file and the fix) for a missing, unreadable,
    corrupt, truncated, empty, too large or unsupported file.
    """
    path = Path(path)
    if max_pixels == -1:
        max_pixels = default_max_pixels()
    if not path.exists():
        raise ImageError(f"image not found: {path}; check the path and file name")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file; pass a file (folders are expanded by list_images)")
    try:
        data = path.read_bytes()  # once: a named pipe or /dev/stdin can be read only once
    except OSError as exc:
        raise read_errors.unreadable(path, exc) from None
    head = data[: png16.HEADER_BYTES]
    if not head:
        raise ImageError(f"{path} is empty (0 bytes); the file is damaged or incomplete: re-download or re-export it")
    header = png16.png_header(head)
    if header is not None:
        check_size(path, header.width, header.height, None)  # a zero-size PNG: refused here, not by libpng
        if header.bit_depth == 16:
            return load_png16(path, data, header, max_pixels)
    return load_with_pillow(path, data, max_pixels)
