"""The optional LPIPS-VGG term: loaded from local weights only, skipped (with a warning) otherwise."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def load_lpips(weight: float, weights_path: str, device: torch.device) -> nn.Module | None:
    """The frozen LPIPS network, or None when the term is off or cannot be built here."""
    if weight <= 0:
        return None
    if not weights_path or not Path(weights_path).is_file():
        warnings.warn(
            f"train.lpips_weight={weight} but LPIPS weights {weights_path!r} are not "
            "present locally: the perceptual term is SKIPPED (MSE only)",
            stacklevel=2,
        )
        return None
    try:
        import lpips
    except ImportError:
        warnings.warn("the lpips package is not installed: the perceptual term is SKIPPED (MSE only)", stacklevel=2)
        return None
    net = lpips.LPIPS(net="vgg", pretrained=False, pnet_rand=True, verbose=False)
    net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True), strict=False)
    return net.to(device).eval().requires_grad_(False)


__all__ = ["load_lpips"]
