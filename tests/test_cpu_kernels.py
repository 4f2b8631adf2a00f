"""The CPU-only kernel choices: oneDNN float32 linears and the allocator's release between bands."""

import sys

import pytest
import torch
import torch.nn.functional as F

from resshift_core import allocator
from resshift_core.models import cpu_matmul


@pytest.mark.parametrize("shape", [(5, 33), (2, 7, 5, 33)])
def test_onednn_linear_equals_f_linear(shape):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(*shape, generator=g), torch.randn(12, 33, generator=g), torch.randn(12, generator=g)
    for bias in (b, None):
        got = cpu_matmul.linear(x, w, bias)
        assert got.shape == (*shape[:-1], 12)
        assert (got - F.linear(x, w, bias)).abs().max() < 1e-5
    # A non-contiguous input (a transposed view) reads the same values.
    xt = x.transpose(0, -2) if x.dim() > 2 else x.t().contiguous().t()
    assert (cpu_matmul.linear(xt, w, b) - F.linear(xt, w, b)).abs().max() < 1e-5


def test_onednn_linear_is_taken_only_where_it_is_the_same_product():
    x, w = torch.randn(4, 8), torch.randn(3, 8)
    assert cpu_matmul._onednn_ok(x, w)
    assert not cpu_matmul._onednn_ok(x.bfloat16(), w.bfloat16())  # half dtypes: F.linear is oneDNN already
    with torch.enable_grad():
        assert not cpu_matmul._onednn_ok(x.requires_grad_(), w)  # autograd records F.linear
        y = cpu_matmul.linear(x, w)
        y.sum().backward()
        assert x.grad is not None


def test_swin_linears_keep_the_published_state_dict_keys():
    layer = cpu_matmul.Linear(4, 6)
    assert isinstance(layer, torch.nn.Linear)
    assert set(layer.state_dict()) == {"weight", "bias"}


def test_free_memory_is_released_after_each_band(monkeypatch):
    calls: list[int] = []
    seen: list[str] = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: calls.append(len(seen)))
    for item in allocator.releasing_between(["a", "b", "c"]):
        seen.append(item)
    assert seen == ["a", "b", "c"]
    assert calls == [1, 2, 3]  # after each band has been used


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_free_memory_runs_on_glibc():
    assert allocator.release_free_memory() is True


def test_bench_counts_the_same_work_whatever_the_kernel():
    from torch.utils.flop_counter import FlopCounterMode

    from resshift_core.bench import _extra_flop_formulas

    def flops(fn):
        with FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas()) as counter:
            fn()
        return counter.get_total_flops()

    x, w = torch.randn(10, 20), torch.randn(30, 20)
    assert flops(lambda: cpu_matmul.linear(x, w)) == flops(lambda: F.linear(x.double(), w.double())) == 2 * 10 * 20 * 30
    q = torch.randn(2, 3, 16, 8)
    assert flops(lambda: F.scaled_dot_product_attention(q, q, q)) == 4 * 2 * 3 * 16 * 16 * 8
