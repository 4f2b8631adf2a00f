"""Every rule a training run depends on, checked before any work: `check_config` raises the
first ConfigError (a field and a value that would work) instead of a traceback mid-run.

The rules live with the code that applies them (batches, objective, precision, the config
tables); this module runs them all, plus the ones that only guard values (ranges, files).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..devices import DTYPE_NAMES, pick_device
from ..errors import ArchitectureError, InputError
from ..models.unet import ResShiftUNet, UNetConfig
from .batches import plan_batches, plan_degradation
from .config import TrainConfig
from .data import check_crop_sizes
from .errors import ConfigError
from .objective import chain_step_weights
from .precision import autocast_dtype


def check_config(cfg: TrainConfig, world: int = 1, local_rank: int = 0) -> None:
    """Raise the first ConfigError of `cfg` run on `world` processes (this one at `local_rank`)."""
    TrainConfig.from_dict(cfg.to_dict())  # keys and types, also for configs built in Python
    _check_ranges(cfg)
    preset = cfg.model.diffusion_preset()
    _check_network_builds(cfg.model.unet)
    _check_paths(cfg)
    check_crop_sizes(cfg.data.gt_size, cfg.data.rescale_size, preset.sf, paired=bool(cfg.data.lq_dir))
    if not preset.latent:
        _check_pixel_crop(cfg)
    tr, d = cfg.train, cfg.degradation
    plan = plan_batches(tr.batch_size, tr.microbatch, world)
    plan_degradation(d.kind, d.overrides, d.mix_kind, d.mix_fraction, plan.local_batch)
    chain_step_weights(tr.t_weights, preset.steps)
    autocast_dtype(tr.amp, training_device(tr.device, world, local_rank).type)
    if cfg.log.export_dtype not in DTYPE_NAMES:
        raise ConfigError(
            "log.export_dtype", f"= {cfg.log.export_dtype!r} is not a dtype", f"choose {', '.join(DTYPE_NAMES)}"
        )


def training_device(name: str, world: int = 1, local_rank: int = 0) -> torch.device:
    """train.device as this process would use it (its own GPU under torchrun)."""
    try:
        return pick_device(name, local_rank=local_rank if world > 1 else None)
    except InputError as e:
        raise ConfigError("train.device", f"= {name!r}: {e}", 'use train.device = "auto" or "cpu"') from None


# (table, key, lowest value, the rule's words); every other number may be anything of its type
_LOWEST: list[tuple[str, str, float, str]] = [
    ("train", "steps", 1, "at least 1"),
    ("train", "microbatch", 1, "at least 1"),
    ("train", "batch_size", 1, "at least 1"),
    ("train", "num_threads", 0, "0 or more"),
    ("train", "time_limit_s", 0, "0 or more"),
    ("train", "lpips_weight", 0, "0 or more"),
    ("train", "ema_rate", 0, "between 0 and 1"),
    ("optim", "lr", 0, "0 or more"),
    ("optim", "lr_min", 0, "0 or more"),
    ("optim", "warmup_steps", 0, "0 or more"),
    ("optim", "weight_decay", 0, "0 or more"),
    ("optim", "grad_clip", 0, "0 or more"),
    ("data", "val_max_images", 0, "0 or more"),
    ("log", "log_every", 1, "at least 1"),
    ("log", "sample_every", 0, "0 or more"),
    ("log", "val_every", 0, "0 or more"),
    ("log", "save_every", 0, "0 or more"),
    ("log", "keep_checkpoints", 0, "0 or more"),
    ("log", "val_crop_border", 0, "0 or more"),
]


def _check_ranges(cfg: TrainConfig) -> None:
    for table, key, lowest, words in _LOWEST:
        value = getattr(getattr(cfg, table), key)
        if value < lowest:
            default = getattr(type(getattr(cfg, table))(), key)
            raise ConfigError(
                f"{table}.{key}", f"= {value} must be {words}", f"for example {table}.{key} = {default} (the default)"
            )
    if cfg.train.ema_rate > 1:
        raise ConfigError(
            "train.ema_rate",
            f"= {cfg.train.ema_rate} must be between 0 and 1",
            "for example train.ema_rate = 0.999 (the default)",
        )
    betas = cfg.optim.betas
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(
            "optim.betas",
            f"= {list(betas)} must be two numbers in [0, 1)",
            "for example optim.betas = [0.9, 0.999] (the default)",
        )


def _check_network_builds(unet: UNetConfig) -> None:
    """Layers have rules of their own (GroupNorm's 32 groups): build the network without memory."""
    try:
        with torch.device("meta"):
            ResShiftUNet(unet)
    except (ValueError, RuntimeError, ArchitectureError) as e:
        raise ConfigError(
            "[model]",
            f"describes no buildable UNet: {e}",
            "python -m resshift_core.train --print-config shows a working architecture (the published one)",
        ) from None


def _check_paths(cfg: TrainConfig) -> None:
    d, m = cfg.data, cfg.model
    if not d.train_dir:
        raise ConfigError(
            "data.train_dir",
            "is empty",
            'name a folder of HR training images, e.g. data.train_dir = "../shared/data/train/BSDS500"',
        )
    _folder("data.train_dir", d.train_dir, "a folder of HR training images")
    if d.lq_dir:
        _folder("data.lq_dir", d.lq_dir, 'the LR partners of train_dir, or data.lq_dir = "" (synthetic degradation)')
    if d.val_dir:
        for sub in ("lq", "gt"):
            if not (Path(d.val_dir) / sub).is_dir():
                raise ConfigError(
                    "data.val_dir",
                    f"= {d.val_dir!r} has no {sub}/ subfolder",
                    'name a folder with lq/ and gt/ (e.g. "../shared/data/Val_SR"), or data.val_dir = ""',
                )
    for key, path in (("model.vae_path", m.vae_path), ("model.init_checkpoint", m.init_checkpoint)):
        if path and not Path(path).is_file():
            raise ConfigError(key, f"= {path!r} is not a file", f'name an existing checkpoint, or {key} = ""')


def _folder(key: str, path: str, what: str) -> None:
    if not Path(path).is_dir():
        raise ConfigError(key, f"= {path!r} is not a folder", f"name {what}")


def _check_pixel_crop(cfg: TrainConfig) -> None:
    """A pixel-space UNet sees the HR crop itself: its side must fit the network's multiple."""
    multiple = cfg.model.unet.size_multiple
    side = cfg.data.gt_size
    if side % multiple:
        near = max(multiple, round(side / multiple) * multiple)
        raise ConfigError(
            "data.gt_size",
            f"= {side} is not a multiple of {multiple}, which the pixel-space UNet needs",
            f"use data.gt_size = {near}",
        )


__all__ = ["check_config", "training_device"]
