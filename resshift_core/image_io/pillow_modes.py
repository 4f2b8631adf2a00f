"""Pillow's many pixel modes brought to the few that become tensors: L, LA, RGB, RGBA, I;16 and I.

Palette images become RGB(A) (and say whether all their used colours are gray), a transparency key
becomes an alpha channel, CMYK goes to RGB through its profile when it has one, and the ICC
profile is kept only where it still describes the pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ImageError
from .icc import icc_space

if TYPE_CHECKING:
    from PIL import Image


@dataclass
class PlainImage:
    image: Image.Image
    mode: str
    gray_palette: bool  # a palette image whose used colours are all gray
    icc: bytes | None


def palette_is_gray(im: Image.Image) -> bool:
    try:
        pal = np.asarray(im.getpalette("RGB") or [], np.uint8).reshape(-1, 3)
        used = np.unique(np.asarray(im))
        sel = pal[used[used < len(pal)]]
        return bool(len(sel)) and bool((sel[:, 0] == sel[:, 1]).all() and (sel[:, 1] == sel[:, 2]).all())
    except Exception:
        return False


def cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK -> RGB through the embedded profile when LittleCMS is available, else Pillow's formula."""
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:
            pass
    return im.convert("RGB")


def to_plain_mode(im: Image.Image, icc: bytes | None, path: Path) -> PlainImage:
    """The loaded image in one of L, LA, RGB, RGBA, I;16* or I (other modes pass through unchanged)."""
    mode = im.mode
    has_key = "transparency" in im.info
    gray = False
    try:
        if mode == "1":
            im, mode = im.convert("L"), "L"
        if mode in ("P", "PA"):
            gray = palette_is_gray(im)
            target = "RGBA" if (has_key or mode == "PA") else "RGB"
            im, mode = im.convert(target), target
            icc = icc if icc_space(icc) == b"RGB " else None
        elif (mode == "L" and has_key) or mode == "La":
            im, mode = im.convert("LA"), "LA"
        elif (mode == "RGB" and has_key) or mode == "RGBa":
            im, mode = im.convert("RGBA"), "RGBA"
        elif mode == "RGBX":
            im, mode = im.convert("RGB"), "RGB"
        elif mode == "CMYK":
            im, mode, icc = cmyk_to_rgb(im, icc), "RGB", None
        elif mode in ("YCbCr", "LAB", "HSV"):
            if mode != "YCbCr":
                icc = None
            im, mode = im.convert("RGB"), "RGB"
    except Exception as exc:
        raise ImageError(
            f"{path}: cannot convert its {mode} pixels to RGB ({exc}); re-export it as an 8- or 16-bit RGB or RGBA PNG"
        ) from None
    return PlainImage(im, mode, gray, icc)
