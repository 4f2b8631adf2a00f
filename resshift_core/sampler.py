"""The reverse residual-shifting chain as one small function over a model callable.

In the style of k-diffusion: the sampler knows nothing about networks, VQGANs or images.
`denoise(x_scaled, t)` returns the network's x0 estimate for the (input-normalised) state;
conditioning (LR image, mask) is bound into that callable by the caller.

Reverse step (published GaussianDiffusion.p_sample with predict_type=xstart):
    x0_hat   = denoise(x_t / s_t, t)              s_t = sqrt(kappa^2 eta_t + 1)
    x_{t-1}  = c1_t x_t + c2_t x0_hat + [t > 0] sigma_t z,   z ~ N(0, I)
with c1 = eta_{t-1}/eta_t, c2 = alpha_t/eta_t, sigma_t^2 = kappa^2 eta_{t-1} alpha_t / eta_t.
The chain starts at x_T = z_y + kappa sqrt(eta_T) z (the prior is centred on the LR latent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .schedule import Schedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


NOISE_MAP = -1  # the draw index of a one-step student's noise map (drawn before the prior)


class NoiseSource(Protocol):
    """Standard normal noise for draw `index` (0 = the prior, i + 1 = reverse step i,
    NOISE_MAP = a student's noise map input)."""

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor: ...


@dataclass
class StepInfo:
    """What a per-step callback sees: enough for progress bars, previews and cancellation."""

    index: int  # 0 .. total-1, in the order the steps run
    total: int
    timestep: int  # the trained timestep the network saw
    # The state after this step and the network's x0 estimate; None where the chain never
    # holds them whole (a streamed chain, see streamed_chain).
    x: torch.Tensor | None
    denoised: torch.Tensor | None


class ExplicitNoise:
    """Noise given as tensors: `prior` then one per reverse step (as the reference cases do),
    and a student's noise map if it takes one."""

    def __init__(self, prior: torch.Tensor, steps: Sequence[torch.Tensor], noise_map: torch.Tensor | None = None):
        self.draws = [prior, *steps]
        self.noise_map = noise_map

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor:
        if index == NOISE_MAP:
            if self.noise_map is None:
                raise ValueError("explicit noise has no noise map, and this model takes one")
            if self.noise_map.shape != like.shape:
                raise ValueError(f"the noise map has shape {tuple(self.noise_map.shape)}, expected {tuple(like.shape)}")
            return self.noise_map.to(device=like.device, dtype=like.dtype)
        if index >= len(self.draws):
            raise ValueError(f"explicit noise has {len(self.draws)} draws, draw {index} was asked for")
        draw = self.draws[index]
        if draw.shape != like.shape:
            raise ValueError(f"noise draw {index} has shape {tuple(draw.shape)}, expected {tuple(like.shape)}")
        return draw.to(device=like.device, dtype=like.dtype)


class SeededNoise:
    """One CPU generator per image, so an image's noise never depends on its batch-mates.

    Noise is drawn on the CPU in float32 and then moved, so a seed gives the same image on
    every device.
    """

    def __init__(self, seeds: Sequence[int]):
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(int(seed))
            self.generators.append(gen)

    def __call__(self, index: int, like: torch.Tensor) -> torch.Tensor:
        if like.shape[0] != len(self.generators):
            raise ValueError(f"{len(self.generators)} seeds for a batch of {like.shape[0]}")
        per_image = [torch.randn(like.shape[1:], generator=gen, dtype=torch.float32) for gen in self.generators]
        return torch.stack(per_image).to(device=like.device, dtype=like.dtype)


def _batch_timesteps(t: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), t, device=like.device, dtype=torch.long)


def prior_sample(z_y: torch.Tensor, schedule: Schedule, noise: NoiseSource, prior: str = "eta") -> torch.Tensor:
    """x_T = z_y + kappa sqrt(eta_T) z ("eta", published), or z_y + kappa z ("kappa", the
    Distilled-ResShift students)."""
    return z_y + prior_scale(schedule, prior) * noise(0, z_y)


def prior_scale(schedule: Schedule, prior: str = "eta") -> float:
    """The standard deviation of the prior around z_y (see `prior_sample`)."""
    if prior not in ("eta", "kappa"):
        raise ValueError(f"unknown prior {prior!r}: choose eta or kappa")
    return schedule.kappa * (float(schedule.sqrt_etas[-1]) if prior == "eta" else 1.0)


@torch.no_grad()
def sample(
    denoise: Denoiser,
    z_y: torch.Tensor,
    schedule: Schedule,
    noise: NoiseSource,
    *,
    normalize_input: bool = True,
    latent: bool = True,
    clip_denoised: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
    x_start: torch.Tensor | None = None,
    predict: str = "xstart",
    prior: str = "eta",
) -> torch.Tensor:
    """Run the whole reverse chain from the LR latent `z_y`; returns the x0 latent (float32).

    `predict`: what the network outputs, x0 ("xstart", every published model) or the residual
    e0 = y - x0 ("residual", the published code's ModelMeanType.RESIDUAL), so x0 = z_y - output.

    `prior`: how x_T is drawn (see `prior_sample`). `x_start` replaces the prior draw (for
    resuming, or tiled chains that share one x_T).
    A callback may raise to cancel; nothing else is kept between calls.
    """
    z_y = z_y.float()
    x = prior_sample(z_y, schedule, noise, prior) if x_start is None else x_start.float()
    total = schedule.num_steps
    for i, index in enumerate(reversed(range(total))):
        t_model = _batch_timesteps(schedule.timesteps[index], x)
        scale = schedule.input_scale(index, latent) if normalize_input else 1.0
        output = denoise(x / scale if scale != 1.0 else x, t_model)
        denoised = x0_estimate(output, z_y, predict=predict, clip=clip_denoised)
        x = posterior_step(x, denoised, index, schedule, noise, draw_index=i + 1)
        if callback is not None:
            callback(StepInfo(i, total, schedule.timesteps[index], x, denoised))
    return x


def x0_estimate(
    output: torch.Tensor, z_y: torch.Tensor, *, predict: str = "xstart", clip: bool = False
) -> torch.Tensor:
    """The network's output as an x0 estimate (see `sample`'s `predict`), clipped to [-1, 1] if `clip`."""
    denoised = output.float()
    if predict == "residual":
        denoised = z_y - denoised
    if clip:
        denoised = denoised.clamp(-1.0, 1.0)
    return denoised


def posterior_step(
    x: torch.Tensor,
    denoised: torch.Tensor,
    index: int,
    schedule: Schedule,
    noise: NoiseSource,
    draw_index: int,
) -> torch.Tensor:
    """One draw from q(x_{t-1} | x_t, x0 = denoised); no noise at t = 0 (and none drawn)."""
    mean = float(schedule.posterior_mean_coef1[index]) * x + float(schedule.posterior_mean_coef2[index]) * denoised
    if index == 0:
        return mean
    sigma = math.exp(0.5 * float(schedule.posterior_log_variance_clipped[index]))
    return mean + sigma * noise(draw_index, x)


def q_sample(
    z_start: torch.Tensor, z_y: torch.Tensor, index: torch.Tensor, schedule: Schedule, noise: torch.Tensor
) -> torch.Tensor:
    """The forward process z_t = z_0 + eta_t (z_y - z_0) + kappa sqrt(eta_t) noise (training)."""
    etas = torch.as_tensor(schedule.etas, device=z_start.device)[index].float()
    sqrt_etas = torch.as_tensor(schedule.sqrt_etas, device=z_start.device)[index].float()
    shape = (-1,) + (1,) * (z_start.ndim - 1)
    return z_start + etas.view(shape) * (z_y - z_start) + schedule.kappa * sqrt_etas.view(shape) * noise


def scale_model_input(z_t: torch.Tensor, index: torch.Tensor, schedule: Schedule, latent: bool = True) -> torch.Tensor:
    """The normalisation the network sees (published `_scale_input`), per batch element."""
    etas = torch.as_tensor(schedule.etas, device=z_t.device)[index].float()
    shape = (-1,) + (1,) * (z_t.ndim - 1)
    std = torch.sqrt(etas * schedule.kappa**2 + 1) if latent else torch.sqrt(etas) * schedule.kappa * 3 + 1
    return z_t / std.view(shape)
