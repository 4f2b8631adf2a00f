"""What the nodes pass between them and the three stages they run, over resshift_core.

Handles (RESSHIFT_MODEL, RESSHIFT_VAE) hold a loaded network and its ModelPatcher. A latent
(RESSHIFT_LATENT) holds tensors on the host's intermediate device and, for the networks it
was made with, weightless "meta" skeletons: enough for the pipeline's shape bookkeeping,
never a reference to real weights (which would keep a model alive after ComfyUI let it go).

Each stage loads only the network it runs, through the host, and builds a ResShiftPipeline
that computes where the host put that network and leaves the networks where they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from resshift_core.checkpoints.loading import LoadedModel, load_unet, load_vae
from resshift_core.compiled import check_compile_support, compile_network
from resshift_core.devices import channels_last_for
from resshift_core.errors import InputError
from resshift_core.models.unet import UNetConfig
from resshift_core.models.vqgan import VQGANConfig
from resshift_core.pairing import check_pair, check_same_vae
from resshift_core.pipeline import Prepared, ResShiftPipeline
from resshift_core.presets import DiffusionPreset
from resshift_core.preview import LinearPreview
from resshift_core.request_checks import SEED_LIMIT, resolve_steps
from resshift_core.sampler import SeededNoise, StepInfo
from resshift_core.tiling import TilingConfig, round_up

from . import host

VAE_HINT = "connect a Load ResShift VAE node"


# -- handles ------------------------------------------------------------------------------------


def skeleton(loaded: LoadedModel) -> LoadedModel:
    """The same network built on the meta device: its shapes and attributes, no weights."""
    with torch.device("meta"):
        model = type(loaded.model)(loaded.config)
    return dataclasses.replace(loaded, model=model.eval().requires_grad_(False))


@dataclass(eq=False)
class NetworkHandle:
    loaded: LoadedModel
    patcher: Any  # ComfyUI's ModelPatcher (no type stubs)
    dtype: torch.dtype
    name: str
    channels_last: bool = True
    _skeleton: LoadedModel | None = field(default=None, repr=False)

    @property
    def skeleton(self) -> LoadedModel:
        if self._skeleton is None:
            self._skeleton = skeleton(self.loaded)
        return self._skeleton


class ModelHandle(NetworkHandle):
    """RESSHIFT_MODEL: a ResShift UNet and its diffusion preset."""

    @property
    def config(self) -> UNetConfig:
        config = self.loaded.config
        if not isinstance(config, UNetConfig):
            raise InputError(f"{self.name} is not a ResShift model (UNet): load it with Load ResShift VAE")
        return config

    @property
    def preset(self) -> DiffusionPreset:
        if self.loaded.preset is None:
            raise InputError(f"{self.name} has no diffusion preset: choose one in Load ResShift Model")
        return self.loaded.preset


class VAEHandle(NetworkHandle):
    """RESSHIFT_VAE: a VQGAN autoencoder."""

    @property
    def config(self) -> VQGANConfig:
        config = self.loaded.config
        if not isinstance(config, VQGANConfig):
            raise InputError(f"{self.name} is not a VQGAN: load it with Load ResShift Model")
        return config


def load_network(
    path, part: str, dtype_choice: str, preset: str | None, name: str, parameters_hint: int, compile: bool = False
):
    """`compile`: run the network through torch.compile (resshift_core/compiled.py), checked
    before loading; the first image compiles it, later ones reuse the graphs."""
    dtype = host.pick_dtype(part, dtype_choice, parameters_hint)
    device = host.offload_device(part)
    compute = host.mm().get_torch_device()
    if compile:
        check_compile_support(compute)
    channels_last = channels_last_for(compute)
    loaded: LoadedModel[Any]
    with host.normal_tensors():
        if part == "unet":
            loaded = load_unet(str(path), preset=preset, device=device, dtype=dtype)
        else:
            loaded = load_vae(str(path), device=device, dtype=dtype)
        if channels_last:
            loaded.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    if compile:
        compile_network(loaded.model, compute)
    patcher = host.make_patcher(loaded.model, part)
    cls = ModelHandle if part == "unet" else VAEHandle
    return cls(loaded=loaded, patcher=patcher, dtype=dtype, name=name, channels_last=channels_last)


# -- the latent ---------------------------------------------------------------------------------


@dataclass(eq=False)
class ResShiftLatent:
    """RESSHIFT_LATENT: a ResShift latent batch and what the sampler and decoder need."""

    samples: torch.Tensor  # the current latent: z_y after Encode, x_0 after the Sampler
    z_y: torch.Tensor  # the encoded (upsampled) LR condition the chain starts from
    prepared: Prepared  # the padded LR image (and mask) in [-1, 1], padding, scale factor
    unet: LoadedModel  # skeletons of the networks it was made for
    vae: LoadedModel | None
    preset: DiffusionPreset
    sampled: bool = False
    seeds: list | None = None
    preview: LinearPreview | None = None  # latent -> RGB for the sampler's step previews

    @property
    def original_size(self) -> tuple[int, int]:
        return self.prepared.padding.height, self.prepared.padding.width

    @property
    def batch_size(self) -> int:
        return int(self.samples.shape[0])


# -- pipelines over host-placed networks ----------------------------------------------------------


def stage_pipeline(
    unet: LoadedModel,
    vae: LoadedModel | None,
    preset: DiffusionPreset,
    device,
    dtype,
    channels_last: bool,
    patcher=None,
    memory_required: int = 0,
) -> ResShiftPipeline:
    """A pipeline computing on `device` in `dtype` that leaves both networks where the host put
    them; its out-of-memory retries free memory through the host (ComfyUI's soft_empty_cache, and
    a reload request that makes it unload other models while keeping ours)."""

    def on_out_of_memory(stage: str, smaller: TilingConfig) -> None:
        _log_retry(stage, smaller)
        host.after_oom([patcher] if patcher is not None else [], memory_required)

    return ResShiftPipeline(
        unet,
        vae,
        preset=preset,
        device=device,
        dtype=dtype,
        channels_last=channels_last,
        place_models=False,
        oom_check=host.is_oom,
        on_out_of_memory=on_out_of_memory,
        vae_hint=VAE_HINT,
    )


def _log_retry(stage: str, smaller: TilingConfig) -> None:
    host.log.warning(
        "ResShift: out of memory in the %s; retrying with smaller tiles (%s)",
        stage,
        f"tile {smaller.tile}, batch {smaller.batch}"
        if stage == "unet"
        else f"VAE tile {smaller.vae_tile}, batch {smaller.vae_batch}",
    )


def tiling_for(pipe: ResShiftPipeline, tile: int = 0, overlap: int = 0, vae_tile: int = 0) -> TilingConfig:
    """Tile sizes in input-image pixels (0 = automatic), automatic ones sized by the free
    memory the host reports for the compute device."""
    free = None if pipe.device.type == "cpu" else host.free_memory_bytes(pipe.device)
    return pipe.tiling(tile or None, overlap or None, vae_tile or None, free_bytes=free)


# -- image conversion ---------------------------------------------------------------------------


def image_to_nchw(image: object) -> torch.Tensor:
    """ComfyUI IMAGE (B x H x W x C in [0, 1]) -> B x 3 x H x W float32 (alpha dropped, grey tripled)."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        raise InputError(f"expected an IMAGE batch (B x H x W x C), got {getattr(image, 'shape', type(image))}")
    if image.ndim == 3:
        image = image[None]
    channels = image.shape[-1]
    if channels == 4:
        image = image[..., :3]
    elif channels == 1:
        image = image.expand(*image.shape[:-1], 3)
    elif channels != 3:
        raise InputError(f"an IMAGE has 1, 3 or 4 channels, this one has {channels}")
    return image.movedim(-1, 1).float().clamp(0, 1).contiguous()


def nchw_to_image(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(1, -1).to(host.intermediate_device(), torch.float32).contiguous()


def seeds_for(seed: int, batch: int) -> list[int]:
    """Image i of a batch gets seed + i, so it comes out as it would alone with that seed."""
    return [(int(seed) + i) % SEED_LIMIT for i in range(batch)]


def _to_host(prepared: Prepared) -> Prepared:
    device = host.intermediate_device()
    return dataclasses.replace(
        prepared,
        lq=prepared.lq.to(device),
        mask=None if prepared.mask is None else prepared.mask.to(device),
    )


# -- the stages ---------------------------------------------------------------------------------


def check_handles(model: ModelHandle, vae: VAEHandle | None) -> None:
    check_pair(
        model.config, model.preset, None if vae is None else vae.config, model_name=model.name, vae_hint=VAE_HINT
    )


def encode(
    model: ModelHandle, vae: VAEHandle | None, image: torch.Tensor, mask: torch.Tensor | None = None, vae_tile: int = 0
) -> ResShiftLatent:
    check_handles(model, vae)
    images = image_to_nchw(image)
    masks = mask  # read by the core's one mask rule (inpaint_masks)
    host.check_interrupt()
    if vae is None:  # pixel space: the "encoding" is the bicubic upsampling, no network
        pipe = stage_pipeline(model.skeleton, None, model.preset, host.intermediate_device(), torch.float32, False)
        prepared = pipe.prepare(images, masks)
        z_y = pipe.encode(prepared)
    else:
        pipe = stage_pipeline(
            model.skeleton, vae.loaded, model.preset, vae.patcher.load_device, vae.dtype, vae.channels_last
        )
        multiple = pipe.lr_multiple
        height, width = (round_up(n, multiple) for n in images.shape[-2:])
        pixels = images.shape[0] * pipe.lr_to_latent(height) * pipe.lr_to_latent(width)
        memory = pipe.activation_bytes("vae", pixels, tiling_for(pipe, vae_tile=vae_tile))
        device = host.load(vae.patcher, memory)
        pipe = stage_pipeline(
            model.skeleton, vae.loaded, model.preset, device, vae.dtype, vae.channels_last, vae.patcher, memory
        )
        prepared = pipe.prepare(images, masks)
        z_y = pipe.encode(prepared, tiling_for(pipe, vae_tile=vae_tile))
    out = host.intermediate_device()
    preview = LinearPreview.identity() if vae is None else LinearPreview.fit(z_y, prepared.lq)
    return ResShiftLatent(
        samples=z_y.to(out),
        z_y=z_y.to(out),
        prepared=_to_host(prepared),
        unet=model.skeleton,
        vae=None if vae is None else vae.skeleton,
        preset=model.preset,
        preview=preview,
    )


def _check_latent_for_model(model: ModelHandle, latent: ResShiftLatent) -> None:
    if not isinstance(latent, ResShiftLatent):
        raise InputError("expected a RESSHIFT_LATENT from ResShift Encode")
    if latent.unet.config != model.config:
        raise InputError(
            f"this latent was encoded for a differently built model than {model.name}; "
            "connect the same Load ResShift Model node to ResShift Encode and ResShift Sampler."
        )
    if latent.preset.sf != model.preset.sf or latent.preset.scale_factor != model.preset.scale_factor:
        raise InputError(
            f"this latent was encoded with preset {latent.preset.name} (x{latent.preset.sf}) but the model "
            f"uses {model.preset.name} (x{model.preset.sf}); use the same model (and preset) in Encode and Sampler."
        )


def sample(
    model: ModelHandle,
    latent: ResShiftLatent,
    seed: int,
    steps: int = 0,
    tile: int = 0,
    overlap: int = 0,
    progress: Callable[[int, tuple | None], None] | None = None,
) -> ResShiftLatent:
    """The reverse chain; `progress(steps_done, preview)` after every step, the preview (the x0
    estimate of the first image, in the host's format) only when the host has previews on."""
    _check_latent_for_model(model, latent)
    preset = model.preset
    seeds = seeds_for(seed, latent.batch_size)
    host.check_interrupt()
    pipe = stage_pipeline(model.loaded, latent.vae, preset, model.patcher.load_device, model.dtype, model.channels_last)
    steps = pipe.resolve_steps(steps)
    probe = tiling_for(pipe, tile, overlap)
    memory = pipe.activation_bytes("unet", int(latent.z_y.shape[-2] * latent.z_y.shape[-1]) * latent.batch_size, probe)
    device = host.load(model.patcher, memory)
    pipe = stage_pipeline(
        model.loaded, latent.vae, preset, device, model.dtype, model.channels_last, model.patcher, memory
    )
    tiling = tiling_for(pipe, tile, overlap)
    z_y = latent.z_y
    prepared = latent.prepared

    preview_map = latent.preview
    size = host.preview_size() if progress is not None and preview_map is not None else None

    def callback(info: StepInfo) -> None:
        host.check_interrupt()
        if progress is not None:
            preview = None
            if size is not None and preview_map is not None and info.denoised is not None:
                preview = host.preview_image(preview_map(info.denoised, size), size)
            progress(info.index + 1, preview)

    # An out-of-memory error inside a step is retried there with smaller tiles (same noise field).
    z0 = pipe.sample(z_y, prepared, SeededNoise(seeds), steps=steps, callback=callback, tiling=tiling)
    return dataclasses.replace(latent, samples=z0.to(host.intermediate_device()), sampled=True, seeds=seeds)


def decode(vae: VAEHandle | None, latent: ResShiftLatent, vae_tile: int = 0, fix: str = "none") -> torch.Tensor:
    """The latent's images at exactly sf x the input size, B x H x W x 3 in [0, 1]."""
    if not isinstance(latent, ResShiftLatent):
        raise InputError("expected a RESSHIFT_LATENT from ResShift Encode or ResShift Sampler")
    used = None if latent.vae is None else latent.vae.config
    check_same_vae(
        None if vae is None else vae.config,
        used if isinstance(used, VQGANConfig) else None,
        name=vae.name if vae is not None else "",
    )
    host.check_interrupt()
    prepared = latent.prepared
    if vae is None:
        device = torch.device(host.intermediate_device())
        pipe = stage_pipeline(latent.unet, None, latent.preset, device, torch.float32, False)
        decoded = pipe.decode_raw(latent.samples, prepared)
    else:
        pipe = stage_pipeline(
            latent.unet, vae.loaded, latent.preset, vae.patcher.load_device, vae.dtype, vae.channels_last
        )
        probe = tiling_for(pipe, vae_tile=vae_tile)
        z = latent.samples
        memory = pipe.activation_bytes("vae", int(z.shape[-2] * z.shape[-1]) * z.shape[0], probe)
        device = host.load(vae.patcher, memory)
        pipe = stage_pipeline(
            latent.unet, vae.loaded, latent.preset, device, vae.dtype, vae.channels_last, vae.patcher, memory
        )
        tiling = tiling_for(pipe, vae_tile=vae_tile)
        decoded = pipe.decode_raw(latent.samples, prepared, tiling)
    images = pipe.finish(decoded.to(host.intermediate_device()), prepared, fix)
    h, w = latent.original_size
    expected = (latent.preset.sf * h, latent.preset.sf * w)
    if tuple(images.shape[-2:]) != expected:
        raise RuntimeError(f"internal error: decoded {tuple(images.shape[-2:])}, expected {expected}")
    return nchw_to_image(images)


def upscale(
    model: ModelHandle,
    vae: VAEHandle | None,
    image: torch.Tensor,
    seed: int,
    steps: int = 0,
    tile: int = 0,
    overlap: int = 0,
    vae_tile: int = 0,
    fix: str = "none",
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encode, sample and decode in one go, with one progress bar (encode + steps + decode)."""
    total = resolve_steps(model.preset, steps) + 2
    bar = host.progress_bar(total)
    latent = encode(model, vae, image, mask, vae_tile)
    bar.update_absolute(1, total)
    latent = sample(
        model,
        latent,
        seed,
        steps,
        tile,
        overlap,
        progress=lambda done, preview: bar.update_absolute(done + 1, total, preview),
    )
    out = decode(vae, latent, vae_tile, fix)
    bar.update_absolute(total, total)
    return out


def step_progress(total: int) -> Callable[[int, tuple | None], None]:
    bar = host.progress_bar(total)
    return lambda done, preview: bar.update_absolute(done, total, preview)


__all__ = [
    "ModelHandle",
    "ResShiftLatent",
    "VAEHandle",
    "decode",
    "encode",
    "image_to_nchw",
    "load_network",
    "nchw_to_image",
    "sample",
    "seeds_for",
    "stage_pipeline",
    "step_progress",
    "tiling_for",
    "upscale",
]
