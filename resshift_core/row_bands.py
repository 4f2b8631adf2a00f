"""Images as streams of row bands: `(first_row, rows)` pairs, top to bottom, that together
make one B x C x H x W image. Large outputs are computed and written this way so that no
full-resolution float buffer has to exist; each helper here gives exactly what the same
operation on the whole image gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

Band = tuple[int, torch.Tensor]

BICUBIC_REACH = 2  # input rows a bicubic kernel reads beyond the rows it interpolates between
FINISH_ROWS = 128  # rows at a time for the elementwise steps after the networks


def gather(bands: Iterable[Band]) -> torch.Tensor:
    """The whole image the bands make."""
    rows = [r for _, r in bands]
    return rows[0] if len(rows) == 1 else torch.cat(rows, dim=-2)


def crop(bands: Iterable[Band], height: int, width: int) -> Iterator[Band]:
    """The bands cut to the top-left `height` x `width` (as `crop_padding` on the whole)."""
    for first, rows in bands:
        stop = min(first + rows.shape[-2], height)
        if stop > first:
            yield first, rows[..., : stop - first, :width]


def split(bands: Iterable[Band], most: int) -> Iterator[Band]:
    """The same rows in bands of at most `most` rows, so that the elementwise work after a
    large band (its copies and temporaries) takes memory for `most` rows only."""
    for first, rows in bands:
        for start in range(0, rows.shape[-2], most):
            yield first + start, rows[..., start : start + most, :]


def bicubic_rows(
    image: torch.Tensor,
    scale: int,
    first: int,
    stop: int,
    values: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Rows first..stop of `F.interpolate(values(image), scale_factor=scale, mode="bicubic")`,
    from only the input rows they need (plus the kernel's reach), so the upsampled whole never
    exists. `values` (elementwise, e.g. a range change) is applied to those input rows only."""
    height = image.shape[-2]
    lo = first if scale == 1 else max(0, first // scale - BICUBIC_REACH)
    hi = stop if scale == 1 else min(height, -(-stop // scale) + BICUBIC_REACH)
    rows = image[..., lo:hi, :]
    if values is not None:
        rows = values(rows)
    if scale == 1:
        return rows[..., first - lo :, :]
    up = F.interpolate(rows, scale_factor=scale, mode="bicubic")
    return up[..., first - lo * scale : stop - lo * scale, :]


def windowed(
    bands: Iterable[Band], height: int, reach: int, apply: Callable[[torch.Tensor, int], torch.Tensor]
) -> Iterator[Band]:
    """`apply(window, first_row)` over a band stream, for an operation whose output rows depend
    on input rows at most `reach` rows away (and on nothing else).

    Each window handed to `apply` extends `reach` rows beyond the rows kept from it (or to an
    image edge), so the kept rows are exactly what `apply` on the whole image gives.
    """
    held: torch.Tensor | None = None
    held_from = 0  # image row of held's first row
    emitted = 0
    for first, rows in bands:
        held = rows if held is None else torch.cat([held, rows], dim=-2)
        end = first + rows.shape[-2]
        final = height if end >= height else end - reach
        if final <= emitted:
            continue
        lo = max(0, emitted - reach)
        window = held[..., lo - held_from : end - held_from, :]
        yield emitted, apply(window, lo)[..., emitted - lo : final - lo, :]
        emitted = final
        keep = max(0, emitted - reach)
        held, held_from = held[..., keep - held_from :, :].clone(), keep


__all__ = ["BICUBIC_REACH", "FINISH_ROWS", "Band", "bicubic_rows", "crop", "gather", "split", "windowed"]
