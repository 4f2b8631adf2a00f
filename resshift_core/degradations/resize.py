"""Resizing: the random ``F.interpolate`` resizes of the RealESRGAN pipeline and a MATLAB-style
``imresize`` (antialiased bicubic) used by ResShift's bicubic task (``activate_matlab: True``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RESIZE_MODES = ("area", "bilinear", "bicubic")


def interpolate(
    img: torch.Tensor, mode: str, size: tuple[int, int] | None = None, scale_factor: float | None = None
) -> torch.Tensor:
    """``F.interpolate`` as the published pipeline calls it (no antialiasing, ``align_corners=False``).

    With ``scale_factor`` the output is ``floor(H * s) x floor(W * s)`` and bilinear/bicubic sample
    with that exact factor, as ``F.interpolate(out, scale_factor=s, mode=m)`` does.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
    kw = {} if mode == "area" else {"align_corners": False}
    if size is not None:
        size = (max(1, int(size[0])), max(1, int(size[1])))
        return F.interpolate(img, size=size, mode=mode, **kw)
    if scale_factor is None:
        raise ValueError("give size or scale_factor")
    if scale_factor == 1:
        return img
    h, w = img.shape[-2:]
    if int(h * scale_factor) < 1 or int(w * scale_factor) < 1:  # too small: fall back to size >= 1
        return F.interpolate(img, size=(max(1, int(h * scale_factor)), max(1, int(w * scale_factor))), mode=mode, **kw)
    return F.interpolate(img, scale_factor=scale_factor, mode=mode, **kw)


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic kernel with a = -0.5 (MATLAB's)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    return (
        (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    ).to(x.dtype)


def _matlab_weights(in_len: int, out_len: int, scale: float, antialias: bool) -> torch.Tensor:
    """Dense ``(out_len, in_len)`` resampling matrix of MATLAB's bicubic ``imresize`` with symmetric borders."""
    width = 4.0
    aa = antialias and scale < 1
    if aa:
        width = width / scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate of each output pixel centre
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # 1-based input indices
    dist = u[:, None] - idx
    wts = scale * _cubic(dist * scale) if aa else _cubic(dist)
    wts = wts / wts.sum(dim=1, keepdim=True)
    j = idx.long() - 1  # 0-based, mirror out-of-range indices (MATLAB 'symmetric')
    period = 2 * in_len
    j = torch.remainder(j, period)
    j = torch.where(j >= in_len, period - 1 - j, j)
    m = torch.zeros(out_len, in_len, dtype=torch.float64)
    m.scatter_add_(1, j, wts)
    return m


def imresize_matlab(
    img: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None, antialias: bool = True
) -> torch.Tensor:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for a batch ``(..., H, W)``, without rounding.

    Output size is ``ceil(H * scale)`` as in MATLAB, or ``size``; when only ``size`` is given the per-axis
    scale is ``out / in``.
    """
    h, w = img.shape[-2:]
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        oh, ow = math.ceil(h * scale), math.ceil(w * scale)
        sh = sw = float(scale)
    else:
        oh, ow = int(size[0]), int(size[1])
        sh, sw = (oh / h, ow / w) if scale is None else (float(scale), float(scale))
    wh = _matlab_weights(h, oh, sh, antialias).to(device=img.device)
    ww = _matlab_weights(w, ow, sw, antialias).to(device=img.device)
    x = img.to(torch.float64) if img.dtype != torch.float64 else img
    out = torch.matmul(torch.matmul(wh, x), ww.t())
    return out.to(img.dtype)


def bicubic_downsample(img: torch.Tensor, sf: int, matlab: bool = True) -> torch.Tensor:
    """Bicubic downsampling by ``sf``: MATLAB-style antialiased (ResShift's bicubic task), or plain
    ``F.interpolate(..., mode='bicubic', antialias=True)`` when ``matlab=False``."""
    h, w = img.shape[-2:]
    if matlab:
        return imresize_matlab(img, scale=1.0 / sf)
    return F.interpolate(img, size=(h // sf, w // sf), mode="bicubic", align_corners=False, antialias=True)
