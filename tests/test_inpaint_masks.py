"""The one mask rule (resshift_core.inpaint_masks) and what the pipeline does with it."""

import pytest
import torch

from resshift_core.errors import InputError
from resshift_core.inpaint_masks import blacken_holes, normalize_masks
from resshift_core.pipeline import ResShiftPipeline
from resshift_core.tiny import make_tiny

IMAGES = torch.zeros(2, 3, 6, 8)


def _hole() -> torch.Tensor:
    m = torch.zeros(6, 8)
    m[1:4, 2:6] = 1
    return m


def test_every_shape_gives_one_binary_channel_per_image():
    hole = _hole()
    want = hole.expand(2, 1, 6, 8)
    for given in (hole, hole[None], hole[None, None], hole.expand(2, 6, 8), hole.expand(2, 1, 6, 8)):
        out = normalize_masks(given, IMAGES)
        assert out.shape == (2, 1, 6, 8) and out.dtype == torch.float32
        assert torch.equal(out, want)


def test_colour_is_luminance_and_alpha_keeps_transparent_pixels_known():
    hole = _hole()
    rgb = hole.expand(3, 6, 8)[None]
    assert torch.equal(normalize_masks(rgb, IMAGES[:1]), hole[None, None])
    # pure blue is dark (BT.601 luma 0.114): not a hole; pure green is bright (0.587): a hole
    blue = torch.zeros(1, 3, 6, 8)
    blue[:, 2] = 1
    green = torch.zeros(1, 3, 6, 8)
    green[:, 1] = 1
    assert normalize_masks(blue, IMAGES[:1]).sum() == 0
    assert normalize_masks(green, IMAGES[:1]).sum() == 48
    # white everywhere, but only the hole is opaque: transparent pixels are never a hole
    rgba = torch.cat([torch.ones(1, 3, 6, 8), hole[None, None]], dim=1)
    assert torch.equal(normalize_masks(rgba, IMAGES[:1]), hole[None, None])
    grey_alpha = torch.cat([torch.ones(1, 1, 6, 8), hole[None, None]], dim=1)
    assert torch.equal(normalize_masks(grey_alpha, IMAGES[:1]), hole[None, None])


def test_soft_values_are_binarised_at_one_half():
    soft = torch.tensor([[0.0, 0.49, 0.5, 0.51, 1.0, 0.2, 0.8, 0.5]]).expand(6, 8)
    out = normalize_masks(soft, IMAGES[:1])[0, 0, 0]
    assert out.tolist() == [0, 0, 1, 1, 1, 0, 1, 1]


def test_other_sizes_are_resized_to_the_image():
    small = torch.zeros(3, 4)
    small[:, 2:] = 1  # right half
    out = normalize_masks(small, IMAGES)
    assert out.shape == (2, 1, 6, 8)
    assert out[..., :4].sum() == 0 and out[..., 4:].min() == 1


def test_bad_masks_are_named():
    with pytest.raises(InputError, match="2 masks for 1 images"):
        normalize_masks(torch.ones(2, 6, 8), IMAGES[:1])
    with pytest.raises(InputError, match="1 to 4 channels"):
        normalize_masks(torch.ones(1, 5, 6, 8), IMAGES[:1])
    with pytest.raises(InputError, match="NaN"):
        normalize_masks(torch.full((6, 8), float("nan")), IMAGES[:1])
    with pytest.raises(InputError, match="H x W"):
        normalize_masks(torch.ones(1, 1, 1, 6, 8), IMAGES[:1])
    with pytest.raises(InputError, match="empty"):
        normalize_masks(torch.ones(0, 8), IMAGES[:1])


def test_the_hole_is_black_in_the_condition():
    lq = torch.rand(1, 3, 6, 8) * 2 - 1
    hole = _hole()[None, None]
    out = blacken_holes(lq, hole)
    assert torch.all(out[hole.expand_as(out) == 1] == -1)
    assert torch.equal(out[hole.expand_as(out) == 0], lq[hole.expand_as(lq) == 0])


@pytest.fixture(scope="module")
def inpaint():
    return ResShiftPipeline(*make_tiny("inpaint"))


def test_pipeline_reads_soft_and_coloured_masks_by_the_rule(inpaint):
    image = torch.rand(1, 3, 16, 16)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 3:9, 5:12] = 1
    binary = inpaint.restore(image, hole, seeds=[3])
    soft = hole * 0.7 + 0.1  # 0.1 outside, 0.8 inside
    assert torch.equal(inpaint.restore(image, soft, seeds=[3]), binary)
    assert torch.equal(inpaint.restore(image, hole.expand(1, 3, 16, 16), seeds=[3]), binary)
    # what was under the hole does not matter: the model sees a black hole, as in training
    scribbled = image.clone()
    scribbled[hole.expand_as(image) == 1] = torch.rand(int(hole.sum()) * 3)
    assert torch.equal(inpaint.restore(scribbled, hole, seeds=[3]), binary)


def test_colour_fix_keeps_known_pixels_and_changes_the_rest(inpaint):
    image = torch.rand(1, 3, 16, 16)
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 4:12, 4:12] = 1
    plain = inpaint.restore(image, hole, seeds=[0])
    for method in ("wavelet", "adain"):
        fixed = inpaint.restore(image, hole, seeds=[0], color_fix=method)
        known = hole.expand_as(image) == 0
        torch.testing.assert_close(fixed[known], image[known])
        assert not torch.allclose(fixed, plain)
