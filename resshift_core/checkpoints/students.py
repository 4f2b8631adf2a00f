"""Distilled-ResShift's own checkpoint metadata, read into our settings.

Its students (sorryhyun/ComfyUI-Distilled-ResShift) are ResShift v1's UNet plus a noise map.
Their safetensors header holds string values: `noise_mode` ("concat", the default: the first
convolution is widened by `noise_channels`, default 1; or "add": a `noise_proj` convolution of
`noise_channels`, default 3, added after it), and `cond_lq` (the UNet's LR input: "latent", the
default, is z_y; "pixel" is the upsampled LR resized to the latent's size). The scale is not in
the file: it comes from the registry by file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from .. import registry
from ..errors import CheckpointError
from ..models.unet import UNetConfig
from ..presets import DiffusionPreset

METADATA_KEYS = ("noise_mode", "noise_channels", "cond_lq")
# Their noise_mode -> our noise injection, with their default channel count for each.
NOISE_MODES = {"concat": 1, "add": 3}
# Their cond_lq -> our preset condition.
CONDITIONS = {"latent": "latent", "pixel": "lr_at_latent"}
# The registry presets of the students, by scale; a file of unknown scale gets the first.
PRESETS_BY_SCALE = {4: "distilled_x4", 2: "distilled_x2"}
DEFAULT_PRESET = PRESETS_BY_SCALE[4]
SOURCE = "metadata (Distilled-ResShift)"


@dataclass(frozen=True)
class StudentPreset:
    """The preset a Distilled-ResShift file gets, and a warning when its scale was assumed."""

    preset: DiffusionPreset
    source: str
    warning: str | None = None


def is_distilled_metadata(metadata: Mapping[str, str]) -> bool:
    """True for a header written by Distilled-ResShift (their keys, none of ours)."""
    return any(k in metadata for k in METADATA_KEYS) and "resshift.preset" not in metadata


def weights_noise_map(config: UNetConfig) -> str:
    """The noise map the weights take: none, concat or add."""
    return config.noise_injection if config.noise_channels else "none"


def follow_weights_noise_map(preset: DiffusionPreset, config: UNetConfig) -> DiffusionPreset:
    """A student preset whose noise map goes where the weights take it.

    Distilled-ResShift files come both ways (concat and add), so its presets' `noise_map`
    only says that there is one; every other preset is returned as it is."""
    if preset.name in PRESETS_BY_SCALE.values() and preset.noise_map != "none" and config.noise_channels:
        return replace(preset, noise_map=weights_noise_map(config))
    return preset


def _noise_channels(metadata: Mapping[str, str], mode: str, source: str) -> int:
    raw = metadata.get("noise_channels")
    if raw is None:
        return NOISE_MODES[mode]
    try:
        return int(str(raw).strip())
    except ValueError:
        raise CheckpointError(
            f"{source}: the Distilled-ResShift metadata says noise_channels={raw!r}, which is not a whole "
            "number; the file's header is damaged, so fetch the file again."
        ) from None


def _check_against_weights(metadata: Mapping[str, str], config: UNetConfig, source: str) -> None:
    mode = metadata.get("noise_mode", "concat")
    if mode not in NOISE_MODES:
        raise CheckpointError(
            f"{source}: the Distilled-ResShift metadata says noise_mode={mode!r}, which is unknown "
            f"(known: {', '.join(NOISE_MODES)}); the file is not a student this loader knows, so use another."
        )
    channels = _noise_channels(metadata, mode, source)
    has = weights_noise_map(config)
    if has != mode or config.noise_channels != channels:
        taken = "take no noise map" if has == "none" else f"take a {config.noise_channels}-channel noise map ({has})"
        raise CheckpointError(
            f"{source}: the Distilled-ResShift metadata says a {channels}-channel noise map ({mode}) but the "
            f"weights {taken}; the header does not belong to these weights, so fetch the file again."
        )


def _condition(metadata: Mapping[str, str], source: str) -> str:
    cond = metadata.get("cond_lq", "latent")
    if cond not in CONDITIONS:
        raise CheckpointError(
            f"{source}: the Distilled-ResShift metadata says cond_lq={cond!r}, which is unknown "
            f"(known: {', '.join(CONDITIONS)}); the file is not a student this loader knows, so use another."
        )
    return CONDITIONS[cond]


def _base_preset(entry: registry.RegistryEntry | None, source: str) -> tuple[DiffusionPreset, str | None]:
    """The student preset for the file's scale (by registry file name), or x4 with a warning."""
    named = entry.preset if entry is not None else None
    if named is not None and named in PRESETS_BY_SCALE.values():
        return registry.preset(named), None
    x2 = PRESETS_BY_SCALE[2]
    warning = (
        f"{source}: a Distilled-ResShift student whose scale the file does not record; x4 ({DEFAULT_PRESET}) "
        f"is assumed: choose the preset {x2} for an x2 student."
    )
    return registry.preset(DEFAULT_PRESET), warning


def distilled_preset(
    config: UNetConfig,
    metadata: Mapping[str, str],
    source: str,
    entry: registry.RegistryEntry | None,
) -> StudentPreset:
    """The preset of a Distilled-ResShift file: its scale's student preset, conditioned as its
    `cond_lq` says, with the noise map where the weights take it. Raises CheckpointError when
    the metadata is unknown or disagrees with the weights."""
    _check_against_weights(metadata, config, source)
    condition = _condition(metadata, source)
    base, warning = _base_preset(entry, source)
    preset = replace(base, condition=condition, noise_map=weights_noise_map(config))
    return StudentPreset(preset, SOURCE if warning is None else f"{SOURCE}, x4 assumed", warning)


__all__ = [
    "METADATA_KEYS",
    "PRESETS_BY_SCALE",
    "StudentPreset",
    "distilled_preset",
    "follow_weights_noise_map",
    "is_distilled_metadata",
    "weights_noise_map",
]
