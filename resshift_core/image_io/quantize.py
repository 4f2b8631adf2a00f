"""Tensors to be saved: checked (shape, dtype, finite) and rounded to 8- or 16-bit samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ImageError


def as_chw(x: Any, what: str, path: Path) -> torch.Tensor:
    """A float32 CPU CxHxW tensor from a CxHxW, 1xCxHxW or HxW tensor or array."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"cannot save {path}: {what} must be a tensor, not {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ImageError(f"cannot save {path}: {what} must have shape CxHxW, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ImageError(f"cannot save {path}: {what} must be floating point with values in [0, 1], got {x.dtype}")
    return x.detach().to("cpu", torch.float32)


def quantize(x: torch.Tensor, maxval: int, what: str, path: Path) -> np.ndarray:
    """CxHxW float in [0,1] -> HxWxC uint8/uint16, clamped and rounded to nearest."""
    if not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ImageError(
            f"cannot save {path}: the {what} contains {bad} values (the result of a failed computation); "
            f"nothing was written; check the computation that produced it (e.g. run in float32 instead of float16)"
        )
    arr = np.clip(x.numpy(), 0.0, 1.0) * np.float32(maxval)
    np.rint(arr, out=arr)
    return np.ascontiguousarray(arr.astype(np.uint16 if maxval > 255 else np.uint8).transpose(1, 2, 0))
