"""Tiny ResShift networks with seeded random weights: for tests, and an installation check.

Their output is NOT a restoration: the weights are random. They run the whole chain in well
under a second, with every part a published model has (Swin blocks, LR feature extractor,
mask channel, f4 or f8 VQGAN), so the pipeline, CLI and nodes can be exercised anywhere.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import registry
from .checkpoints.loading import LoadedModel
from .checkpoints.writer import save_model
from .models.unet import ResShiftUNet, UNetConfig
from .models.vqgan import VQGAN, VQGANConfig

UNTRAINED_TINY = "untrained-tiny"

# task -> (registry preset, VQGAN downsampling, latent channels, LR pixels per latent pixel)
TASKS = {
    "realsr": ("realsr_x4_s4", 4, 3, 1),
    "bicsr": ("bicsr_x4_s4", 4, 3, 1),
    "realsr_x2": ("realsr_x2_s4", 4, 3, 2),
    "inpaint": ("inpaint_s4", 4, 3, 4),
    "faceir": ("faceir_s4", 8, 8, 8),
    "pixel": ("pixel_realsr_x4_s4", 1, 3, 1),  # no VQGAN: the chain runs on pixels
    "pixel_fold": ("tiny_realsr_x4", 1, 3, 1),  # pixels, UNet levels at 1/4 (like the shipped model)
}
PIXEL_TASKS = ("pixel", "pixel_fold")


def tiny_unet_config(task: str = "realsr") -> UNetConfig:
    _, _, channels, lq_ratio = TASKS[task]
    return UNetConfig(
        image_size=16,
        in_channels=channels,
        model_channels=32,
        out_channels=channels,
        num_res_blocks=[1, 1],
        attention_resolutions=[16, 8],
        channel_mult=[1, 2],
        num_head_channels=16,
        use_scale_shift_norm=True,
        swin_depth=2,
        swin_embed_dim=32,
        window_size=4,
        mlp_ratio=2,
        cond_lq=True,
        cond_mask=task == "inpaint",
        lq_size=16 * lq_ratio,
        pixel_unshuffle=4 if task == "pixel_fold" else 1,
    )


def tiny_vqgan_config(task: str = "realsr") -> VQGANConfig:
    _, factor, channels, _ = TASKS[task]
    levels = {1: (1,), 4: (1, 2, 2), 8: (1, 2, 2, 2)}[factor]  # 1: unused placeholder (pixel models)
    return VQGANConfig(embed_dim=channels, n_embed=64, z_channels=channels, ch=32, ch_mult=levels, num_res_blocks=1)


def make_tiny(task: str = "realsr", seed: int = 0) -> tuple[LoadedModel, LoadedModel | None]:
    """(UNet, VQGAN) with weights drawn from `seed`; the same seed gives the same networks.

    The pixel tasks have no VQGAN (None in its place)."""
    preset_name = TASKS[task][0]
    fork_devices = []  # keep the global RNG untouched: draw under a forked state
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        ucfg, vcfg = tiny_unet_config(task), tiny_vqgan_config(task)
        unet = ResShiftUNet(ucfg).eval().requires_grad_(False)
        vae = VQGAN(vcfg).eval().requires_grad_(False)
    preset = registry.preset(preset_name)
    n_u = sum(p.numel() for p in unet.parameters())
    n_v = sum(p.numel() for p in vae.parameters())
    return (
        LoadedModel("unet", unet, ucfg, preset, f"{UNTRAINED_TINY} ({preset_name})", UNTRAINED_TINY, n_u),
        None if task in PIXEL_TASKS else LoadedModel("autoencoder", vae, vcfg, None, "", UNTRAINED_TINY, n_v),
    )


def write_tiny_checkpoints(folder: str | Path, task: str = "realsr", seed: int = 0) -> tuple[Path, Path | None]:
    """Save a tiny pair as safetensors with metadata: `tiny_<task>_unet`, `tiny_<task>_vae`."""
    folder = Path(folder)
    unet, vae = make_tiny(task, seed)
    unet_path = save_model(unet, folder / f"tiny_{task}_unet.safetensors")
    return unet_path, None if vae is None else save_model(vae, folder / f"tiny_{task}_vae.safetensors")
