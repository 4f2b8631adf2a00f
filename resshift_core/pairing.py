"""Which UNet, preset and VQGAN belong together: the one place that says so.

Every front-end (the pipeline, the nodes' stages, the command line) asks these functions, so a
mismatch is refused with the same sentence wherever it is made.
"""

from __future__ import annotations

from .errors import ArchitectureError
from .models.unet import UNetConfig
from .models.vqgan import VQGANConfig
from .presets import DiffusionPreset

VAE_ADVICE = (
    "pair face restoration with ffhq512_vq_f8_dim8_face and the other models with an f4 VQGAN (autoencoder_vq_f4)"
)


def lq_per_latent(unet: UNetConfig) -> int:
    """Condition pixels per latent pixel: the UNet's LR feature extractor downsamples by this."""
    return max(1, unet.lq_size // unet.image_size)


def check_pair(
    unet: UNetConfig,
    preset: DiffusionPreset,
    vae: VQGANConfig | None,
    *,
    model_name: str = "the model",
    vae_hint: str = "",
) -> None:
    """Raise ArchitectureError unless `vae` (None: no VAE) can serve this UNet and preset.
    `vae_hint` says how a caller gives a VAE (e.g. "pass --vae"), for the missing-VAE message."""
    check_noise_map(unet, preset, model_name=model_name)
    if vae is None:
        if preset.latent:
            how = vae_hint or "give it its VAE"
            raise ArchitectureError(f"{model_name} works in a VQGAN latent space: {how} ({VAE_ADVICE})")
        if unet.in_channels != 3 or lq_per_latent(unet) != 1:
            raise ArchitectureError(
                f"{model_name} has {unet.in_channels} input channels and an LR feature extractor, so it works in a "
                f"VQGAN latent space although its preset {preset.name!r} says pixels: choose a latent preset "
                "and give it a VAE"
            )
        return
    if not preset.latent:
        raise ArchitectureError(f"{model_name} (preset {preset.name!r}) is a pixel-space model: run it without a VAE")
    if unet.in_channels != vae.latent_channels:
        raise ArchitectureError(
            f"{model_name} works on {unet.in_channels}-channel latents but the VAE makes "
            f"{vae.latent_channels}-channel ones: {VAE_ADVICE}."
        )
    factor, ratio = vae.downsample_factor, lq_per_latent(unet)
    if preset.condition != "lr":  # conditioned at the latent's size: any scale the VAE divides
        if ratio != 1 or factor % preset.sf:
            raise ArchitectureError(
                f"{model_name} is conditioned on {preset.condition!r} (the latent's size), which needs a UNet "
                f"without an LR feature extractor and a scale that divides the VAE's {factor}; it has "
                f"{ratio}x LR input and the preset {preset.name!r} says x{preset.sf}. Choose the matching preset."
            )
        return
    if factor % ratio or factor // ratio != preset.sf:
        made = f"x{factor // ratio}" if factor % ratio == 0 else "no whole scale"
        raise ArchitectureError(
            f"scale mismatch: the VAE downsamples by {factor} and {model_name} reads its LR input at 1/{ratio} "
            f"of that, which makes {made}, but the preset {preset.name!r} says x{preset.sf}. "
            "Choose the matching preset or VAE."
        )


def check_noise_map(unet: UNetConfig, preset: DiffusionPreset, *, model_name: str = "the model") -> None:
    """The preset and the weights must agree on a student's noise map (whether, and where)."""
    weights = "none" if not unet.noise_channels else unet.noise_injection
    if preset.noise_map != weights:
        has = (
            "takes no noise map"
            if weights == "none"
            else f"takes a {unet.noise_channels}-channel noise map ({weights})"
        )
        raise ArchitectureError(
            f"{model_name} {has}, but the preset {preset.name!r} says noise_map={preset.noise_map!r}: "
            "choose the preset made for this model (`inspect` lists the ones that fit)"
        )


def check_same_vae(given: VQGANConfig | None, used: VQGANConfig | None, *, name: str = "this VAE") -> None:
    """A latent must be decoded by a VAE of the kind that encoded it (None: pixel space)."""
    if used is None and given is not None:
        raise ArchitectureError("this latent was made without a VAE (a pixel-space model): leave the VAE out")
    if used is not None and given is None:
        raise ArchitectureError("this latent is in a VQGAN latent space: decode it with the VAE used to encode it")
    if (
        given is not None
        and used is not None
        and (given.latent_channels != used.latent_channels or given.downsample_factor != used.downsample_factor)
    ):
        raise ArchitectureError(
            f"{name} makes {given.latent_channels}-channel latents at 1/{given.downsample_factor} size, but this "
            f"latent has {used.latent_channels} channels at 1/{used.downsample_factor}: "
            "decode with the VAE used to encode."
        )


__all__ = ["VAE_ADVICE", "check_pair", "check_same_vae", "lq_per_latent"]
