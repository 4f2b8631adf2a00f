"""The reverse chain's parameterisations, and the published zero initialisation for training."""

import pytest
import torch

from resshift_core.models.unet import ResBlock
from resshift_core.presets import DiffusionPreset
from resshift_core.sampler import SeededNoise, sample
from resshift_core.schedule import ScheduleConfig, make_schedule
from resshift_core.tiny import tiny_unet


def test_residual_prediction_is_x0_equals_y_minus_output():
    schedule = make_schedule(ScheduleConfig(steps=4, kappa=0.5, min_noise_level=0.2))
    z_y = torch.rand(2, 3, 8, 8) * 2 - 1
    target = torch.rand(2, 3, 8, 8) * 2 - 1

    def residual(x, t):  # a network that predicts y - x0 for a fixed x0 (plus a little of x_t)
        return z_y - target + 0.01 * x

    def xstart(x, t):
        return z_y - residual(x, t)

    a = sample(residual, z_y, schedule, SeededNoise([1, 2]), predict="residual", clip_denoised=True)
    b = sample(xstart, z_y, schedule, SeededNoise([1, 2]), clip_denoised=True)
    torch.testing.assert_close(a, b)
    c = sample(residual, z_y, schedule, SeededNoise([1, 2]), clip_denoised=True)  # read as x0: different
    assert (a - c).abs().max() > 0.1


def test_preset_accepts_the_published_mean_types_only():
    assert DiffusionPreset(predict="residual").predict == "residual"
    with pytest.raises(ValueError, match="residual"):
        DiffusionPreset(predict="epsilon")


def test_init_as_published_zeroes_block_outputs_and_the_head():
    net = tiny_unet(
        "realsr", attention_resolutions=[], num_heads=2, num_head_channels=-1, use_scale_shift_norm=False
    ).init_as_published()
    g = torch.Generator().manual_seed(0)
    x, lq = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 3, 16, 16, generator=g)
    with torch.no_grad():
        assert net(x, torch.tensor([2]), lq=lq).abs().max() == 0  # the first prediction is 0
    assert net.get_parameter("out.2.weight").abs().sum() == 0
    assert net.get_parameter("input_blocks.0.0.weight").abs().sum() > 0  # the rest keeps its random init
    # Every residual block starts as its skip path: h -> skip(h).
    block = net.get_submodule("input_blocks.1.0")
    assert isinstance(block, ResBlock)
    h, emb = torch.randn(1, 32, 16, 16, generator=g), torch.randn(1, net.config.time_embed_dim, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(block(h, emb), block.skip_connection(h))
