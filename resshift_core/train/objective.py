"""The ResShift training objective (published `training_losses`): draw t, diffuse x0 towards y,
and score the network's x0 with the MSE (plus an optional LPIPS term).

Pure functions of their inputs: the network is any callable, the randomness comes in as `t`
and `noise` (or a generator), so a test can compute the loss by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from ..sampler import q_sample, scale_model_input
from ..schedule import Schedule
from .errors import ConfigError

# network(input, t, cond, mask) -> the x0 (or residual) prediction
Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


class Loss(NamedTuple):
    loss: torch.Tensor  # what is back-propagated
    terms: dict[str, torch.Tensor]  # its parts, detached: "mse", and "lpips" when used


def resshift_loss(
    network: Network,
    x0: torch.Tensor,
    y: torch.Tensor,
    cond: torch.Tensor,
    schedule: Schedule,
    t: torch.Tensor,
    noise: torch.Tensor,
    *,
    predict: str = "xstart",
    normalize_input: bool = True,
    latent: bool = True,
    mask: torch.Tensor | None = None,
    lpips: Callable[[torch.Tensor], torch.Tensor] | None = None,
    lpips_weight: float = 0.0,
) -> Loss:
    """MSE between the network's x0 at chain step t and the true x0.

    z_t = x0 + eta_t (y - x0) + kappa sqrt(eta_t) noise is the network's input (divided by the
    preset's normalisation when `normalize_input`). A residual model (predict="residual",
    published RESIDUAL) outputs e0 = y - x0, scored as x0 = y - output. `lpips(x0_pred)` (a
    perceptual distance to the target image), when given, adds `lpips_weight` times its value."""
    z_t = q_sample(x0, y, t, schedule, noise)
    inp = scale_model_input(z_t, t, schedule, latent=latent) if normalize_input else z_t
    out = network(inp, t, cond, mask).float()
    x0_pred = y - out if predict == "residual" else out
    mse = ((x0_pred - x0) ** 2).mean()
    loss, terms = mse, {"mse": mse.detach()}
    if lpips is not None:
        p = lpips(x0_pred)
        loss = loss + lpips_weight * p
        terms["lpips"] = p.detach()
    return Loss(loss, terms)


def chain_step_weights(weights: Sequence[float], steps: int) -> torch.Tensor | None:
    """train.t_weights as a tensor (None: uniform); they need one non-negative weight per step."""
    if not weights:
        return None
    w = torch.as_tensor([float(v) for v in weights], dtype=torch.float64)
    if len(w) != steps or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ConfigError(
            "train.t_weights",
            f"= {list(weights)}: need {steps} non-negative weights, not all zero "
            f"(the preset's chain has {steps} steps)",
            f"for example train.t_weights = {[1] * steps}",
        )
    return w


def draw_t(
    n: int, steps: int, g: torch.Generator, weights: torch.Tensor | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """`n` chain steps to train on: uniform over 0..steps-1 (the paper), or by `weights`."""
    if weights is None:
        return torch.randint(0, steps, (n,), generator=g, device=device)
    return torch.multinomial(weights.to(device), n, replacement=True, generator=g)


__all__ = ["Loss", "Network", "chain_step_weights", "draw_t", "resshift_loss"]
