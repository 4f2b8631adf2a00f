"""The training objective as a pure function: hand-computed losses on a toy network and schedule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from resshift_core.schedule import Schedule
from resshift_core.train import ConfigError
from resshift_core.train.objective import chain_step_weights, draw_t, resshift_loss

# Two chain steps with round numbers: eta = (0.25, 1.0), kappa 0.5.
SCHEDULE = Schedule(kappa=0.5, sqrt_etas=np.array([0.5, 1.0]), timesteps=(0, 1))
X0 = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1)
Y = torch.tensor([2.0, 3.0]).view(2, 1, 1, 1)
NOISE = torch.tensor([1.0, -2.0]).view(2, 1, 1, 1)
T = torch.tensor([1, 0])


def doubling(inp, t, cond, mask):
    """A toy network: twice its input, minus its conditioning (zeros here)."""
    return 2 * inp - cond


def test_pixel_space_x0_loss_by_hand():
    # z_t = x0 + eta (y - x0) + kappa sqrt(eta) noise: image 0 (t=1): 0 + 2 + 0.5 = 2.5,
    # image 1 (t=0): 1 + 0.5 - 0.5 = 1. Pixel normalisation sqrt(eta) kappa 3 + 1: 2.5 and 1.75,
    # so the network sees 1 and 4/7 and returns 2 and 8/7; squared errors 4 and 1/49.
    loss, terms = resshift_loss(doubling, X0, Y, torch.zeros_like(Y), SCHEDULE, T, NOISE, latent=False)
    assert float(loss) == pytest.approx((4 + 1 / 49) / 2, rel=1e-6)
    assert set(terms) == {"mse"} and float(terms["mse"]) == pytest.approx(float(loss))


def test_residual_prediction_is_scored_as_y_minus_output():
    # x0 = y - output: 2 - 2 = 0 (exact) and 3 - 8/7 = 13/7 (error 6/7)
    loss, _ = resshift_loss(doubling, X0, Y, torch.zeros_like(Y), SCHEDULE, T, NOISE, latent=False, predict="residual")
    assert float(loss) == pytest.approx((36 / 49) / 2, rel=1e-6)


def test_latent_normalisation_and_no_normalisation():
    # latent: sqrt(eta kappa^2 + 1) = sqrt(1.25) and sqrt(1.0625)
    loss, _ = resshift_loss(doubling, X0, Y, torch.zeros_like(Y), SCHEDULE, T, NOISE, latent=True)
    pred = np.array([2 * 2.5 / np.sqrt(1.25), 2 * 1.0 / np.sqrt(1.0625)])
    assert float(loss) == pytest.approx(np.mean((pred - np.array([0.0, 1.0])) ** 2), rel=1e-6)
    loss, _ = resshift_loss(doubling, X0, Y, torch.zeros_like(Y), SCHEDULE, T, NOISE, normalize_input=False)
    assert float(loss) == pytest.approx(((5 - 0) ** 2 + (2 - 1) ** 2) / 2, rel=1e-6)


def test_the_lpips_term_is_added_with_its_weight_and_reported():
    seen: dict[str, Any] = {}

    def network(inp, t, cond, mask):
        seen.update(t=t, cond=cond, mask=mask)
        return doubling(inp, t, cond, mask)

    mask = torch.ones_like(Y)
    loss, terms = resshift_loss(
        network,
        X0,
        Y,
        torch.zeros_like(Y),
        SCHEDULE,
        T,
        NOISE,
        latent=False,
        mask=mask,
        lpips=lambda x0_pred: x0_pred.abs().mean(),
        lpips_weight=0.5,
    )
    # predictions 2 and 8/7: the toy "LPIPS" is their mean, 11/7
    assert float(terms["lpips"]) == pytest.approx(11 / 7, rel=1e-6)
    assert float(loss) == pytest.approx((4 + 1 / 49) / 2 + 0.5 * 11 / 7, rel=1e-6)
    assert seen["mask"] is mask and torch.equal(seen["t"], T)


def test_gradients_reach_the_network():
    scale = torch.nn.Parameter(torch.tensor(2.0))
    loss, _ = resshift_loss(
        lambda inp, t, cond, mask: scale * inp, X0, Y, torch.zeros_like(Y), SCHEDULE, T, NOISE, latent=False
    )
    loss.backward()
    # d/ds mean((s a - x0)^2) = mean(2 (s a - x0) a) with a = (1, 4/7)
    a, x0 = np.array([1.0, 4 / 7]), np.array([0.0, 1.0])
    assert scale.grad is not None
    assert float(scale.grad) == pytest.approx(np.mean(2 * (2 * a - x0) * a), rel=1e-6)


def test_t_weights_choose_the_chain_steps_trained():
    g = torch.Generator().manual_seed(0)
    t = draw_t(4000, 4, g, chain_step_weights([0, 0, 1, 3], 4))
    counts = torch.bincount(t, minlength=4).tolist()
    assert counts[0] == counts[1] == 0 and 0.2 < counts[2] / 4000 < 0.3  # 1/4 expected
    uniform = draw_t(4000, 4, g, chain_step_weights([], 4))
    assert min(torch.bincount(uniform, minlength=4).tolist()) > 900  # the paper's: t uniform
    for bad in ([1, 1], [1, -1, 1, 1], [0, 0, 0, 0]):
        with pytest.raises(ConfigError, match="need 4 non-negative weights"):
            chain_step_weights(bad, 4)
