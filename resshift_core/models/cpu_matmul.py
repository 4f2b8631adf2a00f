"""Float32 matrix products on the CPU through oneDNN rather than torch's default BLAS.

torch's float32 `F.linear`/`matmul` call MKL, which on AMD CPUs takes its AVX2 code path: about
200 GFLOP/s on two EPYC cores, where oneDNN's kernels (the ones every convolution here already
runs on, and what Inductor emits for CPU linears) reach 300-430 (issue 14, measured on the
linears of v3's Swin and VQGAN attention). Same products, same float32 accumulation; half dtypes, CUDA, autograd
and compiled graphs keep the plain ops (their kernels are already the fast ones there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .autograd_free import records_no_graph

# A private op (torch.ops.mkldnn), present when torch was built with oneDNN; absent, F.linear.
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


def _onednn_ok(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        not torch.compiler.is_compiling()  # first: Dynamo would break its graph on the calls below
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and records_no_graph(x, weight)
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias): x (..., K), weight (M, K) -> (..., M)."""
    if _ONEDNN_LINEAR is None or not _onednn_ok(x, weight):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])
    out = _ONEDNN_LINEAR(rows, weight, bias, "none", [], "")
    return out.view(*x.shape[:-1], weight.shape[0])


class Linear(torch.nn.Linear):
    """nn.Linear (same parameters and state dict keys) computed by `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


__all__ = ["Linear", "linear"]
