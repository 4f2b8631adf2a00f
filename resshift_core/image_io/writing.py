"""save_image: tensors to a PNG (8 or 16 bits), JPEG, WebP, TIFF or BMP file, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import ImageError
from . import png16
from .atomic_write import write_atomic
from .icc import icc_space
from .output_format import MAX_SIDE, output_format
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
    a 1-channel rgb is always written gray. format: "png", "jpeg", "webp" (also "tiff", "bmp");
    default from the file ending. icc_profile: embedded when it matches the written colour type
    (an RGB profile for colour output, a gray one for gray output; WebP output is always RGB), and
    silently left out otherwise. quality: JPEG and WebP quality. NaN or infinite values, alpha in a
    JPEG/BMP, or 16 bits in a format other than PNG raise ImageError and write nothing.
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
    if alpha is not None and fmt in ("JPEG", "BMP"):
        raise ImageError(
            f"cannot save {path}: {fmt} cannot store transparency (alpha); "
            f"save as .png (or .webp) instead, or drop the alpha channel"
        )
    x = as_chw(rgb, "image", path)
    if x.shape[0] not in (1, 3):
        hint = "; pass the 4th channel as alpha=" if x.shape[0] == 4 else ""
        raise ImageError(
            f"cannot save {path}: the image must have 1 or 3 channels (CxHxW), got shape {tuple(x.shape)}{hint}"
        )
    h, w = int(x.shape[1]), int(x.shape[2])
    if h == 0 or w == 0:
        raise ImageError(f"cannot save {path}: the image is empty ({w}x{h})")
    if max(h, w) > MAX_SIDE[fmt]:
        raise ImageError(
            f"cannot save {path}: {w}x{h} is larger than {fmt} allows ({MAX_SIDE[fmt]} pixels a side); "
            f"save as .png instead"
        )
    a = None
    if alpha is not None:
        a = as_chw(alpha, "alpha", path)
        if a.shape[0] != 1 or tuple(a.shape[1:]) != (h, w):
            raise ImageError(f"cannot save {path}: alpha must be 1x{h}x{w} to match the image, got {tuple(a.shape)}")

    gray = (grayscale or x.shape[0] == 1) and fmt != "WEBP"  # WebP has no gray mode
    if x.shape[0] == 3 and gray:
        x = _one_gray_channel(x)
    elif x.shape[0] == 1 and not gray:
        x = x.expand(3, -1, -1)
    maxval = 65535 if bit_depth == 16 else 255
    pixels = quantize(x, maxval, "image", path)
    if a is not None:
        pixels = np.concatenate([pixels, quantize(a, maxval, "alpha", path)], axis=2)

    if icc_space(icc_profile) != (b"GRAY" if pixels.shape[2] <= 2 else b"RGB "):
        icc_profile = None

    if fmt == "PNG" and bit_depth == 16:
        # imagecodecs' lookup happens inside write(): a missing package then leaves no temporary file
        def write(f: BinaryIO) -> None:
            f.write(png16.encode(pixels, icc_profile))
    else:
        write = _pillow_writer(pixels, fmt, icc_profile, quality)
    write_atomic(path, write)
    return path
