"""Tensors derived from a parameter (a gathered bias, a folded kernel), built once per device
and dtype and rebuilt when the parameter changes (new storage or an in-place update).

Cached outside autograd only: with gradients on, or under torch.compile, the few ops that build
them are recorded or traced like any other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class DerivedCache:
    """One derived tensor per (device, dtype, inference mode), stamped by its source parameter."""

    def __init__(self) -> None:
        self._entries: dict = {}

    def get(self, source: torch.Tensor, device, dtype, build: Callable[[], torch.Tensor]) -> torch.Tensor:
        if torch.compiler.is_compiling() or torch.is_grad_enabled():
            return build()
        key = (device, dtype, torch.is_inference_mode_enabled())
        # Inference tensors (ComfyUI runs nodes under inference_mode) have no version counter.
        stamp = (source.data_ptr(), 0 if source.is_inference() else source._version)
        hit = self._entries.get(key)
        if hit is None or hit[0] != stamp:
            hit = self._entries[key] = (stamp, build())
        return hit[1]


__all__ = ["DerivedCache"]
