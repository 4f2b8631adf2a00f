"""The [model] table: the preset, the VQGAN, a starting checkpoint, and overrides of UNetConfig.

UNetConfig is the one place the architecture's fields and defaults live. The table takes any
of its fields (except the three the training code fixes) as a key; a key not given keeps the
published real-world x4 architecture (the registry's `architecture` of that checkpoint), and a
field that one does not name keeps UNetConfig's own default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from .. import registry
from ..errors import ArchitectureError, InputError
from ..models.unet import UNetConfig
from ..presets import DiffusionPreset
from .config_fields import Key, checked_table, dataclass_keys, setting
from .errors import ConfigError

# The published checkpoint whose architecture is the default (that of the default preset, realsr_x4_s4).
DEFAULT_ARCHITECTURE = "resshift_realsrx4_s4_v3"

# UNetConfig fields that are not settings: training always conditions on the LR image, picks
# the dtype by train.amp, and builds 2-D networks.
# Fields training does not let a config change: the noise map belongs to distilled one-step
# students (SinSR/RSD-style distillation is not implemented here: the objective feeds no noise map).
FIXED_UNET_FIELDS = {"cond_lq": True, "use_fp16": False, "dims": 2, "noise_channels": 0, "noise_injection": "concat"}

UNET_HELP = {
    "image_size": "UNet input side during training (latent side; the HR crop side for pixel-space models)",
    "in_channels": "channels of the diffused state (VQGAN latent channels, or 3 for pixels)",
    "model_channels": "channels of the first UNet level",
    "out_channels": "channels predicted (= in_channels: the model predicts x0)",
    "num_res_blocks": "residual blocks per UNet level (one number for all levels, or one per level)",
    "attention_resolutions": (
        "level sides (image_size halved per level) that get Swin attention; the lowest level always has it"
    ),
    "dropout": "dropout inside residual blocks",
    "channel_mult": "channel multiplier of each UNet level",
    "conv_resample": "resample between levels with convolutions (false: average pooling / nearest upsampling)",
    "num_heads": "Swin attention heads when num_head_channels is -1",
    "num_head_channels": "channels per attention head (-1: use num_heads heads)",
    "use_scale_shift_norm": "FiLM-style timestep conditioning in residual blocks",
    "resblock_updown": "resample with residual blocks instead of convolutions",
    "swin_depth": "Swin transformer blocks per attention layer",
    "swin_embed_dim": "Swin embedding width",
    "window_size": "Swin attention window side",
    "mlp_ratio": "Swin MLP hidden width / embedding width",
    "patch_norm": "LayerNorm in the Swin patch embedding",
    "cond_mask": "the UNet also takes the inpainting mask",
    "lq_size": "side of the conditioning image at training time (image_size times a power of two)",
    "pixel_unshuffle": (
        "fold r x r pixel blocks into channels so the UNet levels run at 1/r resolution (ours; 1 = published)"
    ),
}


def unet_keys() -> list[Key]:
    """The [model] keys that set UNetConfig fields, in UNetConfig's order, with their defaults."""
    hints = typing.get_type_hints(UNetConfig)
    base = published_unet()
    return [
        Key(f.name, hints[f.name], _plain(getattr(base, f.name)), UNET_HELP[f.name])
        for f in fields(UNetConfig)
        if f.name not in FIXED_UNET_FIELDS
    ]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def published_unet() -> UNetConfig:
    """The published real-world x4 UNet (a new object each time: UNetConfig is mutable)."""
    entry = registry.find(DEFAULT_ARCHITECTURE)
    if entry is None or not entry.architecture:
        raise ConfigError(
            "model",
            f"the registry has no architecture for {DEFAULT_ARCHITECTURE}",
            "restore weights/registry.json from the repository",
        )
    arch = dict(entry.architecture)
    # The registry spells some numbers as integers (mlp_ratio 4): keep the declared float type.
    floats = {k for k, h in typing.get_type_hints(UNetConfig).items() if h is float}
    values: dict[str, Any] = {k: float(v) if k in floats else v for k, v in arch.items()}
    return UNetConfig(**{**FIXED_UNET_FIELDS, **values})


def unet_with(base: UNetConfig, changes: dict[str, Any]) -> UNetConfig:
    """`base` with `changes` (already type-checked); an impossible network is a ConfigError."""
    try:
        return dataclasses.replace(base, **changes)
    except ArchitectureError as e:
        raise ConfigError(
            "[model]",
            f"describes no buildable UNet: {e}",
            "python -m resshift_core.train --print-config shows a working architecture (the published one)",
        ) from None


@dataclass
class ModelSection:
    """The network and the diffusion it is trained for."""

    preset: str = setting(
        "realsr_x4_s4", "diffusion preset from weights/registry.json (schedule, sf, latent or pixel space)"
    )
    vae_path: str = setting(
        "",
        "VQGAN checkpoint for latent presets (published: weights/autoencoder_vq_f4.pth); empty for pixel-space presets",
    )
    init_checkpoint: str = setting("", "UNet weights to start from (fine-tuning); empty = random initialisation")
    unet: UNetConfig = field(
        default_factory=published_unet, metadata={"help": "the architecture (the UNetConfig keys)"}
    )

    @classmethod
    def own_keys(cls) -> list[Key]:
        return [k for k in dataclass_keys(cls) if k.name != "unet"]

    @classmethod
    def table_keys(cls) -> list[Key]:
        return cls.own_keys() + unet_keys()

    @classmethod
    def from_table(cls, table: str, values: Any) -> ModelSection:
        checked = checked_table(table, values, cls.table_keys())
        own = {k.name for k in cls.own_keys()}
        return cls(
            **{k: v for k, v in checked.items() if k in own},
            unet=unet_with(published_unet(), {k: v for k, v in checked.items() if k not in own}),
        )

    def to_table(self) -> dict[str, Any]:
        table = {k.name: getattr(self, k.name) for k in self.own_keys()}
        table.update({k.name: _plain(getattr(self.unet, k.name)) for k in unet_keys()})
        return table

    def replace(self, **changes: Any) -> ModelSection:
        """A copy with own fields and UNetConfig fields changed by name (checked like a TOML table)."""
        return type(self).from_table("model", {**self.to_table(), **changes})

    def unet_config(self) -> UNetConfig:
        return dataclasses.replace(self.unet)

    def diffusion_preset(self) -> DiffusionPreset:
        """The preset by name; a latent one needs vae_path and a pixel-space one must not have it."""
        try:
            preset = dataclasses.replace(registry.preset(self.preset), name=self.preset)
        except InputError:
            raise ConfigError(
                "model.preset",
                f"= {self.preset!r} is not a known preset",
                f"choose one of {', '.join(registry.preset_names())}",
            ) from None
        if preset.latent and not self.vae_path:
            raise ConfigError(
                "model.vae_path",
                f"is empty but preset {self.preset} runs in a VQGAN latent space",
                'set it to the VQGAN checkpoint, e.g. model.vae_path = "weights/autoencoder_vq_f4.pth"',
            )
        if not preset.latent and self.vae_path:
            raise ConfigError(
                "model.vae_path",
                f"= {self.vae_path!r} but preset {self.preset} is pixel-space",
                'leave it empty: model.vae_path = ""',
            )
        return preset


__all__ = ["FIXED_UNET_FIELDS", "UNET_HELP", "ModelSection", "published_unet", "unet_keys"]
