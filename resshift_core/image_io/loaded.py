"""The decoded image, and the one step every reader ends with: integer pixels to float tensors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .icc import icc_space
from .orientation import apply_orientation


@dataclass
class LoadedImage:
    """One decoded image file.

    rgb: float32 3xHxW in [0, 1] (a grayscale source gives three identical channels).
    alpha: float32 1xHxW in [0, 1], or None when the image has no transparency (no alpha channel,
        no transparent palette entry or colour key, or an alpha channel that is fully opaque).
    bit_depth: 8 or 16 (bits per sample of the source; what to write back as PNG).
    grayscale: the source had no colour (gray or gray+alpha, or a palette of grays).
    source_format: Pillow's format name, e.g. "PNG", "JPEG", "WEBP".
    icc_profile: the source's embedded ICC profile (RGB or gray), or None. Profiles of CMYK or Lab
        sources are not kept, since the pixels were converted to RGB.
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    bit_depth: int
    grayscale: bool
    source_format: str
    path: Path
    icc_profile: bytes | None = None
    frames: int = 1  # frames in the file (an animation gives its first)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[-1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[-2])


def _to_chw_float(arr: np.ndarray, maxval: int) -> torch.Tensor:
    """HxWxC integers -> contiguous float32 CxHxW tensor in [0, 1] (one conversion pass, then a scale)."""
    out = torch.from_numpy(np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C"))
    return out.div_(maxval)


def from_pixels(
    arr: np.ndarray,
    maxval: int,
    *,
    gray: bool,
    has_alpha: bool,
    orientation: int,
    path: Path,
    fmt: str,
    icc: bytes | None,
    frames: int = 1,
) -> LoadedImage:
    """HxW or HxWxC integer pixels (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; maxval 255 or 65535)."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    colour = arr[:, :, :-1] if has_alpha else arr
    alpha_arr = arr[:, :, -1:] if has_alpha else None
    if alpha_arr is not None and bool((alpha_arr == maxval).all()):
        alpha_arr = None  # an opaque alpha channel: no transparency
    rgb = _to_chw_float(apply_orientation(colour, orientation), maxval)
    if rgb.shape[0] == 1:
        rgb = rgb.repeat(3, 1, 1)
    alpha = None if alpha_arr is None else _to_chw_float(apply_orientation(alpha_arr, orientation), maxval)
    if icc_space(icc) not in (b"RGB ", b"GRAY"):
        icc = None  # what the pixels no longer are (CMYK, Lab) or a profile too short to be one
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=16 if maxval == 65535 else 8,
        grayscale=gray,
        source_format=fmt,
        path=path,
        icc_profile=icc,
        frames=frames,
    )
