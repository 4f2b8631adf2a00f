"""Sample sheets: a bicubic | ours | ground truth row per image, saved as one PNG."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..image_io import save_image
from ..pipeline import ResShiftPipeline


@torch.no_grad()
def save_sample_sheet(path: Path, pipe: ResShiftPipeline, lq: torch.Tensor, gt: torch.Tensor, seed: int) -> Path:
    """`lq` B3hw and `gt` B3HW in [0, 1]; every image is restored with `seed`."""
    out = pipe.restore(lq, seeds=[seed] * lq.shape[0]).cpu()
    bic = F.interpolate(lq.cpu(), size=out.shape[-2:], mode="bicubic").clamp(0, 1)
    h, w = out.shape[-2:]
    rows = [torch.cat([bic[i], out[i], gt[i].cpu()[:, :h, :w]], -1) for i in range(out.shape[0])]
    save_image(path, torch.cat(rows, -2))
    return path


def square_pairs(pairs: list[tuple[str, torch.Tensor, torch.Tensor]], sf: int, n: int = 4):
    """(lq, gt) stacks of the first `n` validation pairs, cropped to a common square."""
    lqs, gts = [p[1] for p in pairs[:n]], [p[2] for p in pairs[:n]]
    size = min(min(x.shape[-2:]) for x in lqs)
    return (torch.stack([x[:, :size, :size] for x in lqs]), torch.stack([x[:, : size * sf, : size * sf] for x in gts]))


__all__ = ["save_sample_sheet", "square_pairs"]
