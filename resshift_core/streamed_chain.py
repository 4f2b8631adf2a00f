"""A one-step pixel-space chain run a row of tiles at a time, for outputs too large to hold.

A pixel-space model's chain state has the output's size (a 16000 x 12000 result is 2.3 GB per
float32 tensor, and the chain holds several). With one step, every output pixel depends only on
the tiles that cover it: x_T = z_y + s * noise is elementwise, the network runs tile by tile,
the tiles are blended, and the x0 estimate and posterior mean are elementwise again. So the
chain can walk down the image: make the rows of z_y (bicubic rows of the LR image) and of the
noise field (`row_noise`, the very values the whole draw gives) for one row of tiles, run and
blend it, and finish the rows no later tile touches. The result equals the whole-image tiled
chain (tests/test_streamed_chain.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from .oom import retry_bands_with_smaller_tiles
from .row_bands import FINISH_ROWS, Band, bicubic_rows, split
from .row_noise import NoiseRows
from .sampler import NoiseSource, SeededNoise, StepInfo, posterior_step, prior_scale, x0_estimate
from .schedule import Schedule, make_schedule
from .tiling import Tile, TilePlan, TilingConfig, blend_rows

if TYPE_CHECKING:
    from .pipeline import Prepared, ResShiftPipeline


def can_stream_chain(pipe: ResShiftPipeline, steps: int, noise: NoiseSource) -> bool:
    """Whether `streamed_one_step` applies: a pixel-space model without a noise-map input,
    sampled in one step from seeded noise (explicit noise tensors are whole already)."""
    return pipe.streams_chain(steps) and isinstance(noise, SeededNoise)


class _ChainRows:
    """Rows of z_y and x_T for one image batch, made on demand top to bottom and forgotten once
    finished."""

    def __init__(self, lq: torch.Tensor, sf: int, noise: SeededNoise, scale: float):
        self.lq, self.sf, self.scale = lq, sf, scale
        self.height, self.width = lq.shape[-2] * sf, lq.shape[-1] * sf
        self.fields = [NoiseRows(g, lq.shape[1], self.height, self.width) for g in noise.generators]
        self.first = 0  # image row of the cached tensors' first row
        self.z_y = lq.new_zeros(*lq.shape[:2], 0, self.width)
        self.x = self.z_y.clone()

    def rows(self, first: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_y, x_T) rows first..stop."""
        have = self.first + self.z_y.shape[-2]
        if stop > have:
            z_y = bicubic_rows(self.lq, self.sf, have, stop).float()
            noise = torch.stack([field.rows(have, stop) for field in self.fields]).to(z_y.device)
            x = noise.mul_(self.scale).add_(z_y)  # z_y + scale * noise, as prior_sample, in place
            self.z_y = torch.cat([self.z_y, z_y], dim=-2)
            self.x = torch.cat([self.x, x], dim=-2)
            del noise, x
        lo, hi = first - self.first, stop - self.first
        return self.z_y[..., lo:hi, :], self.x[..., lo:hi, :]

    def release(self, before: int) -> None:
        drop = before - self.first
        if drop > 0 and 2 * drop >= self.z_y.shape[-2]:  # compact once most rows are done, not every band
            self.z_y, self.x = self.z_y[..., drop:, :].clone(), self.x[..., drop:, :].clone()
            self.first = before
            for field in self.fields:
                field.release(before)


def _no_noise(index: int, like: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("internal error: the last step of a chain draws no noise")


def streamed_one_step(
    pipe: ResShiftPipeline,
    prepared: Prepared,
    noise: SeededNoise,
    tiling: TilingConfig,
    callback: Callable[[StepInfo], None] | None = None,
) -> Iterator[Band]:
    """The decoded output ([-1, 1], uncropped) of a one-step pixel-space chain, in row bands;
    the same values as `encode` + `sample` + `decode_bands` with this tiling."""
    schedule: Schedule = make_schedule(pipe.preset.schedule, 1, pipe.preset.spacing)
    preset = pipe.preset
    lq = prepared.lq.to(tiling.host).float()
    mask = None if prepared.mask is None else prepared.mask.to(tiling.host)
    chain = _ChainRows(lq, pipe.sf, noise, prior_scale(schedule, preset.prior))
    index = 0
    t = torch.full((lq.shape[0],), schedule.timesteps[index], dtype=torch.long)
    input_scale = schedule.input_scale(index, preset.latent) if preset.normalize_input else 1.0
    net = pipe.unet_net
    images = lq.shape[0]

    def run(tiles: list[Tile]) -> torch.Tensor:
        first, stop = tiles[0].y0, tiles[0].y0 + tiles[0].h  # a batch is within one row of tiles
        z_y, x = chain.rows(first, stop)

        def crops(source: torch.Tensor, divide: float = 1.0) -> torch.Tensor:
            cut = [
                source[..., tile.y0 - first : tile.y0 - first + tile.h, tile.x0 : tile.x0 + tile.w] for tile in tiles
            ]
            joined = torch.cat(cut)
            # The input normalisation is elementwise: on the crops it gives what it gives on the
            # whole state, without a band-sized copy for every batch of tiles.
            return pipe._to_device(joined / divide if divide != 1.0 else joined)

        masks = None if mask is None else crops(mask[..., first:stop, :])
        ts = t.to(pipe.device).repeat(len(tiles))
        return net(crops(x, input_scale), ts, lq=crops(z_y), mask=masks, noise=None).float()

    def blended(tc: TilingConfig) -> Iterator[Band]:
        plan = TilePlan(chain.height, chain.width, tc.tile, tc.overlap, net.size_multiple)
        return blend_rows(run, plan, batch_size=tc.batch, out_channels=lq.shape[1], images=images, host=tiling.host)

    bands = retry_bands_with_smaller_tiles(
        "unet", tiling, blended, oom_check=pipe.oom_check, on_out_of_memory=pipe.on_out_of_memory, device=pipe.device
    )
    for first, output in split(bands, FINISH_ROWS):
        stop = first + output.shape[-2]
        z_y, x = chain.rows(first, stop)
        denoised = x0_estimate(output, z_y, predict=preset.predict, clip=True)  # pixel space clips, as published
        x0 = posterior_step(x, denoised, index, schedule, _no_noise, draw_index=1)
        chain.release(stop)
        yield first, (x0 / preset.scale_factor).float()
    if callback is not None:
        callback(StepInfo(0, 1, schedule.timesteps[index], None, None))


__all__ = ["can_stream_chain", "streamed_one_step"]
