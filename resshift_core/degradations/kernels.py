"""Blur kernels (RealESRGAN family), batched 2-D filtering and USM sharpening, all in torch.

Kernel families, as in the published ``basicsr/data/degradations.py``:

* ``iso`` / ``aniso``           -- bivariate Gaussian ``exp(-q/2)``
* ``generalized_iso`` / ``_aniso`` -- generalised Gaussian ``exp(-q**beta / 2)``
* ``plateau_iso`` / ``_aniso``  -- plateau ``1 / (1 + q**beta)``
* ``sinc``                      -- circular low-pass ``wc * J1(wc r) / (2 pi r)``

where ``q = [x y] Sigma^-1 [x y]^T`` on an integer grid centred on the kernel
(``x`` the column offset, ``y`` the row offset) and
``Sigma = R(theta) diag(sigma_x^2, sigma_y^2) R(theta)^T``.  Every kernel is
normalised to sum 1 over its ``k x k`` support.  All are non-negative except the
sinc kernel, which has negative side lobes (as published).

Kernels of different sizes in one batch are stored zero-padded (centred) to a
common ``pad_to x pad_to`` so that a whole batch is filtered by one grouped conv.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import _rng

KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")
_CODE = {name: i for i, name in enumerate(KERNEL_TYPES)}
_SINC = _CODE["sinc"]


def _odd_range(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(range(lo, hi + 1, 2))


@dataclass
class BlurKernelConfig:
    """How one order's blur kernel is sampled (defaults: ResShift's first-order real-world x4 kernel)."""

    # odd sizes drawn uniformly; ResShift uses range(3, blur_kernel_size, 2)
    kernel_sizes: tuple[int, ...] = _odd_range(3, 19)
    pad_to: int = 21  # every kernel is zero-padded to this size (published ``blur_kernel_size``)
    # Gaussian-family types
    kernel_list: tuple[str, ...] = (
        "iso",
        "aniso",
        "generalized_iso",
        "generalized_aniso",
        "plateau_iso",
        "plateau_aniso",
    )
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # probability of each entry of kernel_list
    sinc_prob: float = 0.1  # probability that the kernel is a sinc (circular low-pass) instead
    sigma_range: tuple[float, float] = (0.2, 3.0)  # sigma_x / sigma_y range (pixels), published ``blur_sigma``
    rotation_range: tuple[float, float] = (-math.pi, math.pi)  # rotation of anisotropic kernels (radians)
    betag_range: tuple[float, float] = (0.5, 4.0)  # shape beta of generalised Gaussians: U(lo,1) or U(1,hi), 50/50
    betap_range: tuple[float, float] = (1.0, 2.0)  # shape beta of plateau kernels: U(lo,1) or U(1,hi), 50/50
    sinc_omega_small: tuple[float, float] = (math.pi / 3, math.pi)  # sinc cutoff (rad) for sizes < sinc_size_threshold
    sinc_omega_large: tuple[float, float] = (math.pi / 5, math.pi)  # sinc cutoff (rad) for larger sizes
    sinc_size_threshold: int = 13  # size at which the wider cutoff range starts

    def __post_init__(self):
        self.kernel_sizes = tuple(int(k) for k in self.kernel_sizes)
        if any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes must be odd and positive, got {self.kernel_sizes}")
        if self.pad_to % 2 == 0 or self.pad_to < max(self.kernel_sizes):
            raise ValueError(f"pad_to must be odd and >= the largest kernel size, got {self.pad_to}")
        unknown = set(self.kernel_list) - set(KERNEL_TYPES[:-1])
        if unknown or len(self.kernel_list) != len(self.kernel_prob):
            raise ValueError(f"bad kernel_list/kernel_prob: {self.kernel_list} / {self.kernel_prob}")


def second_order_kernel_config() -> BlurKernelConfig:
    """ResShift's second-order kernel: sizes 3..13 padded to 15, sigma in [0.2, 1.5]."""
    return BlurKernelConfig(kernel_sizes=_odd_range(3, 13), pad_to=15, sigma_range=(0.2, 1.5))


# --------------------------------------------------------------------------- batched kernel math
def _grid(size: int, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    ax = torch.arange(size, dtype=dtype, device=device) - (size // 2)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def _support_mask(pad_to: int, sizes: torch.Tensor) -> torch.Tensor:
    xx, yy = _grid(pad_to)
    half = (sizes.to(torch.float64) // 2).view(-1, 1, 1)
    return (xx.abs() <= half) & (yy.abs() <= half)


def _normalise(k: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    k = torch.where(support, k, torch.zeros_like(k))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def gaussian_family_kernels(pad_to: int, sizes, sigma_x, sigma_y, theta, beta, plateau) -> torch.Tensor:
    """Batched Gaussian / generalised-Gaussian / plateau kernels (float64, ``(B, pad_to, pad_to)``).

    ``sizes`` (B,) odd supports; ``sigma_x, sigma_y, theta, beta`` (B,) floats; ``plateau`` (B,) bool
    selects ``1/(1+q^beta)`` instead of ``exp(-q^beta/2)``; ``beta = 1`` gives the plain Gaussian.
    """

    def t(v) -> torch.Tensor:  # (B,) values -> (B, 1, 1) float64, to broadcast over the kernel grid
        return torch.as_tensor(v, dtype=torch.float64).reshape(-1, 1, 1)

    sx, sy, th, be = t(sigma_x), t(sigma_y), t(theta), t(beta)
    pl = torch.as_tensor(plateau, dtype=torch.bool).reshape(-1, 1, 1)
    c, s = torch.cos(th), torch.sin(th)
    d1, d2 = 1.0 / sx**2, 1.0 / sy**2
    a = c * c * d1 + s * s * d2  # Sigma^-1 = R diag(d1, d2) R^T
    b = c * s * (d1 - d2)
    cc = s * s * d1 + c * c * d2
    xx, yy = _grid(pad_to)
    q = a * xx * xx + 2 * b * xx * yy + cc * yy * yy
    qb = q.clamp_min(0).pow(be)
    k = torch.where(pl, 1.0 / (qb + 1.0), torch.exp(-0.5 * qb))
    sizes = torch.as_tensor(sizes).reshape(-1)
    return _normalise(k, _support_mask(pad_to, sizes))


def sinc_kernels(pad_to: int, sizes, omega) -> torch.Tensor:
    """Batched circular low-pass (2-D sinc) kernels, float64 ``(B, pad_to, pad_to)``; may be negative."""
    w = torch.as_tensor(omega, dtype=torch.float64).reshape(-1, 1, 1)
    xx, yy = _grid(pad_to)
    r = torch.sqrt(xx * xx + yy * yy)
    r_safe = torch.where(r > 0, r, torch.ones_like(r))
    k = w * torch.special.bessel_j1(w * r_safe) / (2 * math.pi * r_safe)
    k = torch.where(r > 0, k, w * w / (4 * math.pi))
    sizes = torch.as_tensor(sizes).reshape(-1)
    return _normalise(k, _support_mask(pad_to, sizes))


def pulse_kernels(n: int, pad_to: int) -> torch.Tensor:
    """Identity (delta) kernels ``(n, pad_to, pad_to)``: filtering with them changes nothing."""
    k = torch.zeros(n, pad_to, pad_to, dtype=torch.float64)
    k[:, pad_to // 2, pad_to // 2] = 1.0
    return k


# --------------------------------------------------------------------------- single-kernel helpers
def bivariate_gaussian(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0
) -> torch.Tensor:
    """One (an)isotropic Gaussian kernel ``(k, k)``; ``sigma_y=None`` means isotropic."""
    sy = sigma_x if sigma_y is None else sigma_y
    return gaussian_family_kernels(kernel_size, [kernel_size], [sigma_x], [sy], [theta], [1.0], [False])[0]


def bivariate_generalized_gaussian(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    sy = sigma_x if sigma_y is None else sigma_y
    return gaussian_family_kernels(kernel_size, [kernel_size], [sigma_x], [sy], [theta], [beta], [False])[0]


def bivariate_plateau(
    kernel_size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0, beta: float = 1.0
) -> torch.Tensor:
    sy = sigma_x if sigma_y is None else sigma_y
    return gaussian_family_kernels(kernel_size, [kernel_size], [sigma_x], [sy], [theta], [beta], [True])[0]


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> torch.Tensor:
    """One sinc kernel of support ``kernel_size`` (cutoff in radians, pi = Nyquist), optionally zero-padded."""
    size = max(kernel_size, pad_to)
    return sinc_kernels(size, [kernel_size], [cutoff])[0]


# --------------------------------------------------------------------------- random sampling
def sample_blur_kernels(generator: torch.Generator, n: int, cfg: BlurKernelConfig) -> tuple[torch.Tensor, dict]:
    """Draw ``n`` independent blur kernels (one per image) following ``cfg``.

    Returns ``(kernels, info)``: kernels float32 ``(n, cfg.pad_to, cfg.pad_to)`` on the CPU, and
    ``info`` with per-kernel ``type`` (list of names), ``size``, ``sigma_x``, ``sigma_y``, ``theta``,
    ``beta``, ``omega`` (tensors; entries that do not apply to a kernel's type are NaN).
    A fixed number of numbers is drawn per call, whatever the outcomes.
    """
    g = generator
    sizes = torch.as_tensor(cfg.kernel_sizes)[_rng.choice(g, n, [1.0] * len(cfg.kernel_sizes))]
    is_sinc = _rng.bernoulli(g, n, cfg.sinc_prob)
    family = torch.as_tensor([_CODE[t] for t in cfg.kernel_list])[_rng.choice(g, n, cfg.kernel_prob)]
    sig_x = _rng.uniform(g, n, *cfg.sigma_range)
    sig_y = _rng.uniform(g, n, *cfg.sigma_range)
    theta = _rng.uniform(g, n, *cfg.rotation_range)
    below_one = _rng.bernoulli(g, n, 0.5)
    u_beta = _rng.uniform(g, n, 0.0, 1.0)
    u_omega = _rng.uniform(g, n, 0.0, 1.0)

    iso = (family == _CODE["iso"]) | (family == _CODE["generalized_iso"]) | (family == _CODE["plateau_iso"])
    plateau = (family == _CODE["plateau_iso"]) | (family == _CODE["plateau_aniso"])
    generalized = (family == _CODE["generalized_iso"]) | (family == _CODE["generalized_aniso"])
    sig_y = torch.where(iso, sig_x, sig_y)
    theta = torch.where(iso, torch.zeros_like(theta), theta)

    def split_beta(lo, hi):
        return torch.where(below_one, lo + (1.0 - lo) * u_beta, 1.0 + (hi - 1.0) * u_beta)

    beta = torch.ones(n, dtype=torch.float64)
    beta = torch.where(generalized, split_beta(*cfg.betag_range), beta)
    beta = torch.where(plateau, split_beta(*cfg.betap_range), beta)
    small = sizes < cfg.sinc_size_threshold
    lo = torch.where(small, torch.tensor(cfg.sinc_omega_small[0]), torch.tensor(cfg.sinc_omega_large[0])).double()
    hi = torch.where(small, torch.tensor(cfg.sinc_omega_small[1]), torch.tensor(cfg.sinc_omega_large[1])).double()
    omega = lo + (hi - lo) * u_omega

    k_gauss = gaussian_family_kernels(cfg.pad_to, sizes, sig_x, sig_y, theta, beta, plateau)
    k_sinc = sinc_kernels(cfg.pad_to, sizes, omega)
    kernels = torch.where(is_sinc.view(-1, 1, 1), k_sinc, k_gauss).float()

    codes = torch.where(is_sinc, torch.full_like(family, _SINC), family)
    nan = torch.full((n,), float("nan"), dtype=torch.float64)
    info = {
        "type": [KERNEL_TYPES[int(c)] for c in codes],
        "size": sizes.clone(),
        "sigma_x": torch.where(is_sinc, nan, sig_x),
        "sigma_y": torch.where(is_sinc, nan, sig_y),
        "theta": torch.where(is_sinc, nan, theta),
        "beta": torch.where(is_sinc | ~(plateau | generalized), nan, beta),
        "omega": torch.where(is_sinc, omega, nan),
    }
    return kernels, info


def sample_final_sinc(
    generator: torch.Generator,
    n: int,
    prob: float,
    kernel_sizes: Sequence[int],
    omega_range: tuple[float, float],
    pad_to: int,
) -> tuple[torch.Tensor, dict]:
    """The final sinc filter: with probability ``prob`` a sinc kernel, else the identity pulse."""
    g = generator
    use = _rng.bernoulli(g, n, prob)
    sizes = torch.as_tensor(tuple(kernel_sizes))[_rng.choice(g, n, [1.0] * len(kernel_sizes))]
    omega = _rng.uniform(g, n, *omega_range)
    k = torch.where(use.view(-1, 1, 1), sinc_kernels(pad_to, sizes, omega), pulse_kernels(n, pad_to))
    nan = torch.full((n,), float("nan"), dtype=torch.float64)
    info = {
        "applied": use.clone(),
        "size": torch.where(use, sizes, torch.ones_like(sizes)),
        "omega": torch.where(use, omega, nan),
    }
    return k.float(), info


# --------------------------------------------------------------------------- filtering
def filter2d(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each image of ``img`` (B, C, H, W) with its own kernel (like ``cv2.filter2D``).

    ``kernel`` is ``(k, k)``, ``(1, k, k)`` (shared) or ``(B, k, k)`` (per image), ``k`` odd.
    Borders are reflected without repeating the edge (cv2's BORDER_REFLECT_101); an image too small
    for that falls back to edge replication.
    """
    b, c, h, w = img.shape
    kernel = kernel.to(device=img.device, dtype=img.dtype)
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0)
    k = kernel.shape[-1]
    if k % 2 != 1 or kernel.shape[-2] != k:
        raise ValueError(f"kernel must be square with odd size, got {tuple(kernel.shape)}")
    p = k // 2
    mode = "reflect" if (p < h and p < w) else "replicate"
    x = F.pad(img, (p, p, p, p), mode=mode)
    if kernel.shape[0] == 1:
        out = F.conv2d(x.reshape(b * c, 1, h + 2 * p, w + 2 * p), kernel.view(1, 1, k, k))
    else:
        if kernel.shape[0] != b:
            raise ValueError(f"{kernel.shape[0]} kernels for a batch of {b}")
        wgt = kernel.view(b, 1, k, k).repeat_interleave(c, dim=0)
        out = F.conv2d(x.reshape(1, b * c, h + 2 * p, w + 2 * p), wgt, groups=b * c)
    return out.view(b, c, h, w)


def _cv2_gaussian_1d(ksize: int, sigma: float = 0.0) -> torch.Tensor:
    if sigma <= 0:
        sigma = 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel's default
    ax = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    k = torch.exp(-(ax**2) / (2 * sigma**2))
    return k / k.sum()


def usm_sharp(img: torch.Tensor, weight: float = 0.5, threshold: float = 10.0, radius: int = 50) -> torch.Tensor:
    """Unsharp-mask sharpening (published ``USMSharp``): ``I + w (I - blur(I))`` blended by a soft mask.

    The mask marks pixels whose residual exceeds ``threshold`` 8-bit levels; blur is a cv2-style
    Gaussian of size ``radius`` (made odd).  Published configs do not use it (``use_sharp: False``).
    """
    radius = radius + 1 if radius % 2 == 0 else radius
    k1 = _cv2_gaussian_1d(radius)
    kernel = torch.outer(k1, k1).unsqueeze(0)
    blur = filter2d(img, kernel)
    residual = img - blur
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft = filter2d(mask, kernel)
    sharp = (img + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img
