"""The data flow of ResShift, one function per arrow:

    image (+mask) --prepare--> LR in [-1, 1], padded
                  --encode---> z_y = VQGAN.encode(bicubic_up(LR)) * scale_factor
                  --sample---> x_T = z_y + kappa sqrt(eta_T) noise, T reverse steps
                  --decode---> VQGAN.decode(x_0 / scale_factor), cropped back, in [0, 1]

The command line and the ComfyUI nodes call these; each takes and returns plain tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F

from .checkpoints.loading import LoadedModel
from .colorfix import WAVELET_REACH
from .colorfix import color_fix as apply_color_fix
from .errors import ArchitectureError, InputError
from .inpaint_masks import blacken_holes, normalize_masks
from .models.unet import ResShiftUNet, UNetConfig
from .models.vqgan import VQGAN, VQGANConfig
from .oom import is_out_of_memory, retry_bands_with_smaller_tiles, retry_with_smaller_tiles
from .pairing import check_pair, lq_per_latent
from .presets import DiffusionPreset
from .request_checks import (
    check_color_fix,
    check_images,
    check_seeds,
    check_tile_sizes,
    display_name,
    resolve_steps,
)
from .row_bands import FINISH_ROWS, Band, bicubic_rows, crop, gather, split, windowed
from .sampler import NOISE_MAP, ExplicitNoise, NoiseSource, SeededNoise, StepInfo, sample
from .schedule import make_schedule
from .streamed_chain import can_stream_chain, streamed_one_step
from .tiling import (
    Padding,
    Tile,
    TilePlan,
    TilingConfig,
    auto_tiling,
    blend_rows,
    blend_tiles,
    crop_padding,
    pad_to_multiple,
    unet_bytes_per_pixel,
    vae_bytes_per_pixel,
)

BICUBIC_MARGIN = 2  # LR pixels of context a bicubic upsampler reads beyond a tile
AUTO: Literal["auto"] = "auto"
TilingChoice = TilingConfig | None | Literal["auto"]


@dataclass
class Prepared:
    """The LR condition as the networks need it."""

    lq: torch.Tensor  # B x 3 x H x W in [-1, 1], padded
    mask: torch.Tensor | None  # B x 1 x H x W in [-1, 1] (1 = hole), padded; inpainting only
    padding: Padding
    sf: int

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the result: sf x the original (unpadded) image."""
        return self.padding.height * self.sf, self.padding.width * self.sf


def _crop(x: torch.Tensor, rows_cols: tuple[slice, slice]) -> torch.Tensor:
    rows, cols = rows_cols
    return x[..., rows, cols]


class ResShiftPipeline:
    """A UNet, its VQGAN and a diffusion preset on one device, in one dtype.

    `vae=None` is a pixel-space model (preset.latent False): the chain runs on the bicubic-
    upsampled image itself and the UNet is conditioned on that same upsampled image.
    """

    def __init__(
        self,
        unet: LoadedModel,
        vae: LoadedModel | None,
        *,
        preset: DiffusionPreset | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = True,
        place_models: bool = True,
        oom_check: Callable[[BaseException], bool] = is_out_of_memory,
        on_out_of_memory: Callable[[str, TilingConfig], None] | None = None,
        vae_hint: str = "",
    ):
        """`place_models=False` leaves the networks where they are (a host application such as
        ComfyUI has put them on `device` itself). On an out-of-memory error in tiled work
        (`oom_check`), `on_out_of_memory(stage, smaller_tiling)` runs before the retry with smaller
        tiles; by default it empties the CUDA cache. `vae_hint` says how a VAE is given in the
        caller's own terms, for the message when one is missing."""
        self.unet, self.vae = unet, vae
        chosen = preset or unet.preset
        if chosen is None:
            raise ValueError("no diffusion preset: pass preset= or load the UNet with load_unet")
        self.preset: DiffusionPreset = chosen
        if not isinstance(unet.model, ResShiftUNet) or not isinstance(unet.config, UNetConfig):
            raise ArchitectureError(f"{display_name(unet)} is a {unet.part}, not a ResShift model (UNet)")
        self.unet_net: ResShiftUNet = unet.model
        self.unet_config: UNetConfig = unet.config
        self._vae_net: VQGAN | None = None
        self._vae_config: VQGANConfig | None = None
        if vae is not None:
            if not isinstance(vae.model, VQGAN) or not isinstance(vae.config, VQGANConfig):
                raise ArchitectureError(f"{display_name(vae)} is a {vae.part}, not a VQGAN autoencoder")
            self._vae_net, self._vae_config = vae.model, vae.config
        self.device = torch.device(device) if device is not None else next(unet.model.parameters()).device
        self.dtype = dtype
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.pixel_space = vae is None
        self.oom_check, self.on_out_of_memory = oom_check, on_out_of_memory
        check_pair(self.unet_config, self.preset, self._vae_config, model_name=display_name(unet), vae_hint=vae_hint)
        for net in (self.unet_net, self._vae_net) if place_models else ():
            if net is not None:
                net.to(device=self.device, dtype=dtype)
                net.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs lack it

    @property
    def vae_net(self) -> VQGAN:
        if self._vae_net is None:
            raise RuntimeError("internal error: a pixel-space pipeline has no VAE")
        return self._vae_net

    @property
    def vae_config(self) -> VQGANConfig:
        if self._vae_config is None:
            raise RuntimeError("internal error: a pixel-space pipeline has no VAE")
        return self._vae_config

    # -- what the pair needs -------------------------------------------------------------
    @property
    def sf(self) -> int:
        return int(self.preset.sf)

    @property
    def lq_per_latent(self) -> int:
        """Condition pixels per latent pixel: the UNet's LR feature extractor downsamples by this."""
        return lq_per_latent(self.unet_config)

    @property
    def lr_multiple(self) -> int:
        """LR sides are padded to a multiple of this."""
        if self.pixel_space:  # the HR image must be a multiple of the UNet's multiple
            m = self.unet_net.size_multiple
            return m // math.gcd(m, self.sf)
        # The latent (LR * sf / factor) must be a whole multiple of the UNet's multiple.
        step = self.unet_net.size_multiple * self.latent_factor
        return step // math.gcd(step, self.sf)

    @property
    def lr_per_latent(self) -> int:
        """LR pixels per latent pixel (latent models: the VAE's factor over the scale)."""
        return max(1, self.latent_factor // self.sf)

    def tiling(
        self,
        tile: int | None = None,
        overlap: int | None = None,
        vae_tile: int | None = None,
        free_bytes: int | None = None,
    ) -> TilingConfig:
        """Tiling for this pipeline's device. `tile` and `overlap` (UNet) and `vae_tile` are in
        input-image (LR) pixels and override the automatic choice; `free_bytes` is the
        accelerator memory to size automatic tiles by (default: what the driver reports)."""
        check_tile_sizes(tile=tile, overlap=overlap, vae_tile=vae_tile)
        fold = self.unet_fold
        cfg = auto_tiling(
            self.device,
            unet_width=self.unet_config.model_channels,
            vae_width=self._vae_width,
            dtype_bytes=self._dtype_bytes,
            size_multiple=self.unet_net.size_multiple // fold,
            free_bytes=free_bytes,
        )
        if fold > 1:  # sized in the UNet's own (folded) pixels; plans count output pixels
            cfg = replace(cfg, tile=cfg.tile * fold, overlap=cfg.overlap * fold)
        changes: dict[str, Any] = {}
        if tile is not None:
            changes["tile"] = self.lr_to_latent(tile)
        if overlap is not None:
            changes["overlap"] = self.lr_to_latent(overlap)
        if vae_tile is not None:
            changes["vae_tile"] = self.lr_to_latent(vae_tile)
        return replace(cfg, **changes)

    @property
    def unet_fold(self) -> int:
        """Pixels per UNet pixel along a side (a pixel-folding UNet's pixel_unshuffle, else 1)."""
        return self.unet_config.pixel_unshuffle

    @property
    def _vae_width(self) -> int:
        return 128 if self.pixel_space else self.vae_config.ch

    @property
    def _dtype_bytes(self) -> int:
        return torch.finfo(self.dtype).bits // 8

    def activation_bytes(self, stage: str, plan_pixels: int, tiling: TilingConfig) -> int:
        """Roughly what one network call of `stage` ("unet" or "vae") needs beyond its weights,
        for a whole batch of `plan_pixels` latent (pixel-space: output) pixels cut by `tiling`."""
        if stage == "unet":
            pixels = min(plan_pixels, tiling.tile**2 * tiling.batch) // self.unet_fold**2
            return int(unet_bytes_per_pixel(self.unet_config.model_channels, self._dtype_bytes) * pixels)
        pixels = min(plan_pixels, tiling.vae_tile**2 * tiling.vae_batch)
        return int(vae_bytes_per_pixel(self._vae_width, self._dtype_bytes) * pixels)

    def largest_call_bytes(self, tiling: TilingConfig) -> int:
        """`activation_bytes` of the hungriest network call a full tile of `tiling` makes."""
        stages = ("unet",) if self.pixel_space else ("unet", "vae")
        return max(self.activation_bytes(stage, 2**62, tiling) for stage in stages)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the networks' parameters and buffers, as they are placed."""
        nets = [n for n in (self.unet_net, self._vae_net) if n is not None]
        return sum(t.numel() * t.element_size() for n in nets for t in [*n.parameters(), *n.buffers()])

    def lr_to_latent(self, pixels: int) -> int:
        """Input-image pixels -> latent pixels (for pixel-space models the 'latent' is the output)."""
        if self.pixel_space:
            return pixels * self.sf
        return max(1, pixels * self.sf // self.latent_factor)

    # -- the arrows ----------------------------------------------------------------------
    def prepare(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> Prepared:
        """images: B x 3 x h x w in [0, 1]. masks (inpainting models only): any size and 1 to 4
        channels, 1 = fill in; `inpaint_masks.normalize_masks` says how they are read (soft
        values are binarised at 0.5), and the LR image's hole is made black as in training."""
        check_images(images)
        if images.shape[1] != 3:
            raise InputError(f"images must have 3 (RGB) channels, got {images.shape[1]}; convert grey/RGBA first")
        wants_mask = self.unet_config.cond_mask
        if wants_mask and masks is None:
            raise InputError("this is an inpainting model: give a mask (white = area to fill in)")
        if masks is not None and not wants_mask:
            raise InputError("a mask was given but this model does not do inpainting; leave the mask out")
        images = images.to(device=self.device, dtype=torch.float32)
        lq = images * 2 - 1
        mask = None
        if masks is not None:
            hole = normalize_masks(masks, images)
            lq = blacken_holes(lq, hole)
            mask, _ = pad_to_multiple(hole * 2 - 1, self.lr_multiple)
        lq, padding = pad_to_multiple(lq, self.lr_multiple)
        return Prepared(lq=lq, mask=mask, padding=padding, sf=self.sf)

    def streams_chain(self, steps: int) -> bool:
        """Whether a tiled `restore_bands` with seeded noise runs the whole chain a row of tiles at
        a time (`streamed_chain`): a one-step pixel-space model without a noise-map input."""
        return self.pixel_space and steps == 1 and not self.unet_config.noise_channels

    def resolve_steps(self, steps: int | None) -> int:
        """The number of sampling steps to run (see `request_checks.resolve_steps`)."""
        return resolve_steps(self.preset, steps)

    def check_seeds(self, seeds: Sequence[int] | None, batch: int) -> list[int]:
        """One seed per image (see `request_checks.check_seeds`)."""
        return check_seeds(seeds, batch)

    def _retrying(self, stage: str, tiling: TilingConfig, work: Callable[[TilingConfig], torch.Tensor]) -> torch.Tensor:
        return retry_with_smaller_tiles(
            stage, tiling, work, oom_check=self.oom_check, on_out_of_memory=self.on_out_of_memory, device=self.device
        )

    # -- tiling helpers ---------------------------------------------------------------
    @property
    def latent_factor(self) -> int:
        """HR pixels per latent pixel (the VQGAN's downsampling)."""
        return 1 if self.pixel_space else self.vae_config.downsample_factor

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=self.memory_format)

    # -- the arrows, continued ------------------------------------------------------------
    @torch.no_grad()
    def encode(self, prepared: Prepared, tiling: TilingConfig | None = None) -> torch.Tensor:
        """z_y: the VQGAN latent of the bicubic-upsampled LR image (float32).

        Tiled, each tile upsamples its own LR crop (with a margin for the bicubic kernel), so the
        HR-size image never exists whole.
        """
        if tiling is not None and not self.pixel_space:
            return self._retrying("vae", tiling, lambda tc: self._encode_tiled(prepared, tc))
        x = prepared.lq
        if self.sf != 1:
            x = F.interpolate(x, scale_factor=self.sf, mode="bicubic")
        if self.pixel_space:
            return x.float()
        return self.vae_net.encode(self._to_device(x)).float() * self.preset.scale_factor

    def _encode_tiled(self, prepared: Prepared, tiling: TilingConfig) -> torch.Tensor:
        lq = prepared.lq.to(tiling.host)
        ratio = self.lr_per_latent
        height, width = lq.shape[-2] // ratio, lq.shape[-1] // ratio
        plan = TilePlan(height, width, tiling.vae_tile, tiling.vae_overlap)

        def run(tiles: list[Tile]) -> torch.Tensor:
            batch = []
            for tile in tiles:
                t = tile.scaled(ratio)
                top, left = min(BICUBIC_MARGIN, t.y0), min(BICUBIC_MARGIN, t.x0)
                bottom = min(BICUBIC_MARGIN, lq.shape[-2] - t.y0 - t.h)
                right = min(BICUBIC_MARGIN, lq.shape[-1] - t.x0 - t.w)
                crop = lq[..., t.y0 - top : t.y0 + t.h + bottom, t.x0 - left : t.x0 + t.w + right]
                crop = self._to_device(crop).float()
                if self.sf != 1:
                    crop = F.interpolate(crop, scale_factor=self.sf, mode="bicubic")
                s = self.sf
                batch.append(crop[..., top * s : top * s + t.h * s, left * s : left * s + t.w * s])
            z = self.vae_net.encode(self._to_device(torch.cat(batch)))
            return z.float() * self.preset.scale_factor

        return blend_tiles(
            run,
            plan,
            batch_size=tiling.vae_batch,
            out_channels=self.vae_config.latent_channels,
            images=lq.shape[0],
            host=tiling.host,
        )

    def condition(self, prepared: Prepared, z_y: torch.Tensor) -> tuple[torch.Tensor, int]:
        """What the UNet's LR input is (preset.condition), and its pixels per latent pixel."""
        if self.pixel_space:  # conditioned on the upsampled image the chain starts from
            return z_y, 1
        if self.preset.condition == "latent":
            return z_y, 1
        if self.preset.condition == "lr_at_latent":  # the upsampled LR, resized to the latent's size
            up = (
                F.interpolate(prepared.lq.float(), scale_factor=self.sf, mode="bicubic")
                if self.sf != 1
                else prepared.lq
            )
            small = F.interpolate(up.float(), size=tuple(z_y.shape[-2:]), mode="bicubic", align_corners=False)
            return small.clamp(-1, 1).to(z_y.device), 1
        return prepared.lq, self.lq_per_latent

    def denoiser(
        self,
        prepared: Prepared,
        tiling: TilingConfig | None = None,
        z_y: torch.Tensor | None = None,
        noise_map: torch.Tensor | None = None,
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The network as the sampler sees it: x0 = f(x_t scaled, t), conditioned on the LR
        (and, for a noise-map student, on `noise_map`, at the latent's size).

        Tiled, every call runs the UNet over overlapping tiles and blends their x0 estimates,
        so each step sees one consistent image (and one noise map).
        """
        net = self.unet_net
        if z_y is None:
            if self.pixel_space or self.preset.condition != "lr":
                raise ValueError("this denoiser is conditioned on z_y: pass it")
            cond, ratio = prepared.lq, self.lq_per_latent
        else:
            cond, ratio = self.condition(prepared, z_y)
        if tiling is None:
            lq = self._to_device(cond)
            mask = None if prepared.mask is None else self._to_device(prepared.mask)
            nmap = None if noise_map is None else self._to_device(noise_map)

            def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return net(self._to_device(x), t.to(self.device), lq=lq, mask=mask, noise=nmap).float()

            return denoise

        lq_host = cond.to(tiling.host)
        mask_host = None if prepared.mask is None else prepared.mask.to(tiling.host)
        map_host = None if noise_map is None else noise_map.to(tiling.host)
        state = {"tiling": tiling}

        def denoise_tiled(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            def work(tc: TilingConfig) -> torch.Tensor:
                state["tiling"] = tc  # later steps start from the size that worked
                plan = TilePlan(x.shape[-2], x.shape[-1], tc.tile, tc.overlap, net.size_multiple)
                images = x.shape[0]

                def tiles_of(source: torch.Tensor | None, tiles: list[Tile], scale: int = 1) -> torch.Tensor | None:
                    if source is None:
                        return None
                    return self._to_device(torch.cat([_crop(source, tile.slices(scale)) for tile in tiles]))

                def run(tiles: list[Tile]) -> torch.Tensor:
                    xs = torch.cat([_crop(x, tile.slices()) for tile in tiles])
                    ts = t.to(self.device).repeat(len(tiles))
                    return net(
                        self._to_device(xs),
                        ts,
                        lq=tiles_of(lq_host, tiles, ratio),
                        mask=tiles_of(mask_host, tiles, ratio),
                        noise=tiles_of(map_host, tiles),
                    ).float()

                return blend_tiles(
                    run, plan, batch_size=tc.batch, out_channels=x.shape[1], images=images, host=x.device
                )

            return self._retrying("unet", state["tiling"], work)

        return denoise_tiled

    def draw_noise_map(self, z_y: torch.Tensor, noise: NoiseSource) -> torch.Tensor | None:
        """A student's standard normal noise map at the latent's size (RSD draws it before the
        prior); None for every other model."""
        channels = self.unet_config.noise_channels
        if not channels:
            return None
        like = torch.empty((z_y.shape[0], channels, *z_y.shape[-2:]), dtype=torch.float32, device=z_y.device)
        return noise(NOISE_MAP, like)

    @torch.no_grad()
    def sample(
        self,
        z_y: torch.Tensor,
        prepared: Prepared,
        noise: NoiseSource,
        *,
        steps: int | None = None,
        callback: Callable[[StepInfo], None] | None = None,
        tiling: TilingConfig | None = None,
    ) -> torch.Tensor:
        """The reverse chain. Tiled, the whole latent stays on the host and one noise field is
        drawn for the whole image, so overlapping tiles agree."""
        schedule = make_schedule(self.preset.schedule, self.resolve_steps(steps), self.preset.spacing)
        if tiling is not None:
            z_y = z_y.to(tiling.host)
        noise_map = self.draw_noise_map(z_y, noise)
        return sample(
            self.denoiser(prepared, tiling, z_y, noise_map),
            z_y,
            schedule,
            noise,
            normalize_input=self.preset.normalize_input,
            latent=self.preset.latent,
            callback=callback,
            clip_denoised=self.pixel_space,  # as published: clip x0 only without an autoencoder
            predict=self.preset.predict,
            prior=self.preset.prior,
        )

    @torch.no_grad()
    def decode_raw(self, z0: torch.Tensor, prepared: Prepared, tiling: TilingConfig | None = None) -> torch.Tensor:
        """Decoded image in [-1, 1], unclamped, cropped to sf x the original size."""
        return gather(self.decode_bands(z0, prepared, tiling))

    @torch.no_grad()  # on a generator: every resumption runs without autograd, not the consumer
    def decode_bands(self, z0: torch.Tensor, prepared: Prepared, tiling: TilingConfig | None = None) -> Iterator[Band]:
        """`decode_raw` as row bands, top to bottom (see `row_bands`): tiled, each row of VQGAN
        tiles is blended and handed on before the next is decoded, so the full-resolution float
        image is never held whole. The work runs as the bands are taken."""
        yield from self._decoded_bands(z0, prepared, tiling)

    def _decoded_bands(self, z0: torch.Tensor, prepared: Prepared, tiling: TilingConfig | None) -> Iterator[Band]:
        z0 = z0 / self.preset.scale_factor
        bands: Iterable[Band]
        if self.pixel_space:
            bands = [(0, z0.float())]
        elif tiling is None:
            bands = [(0, self.vae_net.decode(self._to_device(z0), quantize=self.preset.quantize).float())]
        else:
            bands = retry_bands_with_smaller_tiles(
                "vae",
                tiling,
                lambda tc: self._decode_rows(z0, tc),
                oom_check=self.oom_check,
                on_out_of_memory=self.on_out_of_memory,
                device=self.device,
            )
        return crop(bands, *prepared.output_size)

    def _decode_rows(self, z0: torch.Tensor, tiling: TilingConfig) -> Iterator[Band]:
        z0 = z0.to(tiling.host)
        plan = TilePlan(z0.shape[-2], z0.shape[-1], tiling.vae_tile, tiling.vae_overlap)

        def run(tiles: list[Tile]) -> torch.Tensor:
            zs = torch.cat([_crop(z0, tile.slices()) for tile in tiles])
            return self.vae_net.decode(self._to_device(zs), quantize=self.preset.quantize).float()

        bands = blend_rows(
            run,
            plan,
            batch_size=tiling.vae_batch,
            out_channels=3,
            out_scale=self.latent_factor,
            images=z0.shape[0],
            host=tiling.host,
        )
        return split(bands, FINISH_ROWS)

    def _known_rows(self, prepared: Prepared, first: int, stop: int, device: torch.device):
        """(hole, lq) rows in [0, 1] at the output's size, for pasting the known pixels back."""
        if prepared.mask is None:
            return None
        hole = crop_padding(prepared.mask, prepared.padding)[..., first:stop, :].to(device)
        lq = crop_padding(prepared.lq, prepared.padding)[..., first:stop, :].to(device)
        return (hole + 1) / 2, (lq + 1) / 2

    def to_image(
        self, decoded: torch.Tensor, prepared: Prepared, paste_known: bool = True, first_row: int = 0
    ) -> torch.Tensor:
        """[-1, 1] -> [0, 1]; for inpainting the known pixels are pasted back (published mask_back).
        `decoded` may be the rows from `first_row` on of the output."""
        out = (decoded.clamp(-1, 1) + 1) / 2
        known = self._known_rows(prepared, first_row, first_row + out.shape[-2], out.device) if paste_known else None
        if known is not None:
            hole, lq = known
            out = out * hole + lq * (1 - hole)
        return out

    def _color_fixed(self, decoded: torch.Tensor, prepared: Prepared, first: int, method: str) -> torch.Tensor:
        """Rows first.. of `finish` with a colour fix, from the decoded rows alone."""
        restored = self.to_image(decoded, prepared, paste_known=False, first_row=first)
        stop = first + decoded.shape[-2]
        if prepared.mask is None:
            lq = crop_padding(prepared.lq, prepared.padding)
            reference = bicubic_rows(lq, self.sf, first, stop, values=lambda x: (x.to(restored.device) + 1) / 2)
            reference = reference.clamp(0, 1)
        else:
            reference = self.to_image(decoded, prepared, first_row=first)
        fixed = apply_color_fix(restored, reference, method)
        return self.to_image(fixed * 2 - 1, prepared, first_row=first)

    def finish(self, decoded: torch.Tensor, prepared: Prepared, color_fix: str = "none") -> torch.Tensor:
        """The decoded batch ([-1, 1], cropped) as images in [0, 1]: colour-fixed against the input
        (`none`, `wavelet` or `adain`), then, for inpainting, the known pixels pasted back.

        For inpainting the colour reference is the pasted result itself: the input's colours where
        they are known, the restoration's own in the hole (the input has nothing there)."""
        return gather(self.finish_bands([(0, decoded)], prepared, color_fix))

    def finish_bands(self, bands: Iterable[Band], prepared: Prepared, color_fix: str = "none") -> Iterator[Band]:
        """`finish` over row bands of the decoded output, giving the same pixels band by band. The
        wavelet fix is local (each band is fixed with its neighbours' rows in reach); adain needs
        the whole image's statistics, so it gathers the bands first."""
        check_color_fix(color_fix)
        if color_fix == "none":
            return ((first, self.to_image(rows, prepared, first_row=first)) for first, rows in bands)
        if color_fix == "adain":
            whole = gather(bands)
            return iter([(0, self._color_fixed(whole, prepared, 0, color_fix))])
        return windowed(
            bands,
            prepared.output_size[0],
            WAVELET_REACH,
            lambda window, first: self._color_fixed(window, prepared, first, color_fix),
        )

    def restore(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        *,
        seeds: Sequence[int] | None = None,
        noise: NoiseSource | None = None,
        steps: int | None = None,
        tiling: TilingChoice = AUTO,
        color_fix: str = "none",
        callback: Callable[[StepInfo], None] | None = None,
    ) -> torch.Tensor:
        """The whole chain: B x 3 x h x w in [0, 1] -> B x 3 x sf*h x sf*w in [0, 1].

        `masks`: inpainting only, see `prepare`. `seeds`: one per image (image i's noise depends on
        its seed alone), or `noise` for explicit draws. `steps`: None = the preset's default,
        fewer than trained respaces the chain. `tiling`: "auto" (sized for this device), a
        TilingConfig, or None to run each network on the whole image at once; an image that
        fits in one tile gives exactly the untiled result. `color_fix`: see `finish`.
        `callback(StepInfo)` runs after every step (raise from it to cancel).
        """
        return gather(
            self.restore_bands(
                images,
                masks,
                seeds=seeds,
                noise=noise,
                steps=steps,
                tiling=tiling,
                color_fix=color_fix,
                callback=callback,
            )
        )

    def restore_bands(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        *,
        seeds: Sequence[int] | None = None,
        noise: NoiseSource | None = None,
        steps: int | None = None,
        tiling: TilingChoice = AUTO,
        color_fix: str = "none",
        callback: Callable[[StepInfo], None] | None = None,
    ) -> Iterator[Band]:
        """`restore` as row bands of the result, top to bottom (see `row_bands`); the same pixels.

        Tiled, the full-resolution result is never held whole in floating point: the VQGAN
        decodes a row of tiles at a time, and a one-step pixel-space model with seeded noise runs
        its whole chain a row of tiles at a time (`streamed_chain`); its callback then sees
        `x` and `denoised` as None. The arguments are checked now; the work runs as the bands
        are taken.
        """
        check_color_fix(color_fix)  # before any work is done
        steps = self.resolve_steps(steps)
        prepared = self.prepare(images, masks)
        if noise is None:
            noise = SeededNoise(self.check_seeds(seeds, images.shape[0]))
        if isinstance(tiling, str):
            if tiling != AUTO:
                raise InputError(f"tiling must be 'auto', None or a TilingConfig, got {tiling!r}")
            tiling = self.tiling()
        chosen: TilingConfig | None = tiling

        @torch.no_grad()  # on a generator: every resumption runs without autograd, not the consumer
        def bands() -> Iterator[Band]:
            if chosen is not None and can_stream_chain(self, steps, noise):
                assert isinstance(noise, SeededNoise)
                decoded = crop(streamed_one_step(self, prepared, noise, chosen, callback), *prepared.output_size)
            else:
                z_y = self.encode(prepared, chosen)
                z0 = self.sample(z_y, prepared, noise, steps=steps, callback=callback, tiling=chosen)
                del z_y
                decoded = self.decode_bands(z0, prepared, chosen)
            yield from self.finish_bands(decoded, prepared, color_fix)

        return bands()


__all__ = ["AUTO", "ExplicitNoise", "Prepared", "ResShiftPipeline", "SeededNoise", "is_out_of_memory"]
