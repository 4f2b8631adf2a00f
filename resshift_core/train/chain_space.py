"""The space the diffusion chain runs in: pixels, or VQGAN latents (scaled by the preset)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.vqgan import VQGAN


class ChainSpace:
    """Encodes a training batch into the chain's x0 (the HR target), y (the upsampled LR start)
    and the network's conditioning; decodes predictions back to images."""

    def __init__(self, vae: VQGAN | None, scale_factor: float = 1.0):
        self.vae, self.scale_factor = vae, scale_factor

    @property
    def latent(self) -> bool:
        return self.vae is not None

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return x
        return self.vae.encode(x).float() * self.scale_factor

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return z
        return self.vae.decode(z / self.scale_factor)

    def targets(self, gt: torch.Tensor, lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x0, y, cond) of images in [-1, 1]; the LR is bicubic-upsampled to the HR size first."""
        x0 = self.encode(gt)
        up = (
            lq
            if tuple(lq.shape[-2:]) == tuple(gt.shape[-2:])
            else F.interpolate(lq, size=gt.shape[-2:], mode="bicubic")
        )
        y = self.encode(up)
        # pixel space: conditioned on the upsampled LR the chain starts from; latent: on the LR itself
        return x0, y, (lq if self.latent else y)


__all__ = ["ChainSpace"]
