"""Padding and cropping to the sizes the networks need (tile plans join this module later)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Padding:
    """How an image was padded at the bottom and right, so the result can be cropped back."""

    height: int  # original size
    width: int
    bottom: int
    right: int

    @property
    def padded_size(self) -> tuple[int, int]:
        return self.height + self.bottom, self.width + self.right


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def reflect_pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Mirror padding at the bottom/right that works for any pad size.

    torch's reflect mode needs pad < size; tiny inputs (a 1x1 image padded to 64) need more, so
    the image is mirrored repeatedly, and a 1-pixel side is repeated.
    """
    while bottom > 0 or right > 0:
        h, w = x.shape[-2:]
        step_b = min(bottom, h - 1)
        step_r = min(right, w - 1)
        if step_b == 0 and step_r == 0:  # 1-pixel sides cannot be mirrored: repeat them
            return F.pad(x, (0, right, 0, bottom), mode="replicate")
        x = F.pad(x, (0, step_r, 0, step_b), mode="reflect")
        bottom -= step_b
        right -= step_r
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, Padding]:
    """Reflect-pad NCHW `x` at the bottom/right up to a multiple of `multiple` (as the published sampler)."""
    h, w = x.shape[-2:]
    pad = Padding(h, w, round_up(h, multiple) - h, round_up(w, multiple) - w)
    if pad.bottom == 0 and pad.right == 0:
        return x, pad
    return reflect_pad(x, pad.bottom, pad.right), pad


def crop_padding(x: torch.Tensor, pad: Padding, scale: int = 1) -> torch.Tensor:
    """Undo `pad_to_multiple` on a tensor that is `scale` times the padded size."""
    return x[..., : pad.height * scale, : pad.width * scale]


# -- tile plans ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """A rectangle in plan units (latent pixels): rows y0..y0+h, columns x0..x0+w."""

    y0: int
    x0: int
    h: int
    w: int

    def scaled(self, s: int) -> Tile:
        return Tile(self.y0 * s, self.x0 * s, self.h * s, self.w * s)

    def slices(self, s: int = 1) -> tuple[slice, slice]:
        t = self.scaled(s)
        return slice(t.y0, t.y0 + t.h), slice(t.x0, t.x0 + t.w)


def plan_axis(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, size) segments covering 0..length, each `size` a multiple of `multiple`.

    As few segments as the tile size allows with at least `overlap` shared between neighbours,
    all of one size (so they batch), spread evenly so no tile is mostly wasted at the end.
    `length` must itself be a multiple of `multiple` (the pipeline pads to that).
    """
    if length % multiple:
        raise ValueError(f"length {length} is not a multiple of {multiple}")
    overlap = max(0, overlap)
    # A tile must leave room for the overlap and still advance by at least one multiple.
    smallest = round_up(multiple + overlap, multiple) if overlap else multiple
    tile = max(smallest, (tile // multiple) * multiple)
    if tile >= length:
        return [(0, length)]
    count = -(-(length - overlap) // (tile - overlap))
    size = min(round_up(-(-(length + (count - 1) * overlap) // count), multiple), length)
    count = max(count, -(-length // size))
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [(s, size) for s in starts]


def plan_tiles(height: int, width: int, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    rows = plan_axis(height, tile, overlap, multiple)
    cols = plan_axis(width, tile, overlap, multiple)
    return [Tile(y, x, h, w) for y, h in rows for x, w in cols]


def _axis_ramp(start: int, size: int, segments: list[tuple[int, int]]) -> torch.Tensor:
    """1 inside, a linear ramp over the parts shared with the previous/next segment."""
    w = torch.ones(size, dtype=torch.float64)
    before = [s + n for s, n in segments if s < start and s + n > start]
    after = [s for s, _ in segments if start < s < start + size]
    if before:
        lo = max(before) - start
        w[:lo] = torch.minimum(w[:lo], torch.arange(1, lo + 1, dtype=torch.float64) / (lo + 1))
    if after:
        hi = start + size - min(after)
        w[size - hi :] = torch.minimum(w[size - hi :], torch.arange(hi, 0, -1, dtype=torch.float64) / (hi + 1))
    return w


def _scaled_ramp(start: int, size: int, segments: list[tuple[int, int]], scale: int) -> torch.Tensor:
    ramp = _axis_ramp(start, size, segments)
    return ramp.repeat_interleave(scale) if scale != 1 else ramp  # held constant over each unit's pixels


def _outer(wy: torch.Tensor, wx: torch.Tensor) -> torch.Tensor:
    return (wy[:, None] * wx[None, :])[None, None].float()


class TilePlan:
    """Tiles covering a (height x width) plan grid, with their blending weights."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, multiple: int = 1):
        self.height, self.width = height, width
        self.tiles = plan_tiles(height, width, tile, overlap, multiple)
        self._rows = sorted({(t.y0, t.h) for t in self.tiles})
        self._cols = sorted({(t.x0, t.w) for t in self.tiles})
        # Only the 1-D ramps are kept: a huge image has hundreds of tiles, and their 2-D
        # weights held together would take as much memory as the image.
        self._ramps: dict[tuple[str, int, int, int], torch.Tensor] = {}

    @property
    def is_whole(self) -> bool:
        return len(self.tiles) == 1

    def _ramp(self, axis: str, start: int, size: int, scale: int) -> torch.Tensor:
        key = (axis, start, size, scale)
        if key not in self._ramps:
            self._ramps[key] = _scaled_ramp(start, size, self._rows if axis == "y" else self._cols, scale)
        return self._ramps[key]

    def weight(self, index: int, scale: int = 1) -> torch.Tensor:
        """Smooth 1 x 1 x h x w weight of tile `index` (at `scale` x plan units) for overlap
        blending: 1 inside, linear ramps over the parts shared with neighbours (made on each
        call from cached 1-D ramps)."""
        tile = self.tiles[index]
        return _outer(self._ramp("y", tile.y0, tile.h, scale), self._ramp("x", tile.x0, tile.w, scale))


def _grown(x: torch.Tensor, rows: int) -> torch.Tensor:
    """`x` with zero rows added below up to `rows` (one new buffer, no concatenation copy)."""
    out = x.new_zeros(*x.shape[:-2], rows, x.shape[-1])
    out[..., : x.shape[-2], :] = x
    return out


def blend_rows(
    run: Callable[[list[Tile]], torch.Tensor],
    plan: TilePlan,
    *,
    batch_size: int,
    out_channels: int,
    out_scale: int = 1,
    images: int = 1,
    host: torch.device | str = "cpu",
) -> Iterator[tuple[int, torch.Tensor]]:
    """Run `run` over the plan's tiles and yield the blended result in row bands, top to bottom.

    `run(tiles)` returns the outputs of those tiles stacked tile-major: (len(tiles) * images)
    x C x (h * out_scale) x (w * out_scale); it is called `batch_size` tiles at a time within a
    row of tiles. Each band `(first_row, rows)` (rows in output units) is final: no later tile
    touches it. Only the rows that tiles still touch are held on `host`, so memory follows a
    row of tiles, not the image. Every pixel sums the same tiles in the same order as a whole-
    image blend would, so the bands are exactly that blend cut into pieces. One tile covering
    everything is yielded as it is, so an image that fits in a tile gives the untiled result.
    """
    if plan.is_whole:
        yield 0, run(plan.tiles).to(host)
        return
    s = out_scale
    starts = sorted({t.y0 for t in plan.tiles})
    top = 0  # first output row not yet yielded; the accumulators begin there
    out = torch.zeros(images, out_channels, 0, plan.width * s, device=host)
    total = torch.zeros(1, 1, 0, plan.width * s, device=host)
    for r, y in enumerate(starts):
        row = [(i, t) for i, t in enumerate(plan.tiles) if t.y0 == y]
        end = max((t.y0 + t.h) * s for _, t in row)
        if end - top > out.shape[-2]:  # grow the accumulators down to this row's bottom edge
            out, total = _grown(out, end - top), _grown(total, end - top)
        for first in range(0, len(row), batch_size):
            chunk = row[first : first + batch_size]
            result = run([t for _, t in chunk]).to(device=host, dtype=torch.float32)
            for k, (i, tile) in enumerate(chunk):
                w = plan.weight(i, s).to(host)
                ys, xs = tile.slices(s)
                ys = slice(ys.start - top, ys.stop - top)
                out[:, :, ys, xs] += result[k * images : (k + 1) * images] * w
                total[:, :, ys, xs] += w
        done = starts[r + 1] * s if r + 1 < len(starts) else plan.height * s
        if done > top:
            n = done - top
            yield top, out[:, :, :n] / total[:, :, :n]
            out, total = out[:, :, n:].clone(), total[:, :, n:].clone()
            top = done


def blend_tiles(
    run: Callable[[list[Tile]], torch.Tensor],
    plan: TilePlan,
    *,
    batch_size: int,
    out_channels: int,
    out_scale: int = 1,
    images: int = 1,
    host: torch.device | str = "cpu",
) -> torch.Tensor:
    """`blend_rows` gathered into the whole blended image (held on `host`)."""
    bands = [
        rows
        for _, rows in blend_rows(
            run, plan, batch_size=batch_size, out_channels=out_channels, out_scale=out_scale, images=images, host=host
        )
    ]
    return bands[0] if len(bands) == 1 else torch.cat(bands, dim=-2)


@dataclass(frozen=True)
class TilingConfig:
    """How big images are cut up. Sizes are in latent pixels (for x4 models: LR pixels)."""

    tile: int = 256  # UNet tile side; rounded to the network's size multiple
    overlap: int = 16  # shared by neighbouring UNet tiles, blended every step
    vae_tile: int = 128  # VQGAN tile side (the decoder makes f x this pixels per side)
    vae_overlap: int = 8  # shared by neighbouring VQGAN tiles
    batch: int = 1  # UNet tiles per network call (more is faster on a GPU with memory to spare)
    vae_batch: int = 1  # VQGAN tiles per network call
    host: str = "cpu"  # where the whole image is kept while tiles are computed

    def __post_init__(self):
        if self.tile < 1 or self.vae_tile < 1 or self.batch < 1 or self.vae_batch < 1:
            raise ValueError(f"tile sizes and batch must be positive, got {self}")
        if self.overlap < 0 or self.vae_overlap < 0:
            raise ValueError(f"overlaps must be >= 0, got {self}")

    def smaller(self, stage: str) -> TilingConfig | None:
        """A configuration to retry `stage` ("unet" or "vae") with after running out of memory."""
        from dataclasses import replace

        if stage == "unet" and self.batch > 1:
            return replace(self, batch=self.batch // 2)
        if stage == "vae" and self.vae_batch > 1:
            return replace(self, vae_batch=self.vae_batch // 2)
        if stage == "unet" and self.tile > 8:
            return replace(self, tile=self.tile // 2)
        if stage == "vae" and self.vae_tile > 8:
            return replace(self, vae_tile=self.vae_tile // 2)
        return None


# Rough activation memory per latent pixel of the published-size networks in float32 (from
# torch.cuda.max_memory_allocated in `bench`); scaled by width and dtype for other networks.
UNET_BYTES_PER_PIXEL = 12_000  # v3 UNet (model_channels 160) at one timestep
VAE_BYTES_PER_PIXEL = 40_000  # f4 VQGAN (ch 128) decode, the hungrier direction
# The VQGAN's mid-block attends over every latent pixel of a tile: its cost grows with the
# square of the tile's area, so VQGAN tiles stay at 128 latent pixels (512 output pixels).
MAX_VAE_TILE = 128
MAX_UNET_TILE = 1024
CPU_TILING = TilingConfig(tile=256, overlap=16, vae_tile=MAX_VAE_TILE, vae_overlap=8)


def unet_bytes_per_pixel(width: int = 160, dtype_bytes: int = 4) -> float:
    """Activation memory of one UNet call per pixel it sees, for a UNet `width` channels wide."""
    return UNET_BYTES_PER_PIXEL * width / 160 * dtype_bytes / 4


def vae_bytes_per_pixel(width: int = 128, dtype_bytes: int = 4) -> float:
    """Activation memory of one VQGAN decode per latent pixel, for a VQGAN `width` channels wide."""
    return VAE_BYTES_PER_PIXEL * width / 128 * dtype_bytes / 4


def auto_tiling(
    device: torch.device | str,
    *,
    unet_width: int = 160,
    vae_width: int = 128,
    dtype_bytes: int = 4,
    size_multiple: int = 64,
    free_bytes: int | None = None,
) -> TilingConfig:
    """Tile sizes that fit: fixed safe values on the CPU; on a GPU, half of its free memory."""
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_TILING
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    budget = free_bytes * 0.5
    unet_px = unet_bytes_per_pixel(unet_width, dtype_bytes)
    vae_px = vae_bytes_per_pixel(vae_width, dtype_bytes)
    tile = int((budget / unet_px) ** 0.5) // size_multiple * size_multiple
    vae_tile = int((budget / vae_px) ** 0.5) // 8 * 8
    tile = max(size_multiple, min(tile, MAX_UNET_TILE))
    vae_tile = max(32, min(vae_tile, MAX_VAE_TILE))
    # Where the caps leave memory unused, several tiles go through the networks at once.
    batch = max(1, min(8, int(budget / (unet_px * tile**2))))
    vae_batch = max(1, min(16, int(budget / (vae_px * vae_tile**2))))
    return TilingConfig(tile=tile, overlap=16, vae_tile=vae_tile, vae_overlap=8, batch=batch, vae_batch=vae_batch)
