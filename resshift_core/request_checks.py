"""What a restoration request may say, checked in one place: steps, seeds, colour fix, tile
sizes, images. Each refusal is one InputError sentence that names the valid range, so the
command line, the nodes and Python callers all say the same thing.

User-given numbers must be exact ints: a bool or a float (e.g. `steps=True`, `seed=1.5`) is
refused rather than silently converted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoints.loading import LoadedModel
from .colorfix import METHODS as COLOR_FIXES
from .errors import InputError
from .presets import DiffusionPreset

SEED_LIMIT = 1 << 64  # torch generators take seeds in [0, 2**64)


def _is_int(value: object) -> bool:
    return type(value) is int  # not isinstance: bool is an int subclass


def resolve_steps(preset: DiffusionPreset, steps: int | None) -> int:
    """The number of sampling steps to run: `steps` (1 to the trained count), or the preset's
    default for None / 0."""
    trained = preset.steps
    if steps is None or (_is_int(steps) and steps == 0):
        return preset.default_steps
    if not _is_int(steps) or not 1 <= steps <= trained:
        raise InputError(
            f"steps must be 1 to {trained} (this model was trained with {trained} steps; 0 or none = its "
            f"default, {preset.default_steps}); got {steps!r}"
        )
    return steps


def check_seeds(seeds: Sequence[int] | None, batch: int) -> list[int]:
    """One seed per image in [0, 2**64); None gives seed 0 to every image."""
    if seeds is None:
        return [0] * batch
    seeds = list(seeds)
    if len(seeds) != batch:
        raise InputError(f"{len(seeds)} seeds for {batch} images: give one seed per image")
    for seed in seeds:
        if not _is_int(seed) or not 0 <= seed < SEED_LIMIT:
            raise InputError(f"a seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")
    return seeds


def check_color_fix(method: str) -> None:
    if method not in COLOR_FIXES:
        raise InputError(f"unknown colour fix {method!r}: choose one of {', '.join(COLOR_FIXES)}")


def check_tile_sizes(*, tile: int | None, overlap: int | None, vae_tile: int | None) -> None:
    """Tile sizes in input pixels; None means automatic."""
    for name, value, least in (("tile", tile, 1), ("tile overlap", overlap, 0), ("VAE tile", vae_tile, 1)):
        if value is not None and (not _is_int(value) or value < least):
            raise InputError(f"{name} must be a whole number of input pixels, at least {least}; got {value!r}")


def check_images(images: torch.Tensor, name: str = "images") -> None:
    if images.ndim != 4:
        raise InputError(f"{name} must be a 4-D batch (B x C x H x W), got shape {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[-1] == 0 or images.shape[-2] == 0:
        raise InputError(f"{name} is empty: shape {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise InputError(f"{name} contain NaN or infinity; fix the input image (it may be a corrupt decode)")


def display_name(loaded: LoadedModel) -> str:
    """The model as messages name it: its file name, else its registry name, else 'the model'."""
    source = str(loaded.source or "")
    if source and not source.startswith("<"):
        return Path(source).name
    return loaded.registry_name or "the model"


__all__ = [
    "SEED_LIMIT",
    "check_color_fix",
    "check_images",
    "check_seeds",
    "check_tile_sizes",
    "display_name",
    "resolve_steps",
]
