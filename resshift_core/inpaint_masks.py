"""Inpainting masks: the one rule every front-end's mask goes through.

The published inpainting models were trained on binary masks (1 = the hole to fill) and an LR
image whose hole is black (`lq = image * (1 - mask) - mask` in [-1, 1]); the published test
inputs come that way (black holes, and masks that are 0/255 up to JPEG noise). So whatever a
user gives is brought to that form here:

* shape: H x W, B x H x W, or B x C x H x W with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or
  4 (RGBA); one mask for the whole batch or one per image;
* channels: colour is reduced to luminance (ITU-R BT.601, as OpenCV's grey conversion), and
  alpha multiplies it, so a transparent pixel is never part of the hole;
* size: resized bilinearly to the image's size;
* soft values: binarised, a value of 0.5 or more is hole, below 0.5 is kept. Feathered
  brushes therefore give a hard edge at their half-way line; the network cannot take partial
  holes (it never saw one in training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import InputError

LUMA = (0.299, 0.587, 0.114)
THRESHOLD = 0.5


def _as_bchw(masks: torch.Tensor) -> torch.Tensor:
    if masks.ndim == 2:
        return masks[None, None]
    if masks.ndim == 3:
        return masks[:, None]
    if masks.ndim == 4:
        return masks
    raise InputError(f"a mask must be H x W, B x H x W or B x C x H x W, got shape {tuple(masks.shape)}")


def _to_single_channel(masks: torch.Tensor) -> torch.Tensor:
    channels = masks.shape[1]
    if channels not in (1, 2, 3, 4):
        raise InputError(f"a mask has 1 to 4 channels (grey, grey+alpha, RGB, RGBA), this one has {channels}")
    colour, alpha = (masks[:, :-1], masks[:, -1:]) if channels in (2, 4) else (masks, None)
    if colour.shape[1] == 3:
        weights = torch.tensor(LUMA, dtype=colour.dtype, device=colour.device).view(1, 3, 1, 1)
        colour = (colour * weights).sum(dim=1, keepdim=True)
    return colour if alpha is None else colour * alpha


def normalize_masks(masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Any mask (see the module docstring) -> B x 1 x H x W of 0.0 / 1.0 (1 = fill in), at the
    size and batch of `images` (B x C x H x W), float32 on the images' device."""
    if not isinstance(masks, torch.Tensor):
        raise InputError(f"a mask must be a tensor, got {type(masks).__name__}")
    if masks.numel() == 0:
        raise InputError(f"the mask is empty: shape {tuple(masks.shape)}")
    masks = masks.to(device=images.device, dtype=torch.float32)
    if not torch.isfinite(masks).all():
        raise InputError("the mask contains NaN or infinity; fix the mask image")
    masks = _to_single_channel(_as_bchw(masks)).clamp(0, 1)
    batch = images.shape[0]
    if masks.shape[0] != batch:
        if masks.shape[0] != 1:
            raise InputError(f"{masks.shape[0]} masks for {batch} images: give one mask, or one per image")
        masks = masks.expand(batch, -1, -1, -1)
    if masks.shape[-2:] != images.shape[-2:]:
        masks = F.interpolate(masks, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)
    return (masks >= THRESHOLD).float()


def blacken_holes(lq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The LR condition in [-1, 1] with its hole black (-1), as the models were trained."""
    return lq * (1 - mask) - mask


__all__ = ["LUMA", "THRESHOLD", "blacken_holes", "normalize_masks"]
