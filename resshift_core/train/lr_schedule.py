"""The learning rate: linear warm-up to `lr`, then cosine decay to `lr_min` (published 'cosin')."""

from __future__ import annotations

import math

import torch


class WarmupCosine:
    """Sets the optimiser's learning rate for step `step_count`; `step()` moves one step on."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, lr_min: float, warmup: int, total: int):
        self.optimizer, self.lr, self.lr_min, self.warmup, self.total = optimizer, lr, lr_min, warmup, total
        self.step_count = 0
        self._apply()

    def value(self, step: int) -> float:
        if self.warmup > 0 and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        span = max(1, self.total - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.value(self.step_count)

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def state_dict(self) -> dict:
        return {
            "step_count": self.step_count,
            "lr": self.lr,
            "lr_min": self.lr_min,
            "warmup": self.warmup,
            "total": self.total,
        }

    def load_state_dict(self, d: dict) -> None:
        self.step_count = int(d["step_count"])
        self._apply()


__all__ = ["WarmupCosine"]
