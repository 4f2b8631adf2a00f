"""The exponential moving average of the weights: what validation, samples and exports use."""

from __future__ import annotations

import torch
from torch import nn


class EmaWeights:
    """Float32 copies of a model's state, moved towards it after every optimiser step."""

    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    def rate_at(self, step: int) -> float:
        """Warmed up: early weights are forgotten fast (published min(rate, (1+step)/(10+step)))."""
        return min(self.rate, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """`step`: the index of the optimiser step just taken (0 for the first)."""
        rate = self.rate_at(step)
        for k, v in model.state_dict().items():
            e = self.state[k]
            if v.is_floating_point():
                e.mul_(rate).add_(v.detach().float(), alpha=1 - rate)
            else:
                e.copy_(v)

    def cpu_state(self) -> dict[str, torch.Tensor]:
        return {k: v.cpu() for k, v in self.state.items()}

    def load(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.state = {k: v.to(device).float() for k, v in state.items()}


__all__ = ["EmaWeights"]
