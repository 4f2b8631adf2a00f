"""JPEG compression artefacts in torch (a DiffJPEG-style encode + decode), batched, per-image quality.

Steps (baseline JPEG, as the published ``basicsr/utils/diffjpeg.py``): pad to a multiple of 16,
RGB -> YCbCr (JFIF), 4:2:0 chroma subsampling by 2x2 averaging, 8x8 orthonormal DCT of
level-shifted blocks, division by the standard (Annex K) quantisation tables scaled by the IJG
quality factor, rounding, and the inverse of every step; output clipped to [0, 1].

Quality may be fractional (the pipeline samples it from a continuous range, as published).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Standard JPEG (ITU-T T.81 Annex K) tables; row = vertical frequency, column = horizontal frequency.
_Y_TABLE = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]
_C_TABLE = [[99.0] * 8 for _ in range(8)]
for _i, _row in enumerate([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]):
    _C_TABLE[_i][:4] = _row

_RGB2YCC = [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
_YCC2RGB = [[1.0, 0.0, 1.402], [1.0, -0.344136, -0.714136], [1.0, 1.772, 0.0]]


def _dct_matrix(dtype, device) -> torch.Tensor:
    d = torch.zeros(8, 8, dtype=torch.float64)
    for u in range(8):
        c = math.sqrt(1 / 8) if u == 0 else math.sqrt(2 / 8)
        for x in range(8):
            d[u, x] = c * math.cos((2 * x + 1) * u * math.pi / 16)
    return d.to(dtype=dtype, device=device)


def quality_to_factor(quality) -> torch.Tensor:
    """IJG scaling of the base tables: ``5000/q`` below 50, ``200 - 2q`` from 50, divided by 100."""
    q = torch.as_tensor(quality, dtype=torch.float64).clamp(1, 100)
    return torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q) / 100.0


def _tables(quality, b: int, dtype, device, integer_tables: bool):
    q = torch.as_tensor(quality, dtype=torch.float64).detach().cpu()
    q = q.expand(b) if q.dim() == 0 else q.reshape(-1)
    if q.shape[0] != b:
        raise ValueError(f"{q.shape[0]} qualities for a batch of {b}")
    f = quality_to_factor(q).view(b, 1, 1, 1, 1)
    out = []
    for base in (_Y_TABLE, _C_TABLE):
        t = torch.tensor(base, dtype=torch.float64) * f
        if integer_tables:  # libjpeg: floor((base * percent + 50) / 100)
            t = torch.floor((torch.tensor(base, dtype=torch.float64) * f * 100 + 50) / 100)
        # >= 1 avoids division by zero at quality 100; <= 255 is baseline JPEG's limit
        out.append(t.clamp(1, 255).to(dtype=dtype, device=device))
    return out


def _code_plane(plane: torch.Tensor, table: torch.Tensor, kron: torch.Tensor) -> torch.Tensor:
    """DCT, quantise, round, dequantise, inverse DCT of one plane ``(B, H, W)`` (H, W multiples of 8).

    Blocks are flattened to 64-vectors so the separable 2-D DCT ``D X D^T`` is one GEMM with
    ``kron(D, D)``; ``table`` is the flattened ``(B, 1, 1, 64)`` quantisation table.
    """
    b, h, w = plane.shape
    blocks = (plane - 128.0).view(b, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h // 8, w // 8, 64)
    coef = blocks @ kron.t()
    coef = torch.round(coef / table) * table
    blocks = coef @ kron
    return blocks.view(b, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(b, h, w) + 128.0


def jpeg_compress(
    img: torch.Tensor, quality, integer_tables: bool = False, fancy_upsampling: bool = False
) -> torch.Tensor:
    """JPEG-compress and decode ``img`` (B, 3, H, W) in [0, 1] at ``quality`` (scalar or (B,) in [1, 100]).

    ``integer_tables`` rounds the scaled tables as libjpeg does (published DiffJPEG keeps them fractional);
    ``fancy_upsampling`` upsamples chroma with libjpeg's triangle filter instead of the published
    pixel replication.  Not differentiable through the rounding.
    """
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W), got {tuple(img.shape)}")
    b, _, h, w = img.shape
    dtype = img.dtype if img.dtype in (torch.float32, torch.float64) else torch.float32
    x = img.to(dtype) * 255.0
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:  # libjpeg fills partial MCUs by replicating the last row / column
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    m = torch.tensor(_RGB2YCC, dtype=dtype, device=x.device)
    ycc = (m @ x.reshape(b, 3, -1)).view_as(x)
    y = ycc[:, 0]
    cbcr = F.avg_pool2d(ycc[:, 1:], 2) + 128.0
    ty, tc = (t.reshape(b, 1, 1, 64) for t in _tables(quality, b, dtype, x.device, integer_tables))
    d = _dct_matrix(torch.float64, None)
    kron = torch.kron(d, d).to(dtype=dtype, device=x.device)  # kron[u*8+v, x*8+y] = D[u,x] D[v,y]
    y = _code_plane(y, ty, kron)
    cb = _code_plane(cbcr[:, 0], tc, kron)
    cr = _code_plane(cbcr[:, 1], tc, kron)
    c = torch.stack([cb, cr], dim=1) - 128.0
    if fancy_upsampling:
        c = F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False)
    else:
        c = F.interpolate(c, scale_factor=2, mode="nearest")
    ycc = torch.cat([y.unsqueeze(1), c], dim=1)
    mi = torch.tensor(_YCC2RGB, dtype=dtype, device=x.device)
    rgb = (mi @ ycc.reshape(b, 3, -1)).view_as(ycc)
    rgb = rgb[:, :, :h, :w].clamp(0, 255) / 255.0
    return rgb.to(img.dtype)
