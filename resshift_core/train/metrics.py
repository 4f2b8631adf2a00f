"""PSNR and SSIM on the Y channel (ITU-R BT.601, as the published evaluation / BasicSR)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """B3HW in [0, 1] -> B1HW Y in [16, 235] (8-bit scale, float64)."""
    img = img.double()
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True) + 16.0


def _prep(a: torch.Tensor, b: torch.Tensor, crop_border: int, quantize: bool):
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() == 3:
        a, b = a[None], b[None]
    if quantize:  # compare the 8-bit images that would be saved
        a, b = (a.clamp(0, 1) * 255).round() / 255, (b.clamp(0, 1) * 255).round() / 255
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if crop_border:
        c = crop_border
        ya, yb = ya[..., c:-c, c:-c], yb[..., c:-c, c:-c]
    return ya, yb


def psnr_y(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """Per-image PSNR (dB) of the Y channel; inputs B3HW (or 3HW) in [0, 1]."""
    ya, yb = _prep(a, b, crop_border, quantize)
    mse = ((ya - yb) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_y(a: torch.Tensor, b: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """Per-image SSIM of the Y channel (11x11 Gaussian window, sigma 1.5, valid region, as BasicSR)."""
    ya, yb = _prep(a, b, crop_border, quantize)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = _gaussian_window(device=ya.device)
    mu_a, mu_b = F.conv2d(ya, w), F.conv2d(yb, w)
    s_aa = F.conv2d(ya * ya, w) - mu_a**2
    s_bb = F.conv2d(yb * yb, w) - mu_b**2
    s_ab = F.conv2d(ya * yb, w) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return m.mean(dim=(1, 2, 3))
