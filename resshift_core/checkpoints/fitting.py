"""Which registry presets can sample a UNet whose architecture was read off its weights.

A preset fits when the UNet takes a mask exactly for inpainting and the pairing rules
(`resshift_core.pairing.check_pair`) accept it with a VQGAN the registry pairs with its task (or
without one, for the pixel-space presets): the latent channels, the scale against the LR input,
the condition and the noise map all agree. `inspect` lists them, so the user of a file we cannot
name sees what to choose. The weights cannot tell pixels from latents, so a 3-channel UNet
without an LR feature extractor fits the pixel-space presets too.
"""

from __future__ import annotations

from functools import lru_cache

from .. import registry
from ..errors import ArchitectureError
from ..models.unet import UNetConfig
from ..models.vqgan import VQGANConfig
from ..pairing import check_pair
from ..presets import DiffusionPreset
from .students import follow_weights_noise_map

DEFAULT_VAE = "autoencoder_vq_f4"


@lru_cache(maxsize=8)
def task_vaes(task: str) -> tuple[VQGANConfig, ...]:
    """The VQGAN architectures the registry pairs with the models of `task` (face restoration:
    the f8 face VQGAN; the rest: f4), or the f4 one for a task no checkpoint has."""
    presets = {name: registry.preset(name) for name in registry.preset_names()}
    entries = {e.name: e for e in registry.entries()}
    names = {
        e.vae
        for e in entries.values()
        if e.part == "unet" and e.vae and e.preset in presets and presets[e.preset].task == task
    } or {DEFAULT_VAE}
    configs: list[VQGANConfig] = []
    for name in sorted(names):
        architecture = entries[name].architecture
        config = VQGANConfig.from_published(architecture) if architecture else None
        if config is not None and config not in configs:  # several files share one architecture
            configs.append(config)
    return tuple(configs)


def preset_fits(config: UNetConfig, preset: DiffusionPreset) -> bool:
    """True if `preset` can sample this UNet with a VQGAN its task is paired with (none in pixels)."""
    if (preset.task == "inpaint") != config.cond_mask:  # a mask input is what an inpainting model is
        return False
    preset = follow_weights_noise_map(preset, config)
    vaes: tuple[VQGANConfig | None, ...] = task_vaes(preset.task) if preset.latent else (None,)
    for vae in vaes:
        try:
            check_pair(config, preset, vae)
        except ArchitectureError:
            continue
        return True
    return False


def fitting_presets(config: UNetConfig) -> list[str]:
    """The names of the registry presets that fit this UNet, sorted."""
    return [name for name in registry.preset_names() if preset_fits(config, registry.preset(name))]


__all__ = ["fitting_presets", "preset_fits"]
