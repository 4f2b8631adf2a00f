"""A 16-bit PNG file: pixels from imagecodecs, ICC profile and EXIF orientation from Pillow's header parse."""

from __future__ import annotations

from pathlib import Path

from . import png16, read_errors
from .loaded import LoadedImage, from_pixels
from .orientation import exif_orientation
from .pillow_open import open_with_pillow
from .size_limit import check_size


def _metadata(data: bytes, max_pixels: int | None) -> tuple[bytes | None, bytes | None]:
    """(icc_profile, exif) from the chunks before the image data, parsed by Pillow without decoding pixels.

    A file whose metadata Pillow cannot parse (e.g. a metadata chunk with a wrong checksum, which
    libpng skips) keeps its pixels and loses its metadata.
    """
    try:
        with open_with_pillow(data, max_pixels) as im:
            return im.info.get("icc_profile") or None, im.info.get("exif") or None
    except Exception:
        return None, None


def load_png16(path: Path, data: bytes, header: png16.PngHeader, max_pixels: int | None) -> LoadedImage:
    """`data`: the whole file, read once by load_image."""
    check_size(path, header.width, header.height, max_pixels)  # from IHDR: before any pixel is decoded
    try:
        pixels = png16.decode(data)
    except png16.PngDecodeError as exc:
        raise read_errors.damaged(path, str(exc)) from None
    except MemoryError:
        raise read_errors.out_of_memory(path, header.width, header.height) from None
    icc, exif = _metadata(data, max_pixels)
    channels = pixels.shape[2]
    return from_pixels(
        pixels,
        65535,
        gray=channels <= 2,
        has_alpha=channels in (2, 4),
        orientation=exif_orientation(exif) if exif else 1,
        path=path,
        fmt="PNG",
        icc=icc,
    )
