"""Reading and writing image files for the command-line upscaler and training.

Plain tensors in and out: :func:`load_image` gives a :class:`LoadedImage` whose ``rgb`` is a float32
3xHxW tensor in [0, 1] (grayscale sources are repeated to three channels and flagged), with the
transparency, bit depth and ICC profile of the source kept beside it so that :func:`save_image` can
write the result back in kind.

Formats
    Read: whatever Pillow reads (PNG, JPEG, WebP, BMP, TIFF, ...), first frame only, EXIF orientation
    applied. 16-bit PNGs (gray, gray+alpha, RGB, RGBA; interlaced or not) are decoded by imagecodecs
    (libpng), because Pillow opens 16-bit RGB(A) and gray+alpha PNGs as 8-bit (it keeps only the
    high byte of every sample) and cannot write them at all; their ICC profile and EXIF orientation
    come from the chunks before the image data. 16-bit gray TIFFs come through Pillow at 16 bits;
    16-bit colour TIFFs at 8 bits.
    Write: PNG (8 or 16 bits, gray or RGB, with or without alpha), JPEG (quality 95, no alpha),
    WebP (8 bits, alpha allowed), and 8-bit TIFF/BMP.

Size limit (decompression bombs)
    An image may have at most :data:`MAX_PIXELS` pixels (2**28, about 268 megapixels, e.g.
    16384x16384: 3 GiB as a float tensor), changeable per call (``load_image(..., max_pixels=...)``;
    ``None`` = no limit) or with the environment variable ``RESSHIFT_MAX_PIXELS`` (a number, or
    ``none``). It is checked from the header, before any pixel is decoded, and replaces Pillow's own
    limit (a warning above 89 megapixels, an error above 179), which is wrong for photos.

Writes are atomic: the file is written to a hidden temporary file in the target folder and moved into
place with ``os.replace``; on any failure or interrupt the temporary file is removed and an existing
file of that name is left untouched.

Modules: ``reading`` (load_image: which reader), ``read_pillow`` and ``read_png16`` (the two readers),
``pillow_open`` (Pillow's limit), ``pillow_modes`` (palette, CMYK, ... to plain RGB), ``orientation``
(EXIF), ``icc``, ``size_limit``, ``read_errors``, ``loaded`` (pixels to tensors), ``png16`` (the
imagecodecs calls), ``png_stream`` (our band-by-band PNG encoder), ``writing`` (save_image,
save_image_bands), ``output_format``, ``quantize``, ``atomic_write``,
``listing`` (list_images).
"""

from __future__ import annotations

from .listing import IMAGE_EXTENSIONS, list_images
from .loaded import LoadedImage
from .reading import load_image
from .size_limit import MAX_PIXELS
from .writing import save_image, save_image_bands

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "LoadedImage",
    "list_images",
    "load_image",
    "save_image",
    "save_image_bands",
]
