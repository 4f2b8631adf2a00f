"""Tiny ResShift networks with seeded random weights: for tests, and an installation check.

Their output is NOT a restoration: the weights are random. They run the whole chain in well
under a second, with every part a published model has (Swin blocks, LR feature extractor,
mask channel, f4 or f8 VQGAN), so the pipeline, CLI and nodes can be exercised anywhere.

This module is the one place tiny networks are made. Each task names a base configuration;
every builder takes overrides for any field, so a test that varies a hyper-parameter states
only what it varies:

    tiny_unet_config("inpaint", window_size=2)  # a config
    tiny_unet("realsr", seed=1, num_res_blocks=2)  # a network (eval mode, no gradients)
    make_tiny("faceir", seed=0)  # (UNet, VQGAN) as LoadedModels, as a checkpoint loader gives them
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

import torch
from torch import nn

from . import registry
from .checkpoints.io import KEY_PREFIXES
from .checkpoints.loading import LoadedModel
from .checkpoints.students import NOISE_MODES, follow_weights_noise_map
from .checkpoints.writer import atomic_save_safetensors, save_model
from .models.unet import ResShiftUNet, UNetConfig
from .models.vqgan import VQGAN, VQGANConfig

UNTRAINED_TINY = "untrained-tiny"
TINY_IMAGE_SIZE = 16  # latent (or pixel) side the UNets are built at


class TinyTask(NamedTuple):
    preset: str  # registry preset the UNet is paired with
    vae_factor: int  # VQGAN downsampling (1: no VQGAN, the chain runs on pixels)
    latent_channels: int
    lq_ratio: int  # LR pixels per latent pixel
    noise_channels: int = 0  # a one-step student's noise-map input (0: none)
    noise_injection: str = "concat"  # where it enters: "concat" (RSD) or "add" (noise_proj)


# Read-only (a mapping proxy): every caller shares it.
TASKS: Mapping[str, TinyTask] = MappingProxyType(
    {
        "realsr": TinyTask("realsr_x4_s4", 4, 3, 1),
        "bicsr": TinyTask("bicsr_x4_s4", 4, 3, 1),
        "realsr_x2": TinyTask("realsr_x2_s4", 4, 3, 2),
        "inpaint": TinyTask("inpaint_s4", 4, 3, 4),
        "faceir": TinyTask("faceir_s4", 8, 8, 8),
        "pixel": TinyTask("pixel_realsr_x4_s4", 1, 3, 1),  # no VQGAN: the chain runs on pixels
        "pixel_fold": TinyTask("tiny_realsr_x4", 1, 3, 1),  # pixels, UNet levels at 1/4 (like the shipped model)
        # One-step students: ResShift v1's layout (no LR feature extractor), sampled by their presets.
        "sinsr": TinyTask("sinsr_x4", 4, 3, 1),
        "rsd": TinyTask("rsd_x4", 4, 3, 1, 1, "concat"),
        "distilled": TinyTask("distilled_x4", 4, 3, 1, 1, "concat"),
        "distilled_add": TinyTask("distilled_x4", 4, 3, 1, 3, "add"),  # the preset follows the weights
        "distilled_x2": TinyTask("distilled_x2", 4, 3, 1, 1, "concat"),
    }
)
PIXEL_TASKS = ("pixel", "pixel_fold")

# VQGAN levels per downsampling factor (1: an unused placeholder, the pixel tasks have no VQGAN).
_VQGAN_LEVELS = {1: (1,), 4: (1, 2, 2), 8: (1, 2, 2, 2)}


Config = TypeVar("Config", UNetConfig, VQGANConfig)


def _with_overrides(config_class: type[Config], base: dict[str, Any], overrides: Mapping[str, Any]) -> Config:
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(config_class)})
    if unknown:
        raise TypeError(f"{config_class.__name__} has no field {', '.join(unknown)}")
    return config_class(**{**base, **overrides})


def tiny_unet_config(task: str = "realsr", **overrides: Any) -> UNetConfig:
    """The tiny UNet of `task`; `overrides` replace any UNetConfig field.

    `lq_size` follows `image_size` (times the task's LR ratio) unless it is given too."""
    spec = TASKS[task]
    image_size = overrides.get("image_size", TINY_IMAGE_SIZE)
    base = {
        "image_size": TINY_IMAGE_SIZE,
        "in_channels": spec.latent_channels,
        "model_channels": 32,
        "out_channels": spec.latent_channels,
        "num_res_blocks": [1, 1],
        "attention_resolutions": [16, 8],
        "channel_mult": [1, 2],
        "num_head_channels": 16,
        "use_scale_shift_norm": True,
        "swin_depth": 2,
        "swin_embed_dim": 32,
        "window_size": 4,
        "mlp_ratio": 2,
        "cond_lq": True,
        "cond_mask": task == "inpaint",
        "lq_size": image_size * spec.lq_ratio,
        "pixel_unshuffle": 4 if task == "pixel_fold" else 1,
        "noise_channels": spec.noise_channels,
        "noise_injection": spec.noise_injection,
    }
    return _with_overrides(UNetConfig, base, overrides)


def tiny_vqgan_config(task: str = "realsr", **overrides: Any) -> VQGANConfig:
    """The tiny VQGAN of `task` (f4 or f8, the task's latent channels); `overrides` replace any
    VQGANConfig field. The pixel tasks get a one-level placeholder that no chain uses."""
    spec = TASKS[task]
    base = {
        "embed_dim": spec.latent_channels,
        "n_embed": 64,
        "z_channels": spec.latent_channels,
        "ch": 32,
        "ch_mult": _VQGAN_LEVELS[spec.vae_factor],
        "num_res_blocks": 1,
    }
    return _with_overrides(VQGANConfig, base, overrides)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draw under `seed` on a forked CPU generator: the caller's global RNG state is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


Module = TypeVar("Module", bound=nn.Module)


def _frozen(model: Module) -> Module:
    model.eval().requires_grad_(False)
    return model


def tiny_unet(task: str = "realsr", seed: int = 0, **overrides: Any) -> ResShiftUNet:
    """A tiny UNet with weights drawn from `seed` (eval mode, no gradients).

    Without overrides it is the UNet of `make_tiny(task, seed)`."""
    config = tiny_unet_config(task, **overrides)
    with seeded(seed):
        return _frozen(ResShiftUNet(config))


def tiny_vqgan(task: str = "realsr", seed: int = 0, **overrides: Any) -> VQGAN:
    """A tiny VQGAN with weights drawn from `seed` (eval mode, no gradients).

    Not the VQGAN of `make_tiny(task, seed)`: that one is drawn after its UNet."""
    config = tiny_vqgan_config(task, **overrides)
    with seeded(seed):
        return _frozen(VQGAN(config))


def _parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_tiny(
    task: str = "realsr",
    seed: int = 0,
    *,
    unet_overrides: Mapping[str, Any] | None = None,
    vqgan_overrides: Mapping[str, Any] | None = None,
) -> tuple[LoadedModel[ResShiftUNet], LoadedModel[VQGAN] | None]:
    """(UNet, VQGAN) with weights drawn from `seed`; the same seed gives the same networks.

    The pixel tasks have no VQGAN (None in its place). Both networks are drawn in turn from one
    seeded generator (the VQGAN even for the pixel tasks), so the weights stay those of every
    earlier release for the same task and seed."""
    preset_name = TASKS[task].preset
    ucfg = tiny_unet_config(task, **(unet_overrides or {}))
    vcfg = tiny_vqgan_config(task, **(vqgan_overrides or {}))
    with seeded(seed):
        unet = _frozen(ResShiftUNet(ucfg))
        vae = _frozen(VQGAN(vcfg))
    preset = follow_weights_noise_map(registry.preset(preset_name), ucfg)
    description = f"{UNTRAINED_TINY} ({preset_name})"
    unet_model = LoadedModel("unet", unet, ucfg, preset, description, UNTRAINED_TINY, _parameter_count(unet))
    if task in PIXEL_TASKS:
        return unet_model, None
    return unet_model, LoadedModel("autoencoder", vae, vcfg, None, "", UNTRAINED_TINY, _parameter_count(vae))


def write_tiny_checkpoints(folder: str | Path, task: str = "realsr", seed: int = 0) -> tuple[Path, Path | None]:
    """Save a tiny pair as safetensors with metadata: `tiny_<task>_unet`, `tiny_<task>_vae`."""
    folder = Path(folder)
    unet, vae = make_tiny(task, seed)
    unet_path = save_model(unet, folder / f"tiny_{task}_unet.safetensors")
    return unet_path, None if vae is None else save_model(vae, folder / f"tiny_{task}_vae.safetensors")


@torch.no_grad()
def zero_noise_weights(unet: ResShiftUNet) -> ResShiftUNet:
    """Zero what a student's noise map passes through (the concatenated input-conv channels, or
    `noise_proj`), as RSD and Distilled-ResShift initialise them: the map then changes nothing."""
    cfg = unet.config
    if not cfg.noise_channels:
        raise ValueError("this UNet takes no noise map")
    params = dict(unet.named_parameters())
    if cfg.noise_injection == "add":
        params["noise_proj.weight"].zero_()
        params["noise_proj.bias"].zero_()
    else:  # the noise channels come after x and the LR
        params["input_blocks.0.0.weight"][:, -cfg.noise_channels :].zero_()
    return unet


def write_distilled_student(
    path: str | Path,
    *,
    noise_mode: str = "concat",
    cond_lq: str | None = "latent",
    noise_channels: int | None = None,
    seed: int = 0,
    zero_noise: bool = False,
    metadata: Mapping[str, str] | None = None,
    module_prefix: bool = False,
) -> Path:
    """A tiny student in Distilled-ResShift's own format: its safetensors header holds only
    their keys (`noise_mode`, `noise_channels`, `cond_lq`, as strings; None leaves `cond_lq`
    out, as their older files do), no resshift.* metadata. `metadata` replaces the header as
    given (for files that are wrong on purpose); `module_prefix` writes DDP's `module.` keys."""
    channels = NOISE_MODES.get(noise_mode, 1) if noise_channels is None else noise_channels
    injection = noise_mode if noise_mode in NOISE_MODES else "concat"
    unet = tiny_unet("distilled", seed, noise_channels=channels, noise_injection=injection)
    if zero_noise:
        zero_noise_weights(unet)
    header = {"noise_mode": noise_mode, "noise_channels": str(channels)}
    if cond_lq is not None:
        header["cond_lq"] = cond_lq
    prefix = KEY_PREFIXES[0] if module_prefix else ""
    tensors = {prefix + k: v.detach().contiguous() for k, v in unet.state_dict().items()}
    return atomic_save_safetensors(tensors, path, dict(header if metadata is None else metadata))
