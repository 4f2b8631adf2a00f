"""Blind face restoration degradation (GFPGAN-style), as ResShift's face training uses it
(published ``datapipe/ffhq_degradation_dataset.py`` with ``configs/faceir_gfpgan512_lpips.yaml``):

blur (iso/aniso Gaussian, 41x41, sigma 0.1..15) -> bilinear downsample by U(0.8, 32)
-> Gaussian colour noise sigma U(0, 20) -> JPEG quality int(U(30, 100)) (published: cv2/libjpeg, emulated
here with integer tables and triangle chroma upsampling) -> bilinear upsample back to the
input size -> with probability 0.01 greyscale (also the GT, ``gt_gray``) -> clamp and round.
Everything per image; the output has the input's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import _rng
from .jpeg import jpeg_compress
from .kernels import BlurKernelConfig, filter2d, sample_blur_kernels
from .noise import add_gaussian_noise
from .resize import interpolate


def _face_kernel_config() -> BlurKernelConfig:
    return BlurKernelConfig(
        kernel_sizes=(41,),
        pad_to=41,
        kernel_list=("iso", "aniso"),
        kernel_prob=(0.5, 0.5),
        sinc_prob=0.0,
        sigma_range=(0.1, 15.0),
    )


@dataclass
class FaceDegradationConfig:
    """Face degradation settings; defaults = published ``faceir_gfpgan512_lpips.yaml``."""

    blur: BlurKernelConfig = field(default_factory=_face_kernel_config)  # 41x41 iso/aniso Gaussian, sigma 0.1..15
    downsample_range: tuple[float, float] = (0.8, 32.0)  # downsampling factor range (bilinear)
    noise_range: tuple[float, float] | None = (0.0, 20.0)  # Gaussian colour-noise sigma range, 8-bit units (None: off)
    jpeg_range: tuple[float, float] | None = (30.0, 100.0)  # JPEG quality range (None: off)
    gray_prob: float = 0.01  # probability of turning the LQ image grey
    gt_gray: bool = True  # when the LQ is made grey, make the GT grey too
    integer_quality: bool = True  # published encodes with cv2 at int(quality)
    jpeg_integer_tables: bool = True  # libjpeg-style integer quantisation tables (published uses cv2, i.e. libjpeg)
    jpeg_fancy_upsampling: bool = True  # libjpeg-style triangle chroma upsampling (as cv2 decodes)


def _gray3(x: torch.Tensor) -> torch.Tensor:
    y = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    return y.expand(-1, 3, -1, -1).contiguous()


def sample_face_params(
    generator: torch.Generator, batch_size: int, config: FaceDegradationConfig | None = None
) -> dict:
    """All per-image random choices of the face degradation (noise fields are drawn when applied)."""
    cfg = config or FaceDegradationConfig()
    g, n = generator, batch_size
    kernel, info = sample_blur_kernels(g, n, cfg.blur)
    scale = _rng.uniform(g, n, *cfg.downsample_range)
    sigma = _rng.uniform(g, n, *(cfg.noise_range or (0.0, 0.0)))
    quality = _rng.uniform(g, n, *(cfg.jpeg_range or (100.0, 100.0)))
    if cfg.integer_quality:
        quality = quality.floor()
    gray = _rng.bernoulli(g, n, cfg.gray_prob)
    return {
        "kernel": kernel,
        "kernel_info": info,
        "downsample": scale,
        "noise_sigma": sigma,
        "jpeg_quality": quality,
        "gray": gray,
    }


@torch.no_grad()
def degrade_face_with_params(
    hq: torch.Tensor, generator: torch.Generator, config: FaceDegradationConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """``(lq, gt, params)``; ``gt`` is ``hq`` except for images turned grey (``gt_gray``)."""
    cfg = config or FaceDegradationConfig()
    if hq.dim() != 4 or hq.shape[1] != 3 or not hq.is_floating_point():
        raise ValueError(f"expected a float (B, 3, H, W) batch, got {tuple(hq.shape)} {hq.dtype}")
    b, _, h, w = hq.shape
    p = sample_face_params(generator, b, cfg)
    blurred = filter2d(hq, p["kernel"])
    outs = []
    for i in range(b):  # each image is downsampled to its own size
        s = float(p["downsample"][i])
        x = interpolate(blurred[i : i + 1], "bilinear", size=(int(h // s), int(w // s)))
        if cfg.noise_range is not None:
            x = add_gaussian_noise(x, p["noise_sigma"][i : i + 1], False, generator)
        if cfg.jpeg_range is not None:
            x = jpeg_compress(
                x.clamp(0, 1), p["jpeg_quality"][i : i + 1], cfg.jpeg_integer_tables, cfg.jpeg_fancy_upsampling
            )
        outs.append(interpolate(x, "bilinear", size=(h, w)))
    lq = torch.cat(outs, 0)
    gt = hq
    gray = p["gray"].to(hq.device).view(b, 1, 1, 1)
    if bool(gray.any()):
        lq = torch.where(gray, _gray3(lq), lq)
        if cfg.gt_gray:
            gt = torch.where(gray, _gray3(hq), hq)
    lq = torch.clamp((lq * 255.0).round(), 0, 255) / 255.0
    return lq, gt, p


def degrade_face(
    hq: torch.Tensor, generator: torch.Generator, config: FaceDegradationConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Face HQ batch ``(B, 3, H, W)`` in [0, 1] -> ``(lq, gt)``, both ``(B, 3, H, W)``."""
    lq, gt, _ = degrade_face_with_params(hq, generator, config)
    return lq, gt
