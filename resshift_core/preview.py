"""Cheap previews of the sampler's x0 estimates, without running the VQGAN decoder.

A latent of ResShift's VQGAN is close to a linear function of the image it encodes, so a 3 x C
least-squares map fitted on the LR image and its own latent (z_y) gives a recognisable colour
image of any later latent of the same picture. Pixel-space models need no map at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

RIDGE = 1e-6  # keeps the fit defined on flat images (one colour: a rank-deficient system)


@dataclass(frozen=True)
class LinearPreview:
    """rgb = weight @ latent + bias per pixel, rgb in [-1, 1]."""

    weight: torch.Tensor  # 3 x C
    bias: torch.Tensor  # 3

    @classmethod
    def identity(cls) -> LinearPreview:
        """For pixel-space models: the state already is the image."""
        return cls(torch.eye(3), torch.zeros(3))

    @classmethod
    def fit(cls, latent: torch.Tensor, image: torch.Tensor) -> LinearPreview:
        """Fit on the first image: `latent` B x C x h x w, `image` B x 3 x H x W in [-1, 1]."""
        z = latent[0].detach().to("cpu", torch.float64)
        rgb = image[:1].detach().to("cpu", torch.float64)
        rgb = F.interpolate(rgb, size=z.shape[-2:], mode="area")[0]
        x = torch.cat([z.reshape(z.shape[0], -1), torch.ones(1, z[0].numel(), dtype=z.dtype)])  # (C+1) x N
        y = rgb.reshape(3, -1)
        gram = x @ x.T
        gram += RIDGE * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype)
        solution = torch.linalg.solve(gram, x @ y.T).T  # 3 x (C+1)
        return cls(solution[:, :-1].float(), solution[:, -1].float())

    def __call__(self, latent: torch.Tensor, max_size: int = 512) -> torch.Tensor:
        """The first image of `latent` as H x W x 3 in [0, 1] on the CPU, at most `max_size` a side."""
        z = latent[:1].detach().to("cpu", torch.float32)
        rgb = torch.einsum("oc,bchw->bohw", self.weight, z) + self.bias.view(1, 3, 1, 1)
        longest = max(rgb.shape[-2:])
        if longest > max_size:
            scale = max_size / longest
            size = [max(1, int(n * scale)) for n in rgb.shape[-2:]]
            rgb = F.interpolate(rgb, size=size, mode="area")
        return ((rgb[0].clamp(-1, 1) + 1) / 2).permute(1, 2, 0)


__all__ = ["LinearPreview"]
