"""save_image and save_image_bands: tensors (whole, or as row bands) to a PNG (8 or 16 bits), JPEG,
WebP, TIFF or BMP file, written atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import ImageError
from .atomic_write import write_atomic
from .icc import icc_space
from .output_format import MAX_SIDE, output_format
from .png_stream import PngStream
from .quantize import as_chw, quantize


def _one_gray_channel(x: torch.Tensor) -> torch.Tensor:
    """1xHxW from 3xHxW: the first channel when all three are equal, else Rec.601 luma."""
    if torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]):
        return x[:1]
    return (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)


def _pillow_writer(pixels: np.ndarray, fmt: str, icc_profile: bytes | None, quality: int):
    from PIL import Image

    im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    params: dict[str, Any] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if fmt == "PNG":
        params["compress_level"] = 6
    elif fmt in ("JPEG", "WEBP"):
        params["quality"] = quality
    elif fmt == "TIFF":
        from PIL import features

        if features.check("libtiff"):
            params["compression"] = "tiff_deflate"

    def write(f: BinaryIO) -> None:
        im.save(f, format=fmt, **params)

    return write


class _BandsFailed(BaseException):
    """Carries an error raised while the bands were being computed out of write_atomic (which
    removes the temporary file and passes BaseExceptions on), so it is not reported as a write
    error."""

    def __init__(self, error: BaseException):
        super().__init__(error)
        self.error = error


def save_image(
    path: str | os.PathLike,
    rgb: Any,
    alpha: Any = None,
    *,
    bit_depth: int = 8,
    grayscale: bool = False,
    format: str | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write an image atomically; returns the path written.

    rgb: float 3xHxW (or 1xHxW / HxW gray) in [0, 1]; values are clamped to [0, 1] and rounded to
    the nearest level. alpha: float 1xHxW (or HxW) or None. bit_depth: 8, or 16 (PNG only).
    grayscale: write one gray channel (the first channel when all three are equal, else Rec.601 luma);
    a 1-channel rgb is always written gray. format: "png", "jpeg" or "webp" (also "tiff", "bmp");
    default from the file ending. icc_profile: embedded when it matches the written colour type
    (an RGB profile for colour output, a gray one for gray output; WebP output is always RGB), and
    silently left out otherwise. quality: JPEG and WebP quality. NaN or infinite values, alpha in a
    JPEG/BMP, or 16 bits in a format other than PNG raise ImageError and write nothing.
    """
    path = Path(path)
    x = as_chw(rgb, "image", path)
    alpha_rows = None if alpha is None else (lambda first, stop: as_chw(alpha, "alpha", path)[:, first:stop])
    return save_image_bands(
        path,
        int(x.shape[1]),
        int(x.shape[2]),
        [(0, x)],
        alpha_rows,
        channels=int(x.shape[0]),
        bit_depth=bit_depth,
        grayscale=grayscale,
        format=format,
        icc_profile=icc_profile,
        quality=quality,
    )


def save_image_bands(
    path: str | os.PathLike,
    height: int,
    width: int,
    bands: Iterable[tuple[int, Any]],
    alpha_rows: Callable[[int, int], Any] | None = None,
    *,
    channels: int = 3,
    bit_depth: int = 8,
    grayscale: bool = False,
    format: str | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> Path:
    """`save_image` for an image given as row bands: `(first_row, rgb_rows)` pairs, top to
    bottom, each `channels` x h x `width` in [0, 1] (see resshift_core.row_bands), and
    `alpha_rows(first, stop)` giving the alpha rows to match. A PNG is written band by band as
    the bands are computed (`png_stream`), so memory follows a band; other formats gather the
    8-bit samples first (their encoders take whole images). An error while the bands are being
    computed leaves nothing written and is raised as it is.
    """
    path = Path(path)
    fmt = output_format(path, format)
    if bit_depth not in (8, 16):
        raise ImageError(f"cannot save {path}: bit_depth must be 8 or 16, not {bit_depth!r}")
    if bit_depth == 16 and fmt != "PNG":
        raise ImageError(
            f"cannot save {path} with 16 bits per sample: only PNG holds 16 bits here; "
            f"name the output .png or use bit_depth=8"
        )
    if alpha_rows is not None and fmt in ("JPEG", "BMP"):
        raise ImageError(
            f"cannot save {path}: {fmt} cannot store transparency (alpha); "
            f"save as .png (or .webp) instead, or drop the alpha channel"
        )
    if channels not in (1, 3):
        hint = "; pass the 4th channel as alpha=" if channels == 4 else ""
        raise ImageError(f"cannot save {path}: the image must have 1 or 3 channels (CxHxW), got {channels}{hint}")
    if height == 0 or width == 0:
        raise ImageError(f"cannot save {path}: the image is empty ({width}x{height})")
    if max(height, width) > MAX_SIDE[fmt]:
        raise ImageError(
            f"cannot save {path}: {width}x{height} is larger than {fmt} allows ({MAX_SIDE[fmt]} pixels a side); "
            f"save as .png instead"
        )
    gray = (grayscale or channels == 1) and fmt != "WEBP"  # WebP has no gray mode
    maxval = 65535 if bit_depth == 16 else 255
    out_channels = (1 if gray else 3) + (alpha_rows is not None)
    if icc_space(icc_profile) != (b"GRAY" if out_channels <= 2 else b"RGB "):
        icc_profile = None

    def samples(first: int, rows: Any) -> np.ndarray:
        x = as_chw(rows, "image", path)
        if x.shape[0] != channels or x.shape[2] != width:
            raise ImageError(
                f"cannot save {path}: a band of shape {tuple(x.shape)} does not fit {channels}x{height}x{width}"
            )
        if x.shape[0] == 3 and gray:
            x = _one_gray_channel(x)
        elif x.shape[0] == 1 and not gray:
            x = x.expand(3, -1, -1)
        pixels = quantize(x, maxval, "image", path)
        if alpha_rows is not None:
            a = as_chw(alpha_rows(first, first + x.shape[1]), "alpha", path)
            if a.shape[0] != 1 or tuple(a.shape[1:]) != tuple(x.shape[1:]):
                raise ImageError(
                    f"cannot save {path}: alpha must be 1x{height}x{width} to match the image, got {tuple(a.shape)}"
                )
            pixels = np.concatenate([pixels, quantize(a, maxval, "alpha", path)], axis=2)
        return pixels

    def each_band() -> Iterator[tuple[int, np.ndarray]]:
        expected = 0
        iterator = iter(bands)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except BaseException as exc:
                raise _BandsFailed(exc) from None
            first, rows = item
            if first != expected:
                raise ImageError(
                    f"cannot save {path}: bands must follow one another (row {first}, expected {expected})"
                )
            pixels = samples(first, rows)
            expected += pixels.shape[0]
            yield first, pixels
        if expected != height:
            raise ImageError(f"cannot save {path}: the bands hold {expected} rows, the image {height}")

    if fmt == "PNG":

        def write(f: BinaryIO) -> None:
            stream = PngStream(f, width, height, out_channels, bit_depth, icc_profile)
            for _, pixels in each_band():
                stream.write(pixels)
            stream.close()

    else:

        def write(f: BinaryIO) -> None:
            whole = np.empty((height, width, out_channels), dtype=np.uint8)
            for first, pixels in each_band():
                whole[first : first + pixels.shape[0]] = pixels
            _pillow_writer(whole, fmt, icc_profile, quality)(f)

    try:
        write_atomic(path, write)
    except _BandsFailed as failed:
        raise failed.error from None
    return path
