"""Sampling helpers that draw only from an explicit ``torch.Generator``.

Every random number in :mod:`resshift_core.degradations` goes through these
functions (or through a ``generator=`` argument of a torch op), never through
torch's, numpy's or Python's global random state.  Draws are made on the
generator's own device and converted to Python numbers / moved afterwards, so a
CPU generator works for CUDA images and vice versa.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def gen_device(generator: torch.Generator) -> torch.device:
    return torch.device(generator.device)


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    """``n`` samples of U[low, high) as a float64 CPU tensor."""
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=gen_device(generator)).cpu()
    return low + (high - low) * u


def uniform1(generator: torch.Generator, low: float, high: float) -> float:
    return float(uniform(generator, 1, low, high)[0])


def bernoulli(generator: torch.Generator, n: int, p: float) -> torch.Tensor:
    """``n`` booleans, each True with probability ``p`` (CPU bool tensor)."""
    return uniform(generator, n, 0.0, 1.0) < p


def randint(generator: torch.Generator, n: int, low: int, high: int) -> torch.Tensor:
    """``n`` integers uniform on [low, high) (like numpy's ``randint``), CPU int64 tensor."""
    if high <= low:
        raise ValueError(f"empty range [{low}, {high})")
    return torch.randint(low, high, (n,), generator=generator, device=gen_device(generator)).cpu()


def randint1(generator: torch.Generator, low: int, high: int) -> int:
    return int(randint(generator, 1, low, high)[0])


def choice(generator: torch.Generator, n: int, probs: Sequence[float]) -> torch.Tensor:
    """``n`` indices drawn with the (unnormalised) probabilities ``probs`` (CPU int64)."""
    p = torch.as_tensor(list(probs), dtype=torch.float64)
    if (p < 0).any() or p.sum() <= 0:
        raise ValueError(f"bad probabilities {list(probs)}")
    cdf = torch.cumsum(p / p.sum(), 0)
    u = uniform(generator, n, 0.0, 1.0)
    idx = torch.searchsorted(cdf, u, right=True)
    return idx.clamp_(max=len(p) - 1)


def choice_from(generator: torch.Generator, n: int, items: Sequence, probs: Sequence[float] | None = None) -> list:
    """``n`` items of ``items`` (uniformly, or with ``probs``)."""
    probs = [1.0] * len(items) if probs is None else probs
    return [items[int(i)] for i in choice(generator, n, probs)]


def randn_like(x: torch.Tensor, generator: torch.Generator, shape: Sequence[int] | None = None) -> torch.Tensor:
    """Standard normal noise with ``x``'s dtype and device, drawn from ``generator``."""
    shape = tuple(x.shape) if shape is None else tuple(shape)
    dev = gen_device(generator)
    z = torch.randn(shape, generator=generator, device=dev, dtype=torch.float32)
    return z.to(device=x.device, dtype=x.dtype)


def poisson(rate: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson samples with the given rates, drawn from ``generator``."""
    dev = gen_device(generator)
    out = torch.poisson(rate.detach().to(device=dev, dtype=torch.float32), generator=generator)
    return out.to(device=rate.device, dtype=rate.dtype)
