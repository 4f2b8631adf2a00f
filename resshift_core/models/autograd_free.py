"""The one test for "no autograd graph is being recorded here", which every inference shortcut
of the networks asks before it updates a tensor in place, writes bands into one output or
takes a kernel that autograd cannot differentiate."""

from __future__ import annotations

import torch


def records_no_graph(*tensors: torch.Tensor) -> bool:
    """True unless gradients are on and one of `tensors` takes part in the graph."""
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


__all__ = ["records_no_graph"]
