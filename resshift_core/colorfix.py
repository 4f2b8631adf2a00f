"""Colour correction of a restored image against its input, as StableSR/SUPIR-style upscalers offer.

Diffusion restorers can drift in colour (a slight cast, shifted contrast). Both fixes take the
colours from the input (upsampled bicubically to the output size) and keep the output's detail:

* ``adain``: per image and channel, the output's mean and standard deviation are replaced by the
  reference's (adaptive instance normalisation).
* ``wavelet``: the image is split into a low-frequency part (a few levels of a dilated 3x3 blur,
  a stationary "a trous" wavelet) and the high-frequency rest; the result is the output's high
  frequencies plus the reference's low frequencies.

Plain tensors: B x 3 x H x W in [0, 1]; the result has the output's size and is clamped to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

METHODS = ("none", "wavelet", "adain")
WAVELET_LEVELS = 5
# Rows (and columns) an output pixel of the wavelet fix depends on, either side: the blurs'
# radii 1 + 2 + ... + 2**(levels-1). Row bands fixed with this much context are exact.
WAVELET_REACH = 2**WAVELET_LEVELS - 1

_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def _check(image: torch.Tensor, name: str) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise InputError(f"{name} must be a B x 3 x H x W batch, got shape {tuple(image.shape)}")


def reference_like(reference: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """The reference (e.g. the low-resolution input) bicubically resized to the output's size."""
    _check(reference, "reference")
    _check(output, "output")
    if reference.shape[0] != output.shape[0]:
        if reference.shape[0] != 1:
            raise InputError(
                f"the reference batch has {reference.shape[0]} images, the output {output.shape[0]}: "
                "give one reference per image (or one for all)"
            )
        reference = reference.expand(output.shape[0], -1, -1, -1)
    reference = reference.to(device=output.device, dtype=torch.float32)
    if reference.shape[-2:] != output.shape[-2:]:
        reference = F.interpolate(reference, size=output.shape[-2:], mode="bicubic", align_corners=False)
    return reference.clamp(0, 1)


def adain_color_fix(output: torch.Tensor, reference: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match each channel's mean and standard deviation of `output` to the reference's."""
    ref = reference_like(reference, output)
    out = output.float()
    out_mean = out.mean(dim=(-2, -1), keepdim=True)
    out_std = out.std(dim=(-2, -1), keepdim=True, unbiased=False)
    ref_mean = ref.mean(dim=(-2, -1), keepdim=True)
    ref_std = ref.std(dim=(-2, -1), keepdim=True, unbiased=False)
    fixed = (out - out_mean) / (out_std + eps) * ref_std + ref_mean
    return fixed.clamp(0, 1).to(output.dtype)


def wavelet_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    """The 3x3 binomial blur with taps `radius` pixels apart (replicate padding)."""
    channels = image.shape[1]
    kernel = _KERNEL.to(device=image.device, dtype=image.dtype).expand(channels, 1, 3, 3)
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel, groups=channels, dilation=radius)


def wavelet_decomposition(image: torch.Tensor, levels: int = WAVELET_LEVELS) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low): `low` after `levels` blurs of doubling radius, `high` = image - low."""
    low = image
    high = torch.zeros_like(image)
    for level in range(levels):
        blurred = wavelet_blur(low, 2**level)
        high = high + (low - blurred)
        low = blurred
    return high, low


def wavelet_color_fix(output: torch.Tensor, reference: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """The output's high frequencies on the reference's low frequencies."""
    ref = reference_like(reference, output)
    out = output.float()
    high, _ = wavelet_decomposition(out, levels)
    _, ref_low = wavelet_decomposition(ref, levels)
    return (high + ref_low).clamp(0, 1).to(output.dtype)


def color_fix(output: torch.Tensor, reference: torch.Tensor, method: str = "none") -> torch.Tensor:
    """Apply `method` ("none", "wavelet" or "adain"); "none" returns `output` itself."""
    if method == "none":
        return output
    if method == "wavelet":
        return wavelet_color_fix(output, reference)
    if method == "adain":
        return adain_color_fix(output, reference)
    raise InputError(f"unknown colour fix {method!r}; choose one of {', '.join(METHODS)}")


__all__ = [
    "METHODS",
    "WAVELET_REACH",
    "adain_color_fix",
    "color_fix",
    "reference_like",
    "wavelet_color_fix",
    "wavelet_decomposition",
]
