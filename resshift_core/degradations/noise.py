"""Additive Gaussian and Poisson (shot) noise, colour or grey, batched with per-image levels.

Follows the published ``*_pt`` functions of ``basicsr/data/degradations.py``:

* Gaussian: ``noise = N(0, 1) * sigma / 255`` per pixel and channel; grey noise shares one plane
  over the three channels.
* Poisson: the image is rounded to 8-bit levels, ``v = 2 ** ceil(log2(#distinct levels))`` per image,
  ``noise = (Poisson(x * v) / v - x) * scale``; grey noise is computed on the luma
  (0.2989 R + 0.587 G + 0.114 B) and shared over the channels.

Results are clipped to [0, 1] by default (``clip=True, rounds=False`` as the pipeline calls them).
"""

from __future__ import annotations

import torch

from . import _rng


def _per_image(v, b: int, ref: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=ref.dtype)
    if t.dim() == 0:
        t = t.expand(b)
    return t.to(ref.device).view(b, 1, 1, 1)


def _finish(out: torch.Tensor, clip: bool, rounds: bool) -> torch.Tensor:
    if rounds:
        out = (out * 255.0).round() / 255.0
    if clip:
        out = out.clamp(0, 1)
    return out


def _split_fields(img: torch.Tensor, gray, colour_field, gray_field) -> torch.Tensor:
    """Colour field for the colour images, one grey plane broadcast over channels for the grey ones."""
    b, c, h, w = img.shape
    g = torch.as_tensor(gray, dtype=torch.bool).reshape(-1).expand(b).cpu()
    gi = torch.nonzero(g).flatten().tolist()
    if not gi:
        return colour_field(img)
    if len(gi) == b:
        return gray_field(img).expand(b, c, h, w)
    ci = torch.nonzero(~g).flatten().tolist()
    out = torch.empty_like(img)
    out[ci] = colour_field(img[ci])
    out[gi] = gray_field(img[gi]).expand(len(gi), c, h, w)
    return out


def gaussian_noise(img: torch.Tensor, sigma, gray, generator: torch.Generator) -> torch.Tensor:
    """The Gaussian noise field (not yet added): ``sigma`` in 8-bit units, per image or scalar."""
    b, _, h, w = img.shape
    field = _split_fields(
        img,
        gray,
        lambda x: _rng.randn_like(x, generator),
        lambda x: _rng.randn_like(x, generator, shape=(x.shape[0], 1, h, w)),
    )
    return field * (_per_image(sigma, b, img) / 255.0)


def add_gaussian_noise(img, sigma, gray, generator, clip: bool = True, rounds: bool = False) -> torch.Tensor:
    return _finish(img + gaussian_noise(img, sigma, gray, generator), clip, rounds)


def _rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    return 0.2989 * r + 0.587 * g + 0.114 * b


def _poisson_field(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``Poisson(x v) / v - x`` with x rounded to 8-bit levels and v = 2^ceil(log2(#levels)) per image."""
    b = x.shape[0]
    x = (x * 255.0).round().clamp(0, 255) / 255.0
    levels = (x * 255.0).round().long().view(b, -1) + 256 * torch.arange(b, device=x.device).view(b, 1)
    counts = torch.bincount(levels.view(-1), minlength=256 * b).view(b, 256)
    n_vals = (counts > 0).sum(dim=1).clamp_min(1).to(torch.float64)
    vals = torch.exp2(torch.ceil(torch.log2(n_vals))).to(x.dtype).view(b, 1, 1, 1)
    return _rng.poisson(x * vals, generator) / vals - x


def poisson_noise(img: torch.Tensor, scale, gray, generator: torch.Generator) -> torch.Tensor:
    """The Poisson noise field (not yet added), multiplied by ``scale`` (per image or scalar)."""
    field = _split_fields(
        img, gray, lambda x: _poisson_field(x, generator), lambda x: _poisson_field(_rgb_to_gray(x), generator)
    )
    return field * _per_image(scale, img.shape[0], img)


def add_poisson_noise(img, scale, gray, generator, clip: bool = True, rounds: bool = False) -> torch.Tensor:
    return _finish(img + poisson_noise(img, scale, gray, generator), clip, rounds)


def random_add_gaussian_noise(
    img: torch.Tensor,
    generator: torch.Generator,
    sigma_range=(1.0, 30.0),
    gray_prob: float = 0.4,
    clip: bool = True,
    rounds: bool = False,
):
    """Per image: sigma ~ U(sigma_range), grey with probability ``gray_prob``. Returns ``(out, info)``."""
    b = img.shape[0]
    sigma = _rng.uniform(generator, b, *sigma_range)
    gray = _rng.bernoulli(generator, b, gray_prob)
    out = add_gaussian_noise(img, sigma, gray, generator, clip, rounds)
    return out, {"sigma": sigma, "gray": gray}


def random_add_poisson_noise(
    img: torch.Tensor,
    generator: torch.Generator,
    scale_range=(0.05, 3.0),
    gray_prob: float = 0.4,
    clip: bool = True,
    rounds: bool = False,
):
    """Per image: scale ~ U(scale_range), grey with probability ``gray_prob``. Returns ``(out, info)``."""
    b = img.shape[0]
    scale = _rng.uniform(generator, b, *scale_range)
    gray = _rng.bernoulli(generator, b, gray_prob)
    out = add_poisson_noise(img, scale, gray, generator, clip, rounds)
    return out, {"scale": scale, "gray": gray}
