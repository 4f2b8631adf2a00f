"""Tile plans, blending weights, padding, and tiled sampling against untiled."""

import itertools
from dataclasses import replace

import pytest
import torch

from resshift_core.tiling import (
    TilePlan,
    TilingConfig,
    blend_tiles,
    crop_padding,
    pad_to_multiple,
    plan_axis,
    reflect_pad,
)


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "multiple"),
    [
        (512, 256, 16, 64),
        (512, 128, 8, 1),
        (100, 64, 8, 1),
        (101, 30, 7, 1),
        (64, 64, 16, 64),
        (192, 64, 16, 64),
        (7, 3, 1, 1),
    ],
)
def test_axis_plan_covers_with_overlap_and_equal_sizes(length, tile, overlap, multiple):
    segments = plan_axis(length, tile, overlap, multiple)
    sizes = {n for _, n in segments}
    assert len(sizes) == 1 and all(n % multiple == 0 for n in sizes)
    assert segments[0][0] == 0 and segments[-1][0] + segments[-1][1] == length
    for (s0, n0), (s1, _) in itertools.pairwise(segments):
        assert s1 > s0 and s0 + n0 - s1 >= min(overlap, 1), "neighbours must overlap"
    if len(segments) > 1:
        assert sizes.pop() <= max(tile, multiple + overlap + multiple)


def test_plan_is_economical_for_large_images():
    # 512 latent pixels with a 64-multiple UNet: 3 tiles of 192, not 5 of 128.
    assert sum(n for _, n in plan_axis(512, 256, 16, 64)) / 512 <= 1.125
    assert sum(n for _, n in plan_axis(512, 128, 8, 1)) / 512 <= 1.07


def test_blend_weights_are_a_partition_of_unity():
    plan = TilePlan(100, 77, 40, 9)
    total = torch.zeros(1, 1, 100, 77)
    for i, tile in enumerate(plan.tiles):
        ys, xs = tile.slices()
        total[..., ys, xs] += plan.weight(i)
    torch.testing.assert_close(total, torch.ones_like(total))


def _index(slices: tuple[slice, ...]) -> tuple:
    # Built outside the brackets: mypy (target 3.10) reads x[(..., *s)] as the 3.11-only x[..., *s].
    return (..., *slices)


def test_blending_a_tile_wise_identity_reconstructs_the_image():
    image = torch.randn(2, 3, 60, 90)
    plan = TilePlan(30, 45, 16, 4)

    def run(tiles):  # a "network" that upsamples x2 by nearest neighbour
        crops = [image[_index(t.slices(2))] for t in tiles]
        return torch.cat(crops)

    out = blend_tiles(run, plan, batch_size=3, out_channels=3, out_scale=2, images=2)
    torch.testing.assert_close(out, image)


def test_single_tile_is_returned_untouched():
    image = torch.randn(1, 3, 8, 8)
    plan = TilePlan(8, 8, 64, 8)
    assert plan.is_whole
    assert blend_tiles(lambda tiles: image, plan, batch_size=1, out_channels=3) is not None


@pytest.mark.parametrize(("h", "w"), [(1, 1), (1, 5), (3, 2), (17, 64), (64, 64)])
def test_padding_any_size_and_crop_back(h, w):
    x = torch.rand(1, 3, h, w)
    padded, pad = pad_to_multiple(x, 16)
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    torch.testing.assert_close(crop_padding(padded, pad), x)
    up = torch.nn.functional.interpolate(padded, scale_factor=4)
    assert crop_padding(up, pad, 4).shape[-2:] == (4 * h, 4 * w)


def test_reflect_pad_matches_torch_where_torch_can():
    x = torch.rand(1, 3, 10, 12)
    torch.testing.assert_close(reflect_pad(x, 5, 7), torch.nn.functional.pad(x, (0, 7, 0, 5), mode="reflect"))


def test_tiling_config_shrinks_on_demand():
    cfg = TilingConfig(tile=128, vae_tile=64, batch=4, vae_batch=2)
    assert cfg.smaller("unet") == replace(cfg, batch=2) and cfg.smaller("vae") == replace(cfg, vae_batch=1)
    one = TilingConfig(tile=128, vae_tile=64, batch=1)
    assert one.smaller("unet") == replace(one, tile=64) and one.smaller("vae") == replace(one, vae_tile=32)
    assert TilingConfig(tile=8, vae_tile=8).smaller("vae") is None
    with pytest.raises(ValueError, match="must be positive"):
        TilingConfig(tile=0)
