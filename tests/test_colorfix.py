"""Colour fixes: AdaIN matches channel statistics, wavelet swaps low frequencies."""

import pytest
import torch
import torch.nn.functional as F

from resshift_core.colorfix import (
    METHODS,
    adain_color_fix,
    color_fix,
    reference_like,
    wavelet_color_fix,
    wavelet_decomposition,
)
from resshift_core.errors import InputError


def smooth(b, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, 3, max(1, h // 8), max(1, w // 8), generator=g)
    return F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)


def test_none_is_the_identity():
    out = torch.rand(2, 3, 16, 16)
    assert color_fix(out, torch.rand(2, 3, 4, 4), "none") is out


def test_adain_matches_reference_statistics():
    ref = smooth(2, 32, 32, 0) * 0.4 + 0.3
    out = torch.rand(2, 3, 32, 32) * 0.3 + 0.1  # darker, lower contrast, other cast
    fixed = adain_color_fix(out, ref)
    up = reference_like(ref, out)
    torch.testing.assert_close(fixed.mean(dim=(-2, -1)), up.mean(dim=(-2, -1)), atol=2e-3, rtol=0)
    torch.testing.assert_close(fixed.std(dim=(-2, -1)), up.std(dim=(-2, -1)), atol=2e-3, rtol=0)
    # the structure is the output's: correlation per channel stays 1
    a = (fixed - fixed.mean(dim=(-2, -1), keepdim=True)).flatten(2)
    b = (out - out.mean(dim=(-2, -1), keepdim=True)).flatten(2)
    corr = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert corr.min() > 0.99


def test_wavelet_keeps_output_detail_and_reference_colour():
    ref = smooth(1, 16, 16, 1)
    detail = (torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2)) - 0.5) * 0.1
    out = (reference_like(ref, detail) + 0.2 + detail).clamp(0, 1)  # colour shifted, detail added
    fixed = wavelet_color_fix(out, ref)
    high_out, _ = wavelet_decomposition(out)
    high_fix, low_fix = wavelet_decomposition(fixed)
    _, low_ref = wavelet_decomposition(reference_like(ref, out))
    assert (low_fix - low_ref).abs().mean() < 0.02  # the cast is gone
    assert (high_fix - high_out).abs().mean() < 0.02  # the detail stays
    assert abs(fixed.mean() - reference_like(ref, out).mean()) < 0.02


def test_wavelet_decomposition_is_exact():
    x = torch.rand(1, 3, 20, 13)
    high, low = wavelet_decomposition(x)
    torch.testing.assert_close(high + low, x)


@pytest.mark.parametrize("method", METHODS)
def test_sizes_ranges_and_tiny_images(method):
    out = torch.rand(3, 3, 5, 7)
    fixed = color_fix(out, torch.rand(1, 3, 2, 3), method)  # one reference for the whole batch
    assert fixed.shape == out.shape and fixed.min() >= 0 and fixed.max() <= 1


def test_errors_are_plain():
    with pytest.raises(InputError, match="unknown colour fix"):
        color_fix(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4), "histogram")
    with pytest.raises(InputError, match="one reference per image"):
        color_fix(torch.rand(3, 3, 4, 4), torch.rand(2, 3, 4, 4), "adain")
    with pytest.raises(InputError, match="B x 3 x H x W"):
        color_fix(torch.rand(1, 4, 4, 4), torch.rand(1, 3, 4, 4), "wavelet")
