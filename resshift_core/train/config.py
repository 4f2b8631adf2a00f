"""Training configuration: dataclasses with a default and a one-line meaning for every field.

A config is a TOML file with the tables [model], [data], [degradation], [optim], [train] and
[log]; missing fields keep their defaults (the published real-world x4 recipe, see
`configs/realsr_x4.toml`). `python -m resshift_core.train --print-config` prints them all.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport (same API)
    import tomli as tomllib

from ..models.unet import UNetConfig


def _f(default, help: str):
    """A field with a default and its one-line meaning (printed by --print-config)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class ModelSection:
    """The network and the diffusion it is trained for."""

    preset: str = _f("realsr_x4_s4", "diffusion preset from weights/registry.json (schedule, sf, latent or pixel space)")
    vae_path: str = _f("", "VQGAN checkpoint for latent presets (published: weights/autoencoder_vq_f4.pth); empty for pixel-space presets")
    init_checkpoint: str = _f("", "UNet weights to start from (fine-tuning); empty = random initialisation")
    image_size: int = _f(64, "UNet input side during training (latent side; the HR crop side for pixel-space models)")
    in_channels: int = _f(3, "channels of the diffused state (VQGAN latent channels, or 3 for pixels)")
    model_channels: int = _f(160, "channels of the first UNet level")
    out_channels: int = _f(3, "channels predicted (= in_channels: the model predicts x0)")
    num_res_blocks: list = _f([2, 2, 2, 2], "residual blocks per UNet level")
    attention_resolutions: list = _f([64, 32, 16, 8], "level sides (image_size halved per level) that get Swin attention; the lowest level always has it")
    dropout: float = _f(0.0, "dropout inside residual blocks")
    channel_mult: list = _f([1, 2, 2, 4], "channel multiplier of each UNet level")
    num_head_channels: int = _f(32, "channels per attention head (-1: use a single head)")
    use_scale_shift_norm: bool = _f(True, "FiLM-style timestep conditioning in residual blocks")
    resblock_updown: bool = _f(False, "resample with residual blocks instead of convolutions")
    swin_depth: int = _f(2, "Swin transformer blocks per attention layer")
    swin_embed_dim: int = _f(192, "Swin embedding width")
    window_size: int = _f(8, "Swin attention window side")
    mlp_ratio: float = _f(4.0, "Swin MLP hidden width / embedding width")
    cond_mask: bool = _f(False, "the UNet also takes the inpainting mask")
    lq_size: int = _f(64, "side of the conditioning image at training time (image_size times a power of two)")
    pixel_unshuffle: int = _f(1, "fold r x r pixel blocks into channels so the UNet levels run at 1/r resolution (ours; 1 = published)")

    def unet_config(self) -> UNetConfig:
        names = {f.name for f in fields(UNetConfig)}
        kwargs = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        return UNetConfig(cond_lq=True, **kwargs)


@dataclass
class DataSection:
    """Where the images come from and how they are cropped."""

    train_dir: str = _f("", "folder of HR images (searched recursively; png/jpg/webp/bmp/tif ...)")
    lq_dir: str = _f("", "optional folder of LR images paired with train_dir by file name (then no synthetic degradation)")
    val_dir: str = _f("", "validation folder with lq/ and gt/ subfolders (e.g. Val_SR); empty = no validation")
    val_max_images: int = _f(0, "validate on at most this many pairs (0 = all)")
    gt_size: int = _f(256, "side of the random HR crops")
    rescale_gt: bool = _f(True, "published: take a random square of side max(short side, gt_size) and area-resize it, so crops show whole scenes (HR-only data)")
    rescale_size: int = _f(0, "with rescale_gt, resize the square to this side and crop gt_size from it (ours; 0 = gt_size, the published behaviour)")
    use_hflip: bool = _f(True, "random horizontal flips")
    use_rot: bool = _f(False, "random vertical flips and 90-degree rotations")
    cache_images: bool = _f(True, "decode all training images once and keep them in memory (uint8)")


@dataclass
class DegradationSection:
    """How LR inputs are made from HR crops on the fly (batched, on the training device)."""

    kind: str = _f("realsr_x4", "realsr_x4, realsr_x4_testing, realsr_x2, bicubic_x4 (DegradationConfig presets), inpaint (masks), face (degrade_face)")
    overrides: dict = _f({}, "fields of DegradationConfig / MaskConfig / FaceDegradationConfig to change, e.g. {second_order_prob = 0.3}")
    mix_kind: str = _f("", "a second SR degradation kind for part of every batch (ours; e.g. realsr_x4_testing); empty = none")
    mix_fraction: float = _f(0.0, "fraction of every batch degraded by mix_kind instead of kind (rounded to whole images)")


@dataclass
class OptimSection:
    """AdamW with linear warm-up then cosine decay (published: lr 5e-5 -> 2e-5, 5000 warm-up steps)."""

    lr: float = _f(5e-5, "peak learning rate")
    lr_min: float = _f(2e-5, "learning rate at the end of the cosine decay")
    warmup_steps: int = _f(5000, "linear warm-up steps from 0 to lr")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    betas: list = _f([0.9, 0.999], "Adam betas")
    grad_clip: float = _f(0.0, "clip the gradient norm to this (0 = off)")


@dataclass
class TrainSection:
    """The loop."""

    steps: int = _f(400000, "optimiser steps in total")
    batch_size: int = _f(96, "images per optimiser step over all processes (published: 96)")
    microbatch: int = _f(12, "images per forward/backward; batch_size / world_size / microbatch gradient accumulations")
    ema_rate: float = _f(0.999, "EMA decay of the weights (warmed up as min(rate, (1+step)/(10+step)))")
    amp: str = _f("auto", "autocast dtype: bf16, fp16 (with a gradient scaler), none, or auto (bf16 on CUDA, none on CPU)")
    seed: int = _f(123456, "seed of every random stream (data order, crops, degradations, t, noise)")
    t_weights: list = _f([], "relative frequency of each chain step t = 0..T-1 in training (empty = uniform, the paper's)")
    lpips_weight: float = _f(0.0, "weight of an LPIPS term on the decoded x0 (needs lpips_weights; skipped with a warning if absent)")
    lpips_weights: str = _f("", "local path of LPIPS-VGG weights (the lpips package's vgg.pth); nothing is downloaded")
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    channels_last: bool = _f(True, "channels-last memory format (faster convolutions on GPUs)")
    compile: bool = _f(False, "torch.compile the UNet")
    time_limit_s: float = _f(0.0, "stop (with a checkpoint and export) after this many seconds of training (0 = no limit)")
    num_threads: int = _f(0, "CPU threads for torch (0 = torch's default)")


@dataclass
class LogSection:
    """Outputs: logs, samples, checkpoints, the final export."""

    out_dir: str = _f("runs/realsr_x4", "run folder (log.jsonl, samples/, checkpoints/, the export)")
    log_every: int = _f(200, "write the mean loss to log.jsonl every N steps")
    sample_every: int = _f(2000, "save a bicubic | ours | ground truth PNG every N steps (0 = never)")
    val_every: int = _f(10000, "validate (PSNR/SSIM, Y channel) every N steps (0 = only at the end)")
    save_every: int = _f(10000, "write a resumable checkpoint every N steps (0 = only at the end)")
    keep_checkpoints: int = _f(2, "keep the newest N step checkpoints (plus last.pt)")
    export_name: str = _f("model_ema.safetensors", "file name of the final EMA export in out_dir")
    export_dtype: str = _f("fp32", "dtype of the export: fp32, fp16 or bf16")
    val_crop_border: int = _f(0, "pixels cropped from each border before PSNR/SSIM")
    val_seed: int = _f(0, "sampling seed for validation")
    progress: bool = _f(True, "show a progress bar")


SECTIONS = {
    "model": ModelSection, "data": DataSection, "degradation": DegradationSection,
    "optim": OptimSection, "train": TrainSection, "log": LogSection,
}


@dataclass
class TrainConfig:
    """A whole training run."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    degradation: DegradationSection = field(default_factory=DegradationSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    log: LogSection = field(default_factory=LogSection)

    # -- conversion ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = sorted(set(d) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown config tables {unknown}; expected {sorted(SECTIONS)}")
        parts = {}
        for name, section in SECTIONS.items():
            values = dict(d.get(name) or {})
            known = {f.name for f in fields(section)}
            bad = sorted(set(values) - known)
            if bad:
                raise ValueError(f"[{name}]: unknown fields {bad}; expected a subset of {sorted(known)}")
            parts[name] = section(**values)
        return cls(**parts)

    @classmethod
    def from_toml(cls, text: str) -> "TrainConfig":
        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        with open(path, "rb") as f:
            return cls.from_dict(tomllib.load(f))

    def to_toml(self, comments: bool = False) -> str:
        return dumps_toml(self, comments)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(comments=True), encoding="utf-8")


# -- a small TOML writer (tomllib only reads) ----------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        return r if r not in ("inf", "-inf", "nan") else r.replace("inf", "inf")
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if v is None:
        raise ValueError("TOML has no null")
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps_toml(config: TrainConfig, comments: bool = False) -> str:
    lines = []
    if comments:
        lines += ["# ResShift training config (python -m resshift_core.train CONFIG).", ""]
    for name in SECTIONS:
        section = getattr(config, name)
        if comments and section.__doc__:
            lines.append(f"# {section.__doc__.strip().splitlines()[0]}")
        lines.append(f"[{name}]")
        for f in fields(section):
            if comments:
                lines.append(f"# {f.metadata.get('help', '')}")
            lines.append(f"{f.name} = {_toml_value(getattr(section, f.name))}")
        lines.append("")
    return "\n".join(lines)
