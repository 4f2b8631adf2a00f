"""Step previews: a linear latent -> RGB map fitted on the LR image and its own latent."""

import torch

from resshift_core.preview import LinearPreview


def test_fit_recovers_a_linear_encoding_and_previews_another_latent():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(4, 3, generator=g)
    offset = torch.randn(4, generator=g)

    def encode(rgb):  # a 4-channel "latent" at half resolution, linear in the image
        small = torch.nn.functional.avg_pool2d(rgb, 2)
        return torch.einsum("cr,brhw->bchw", mix, small) + offset.view(1, 4, 1, 1)

    image = torch.rand(1, 3, 32, 48, generator=g) * 2 - 1
    preview = LinearPreview.fit(encode(image), image)
    other = torch.rand(1, 3, 32, 48, generator=g) * 2 - 1
    shown = preview(encode(other))
    assert shown.shape == (16, 24, 3)
    expected = (torch.nn.functional.avg_pool2d(other, 2)[0].clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(shown, expected.permute(1, 2, 0), atol=2e-3, rtol=0)


def test_flat_images_and_size_limits():
    flat = torch.zeros(1, 3, 16, 16)
    preview = LinearPreview.fit(torch.randn(1, 3, 16, 16) * 0 + 0.5, flat)  # rank-deficient: still solvable
    assert torch.isfinite(preview.weight).all() and torch.isfinite(preview.bias).all()
    big = LinearPreview.identity()(torch.rand(2, 3, 300, 1000) * 2 - 1, max_size=100)
    assert big.shape == (30, 100, 3) and big.min() >= 0 and big.max() <= 1
