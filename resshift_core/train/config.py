"""Training configuration: dataclasses with a type, a default and a one-line meaning for every field.

A config is a TOML file with the tables [model], [data], [degradation], [optim], [train] and
[log]; missing fields keep their defaults (the published real-world x4 recipe, see
`configs/realsr_x4.toml`). `python -m resshift_core.train --print-config` prints them all.
Unknown tables or keys and values of the wrong type are a ConfigError naming the key; rules
between fields (and the number of processes) are checked by `checks.check_config`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the tomli backport (same API)
    import tomli as tomllib

from .config_fields import Key, checked_table, dataclass_keys, help_text, setting
from .errors import ConfigError
from .model_section import ModelSection
from .toml_writer import dumps_tables


class Section:
    """A table of plain fields: read from and written to TOML through its keys."""

    @classmethod
    def table_keys(cls) -> list[Key]:
        return dataclass_keys(cls)

    @classmethod
    def from_table(cls, table: str, values: Any):
        return cls(**checked_table(table, values, cls.table_keys()))

    def to_table(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def replace(self, **changes: Any):
        return type(self).from_table(self.table_name(), {**self.to_table(), **changes})

    @classmethod
    def table_name(cls) -> str:
        return next(name for name, section in SECTIONS.items() if section is cls)


@dataclass
class DataSection(Section):
    """Where the images come from and how they are cropped."""

    train_dir: str = setting("", "folder of HR images (searched recursively; png/jpg/webp/bmp/tif ...)")
    lq_dir: str = setting(
        "", "optional folder of LR images paired with train_dir by file name (then no synthetic degradation)"
    )
    val_dir: str = setting("", "validation folder with lq/ and gt/ subfolders (e.g. Val_SR); empty = no validation")
    val_max_images: int = setting(0, "validate on at most this many pairs (0 = all)")
    gt_size: int = setting(256, "side of the random HR crops")
    rescale_gt: bool = setting(
        True,
        "published: take a random square of side max(short side, gt_size) and area-resize it, "
        "so crops show whole scenes (HR-only data)",
    )
    rescale_size: int = setting(
        0,
        "with rescale_gt, resize the square to this side and crop gt_size from it "
        "(ours; 0 = gt_size, the published behaviour)",
    )
    use_hflip: bool = setting(True, "random horizontal flips")
    use_rot: bool = setting(False, "random vertical flips and 90-degree rotations")
    cache_images: bool = setting(True, "decode all training images once and keep them in memory (uint8)")


@dataclass
class DegradationSection(Section):
    """How LR inputs are made from HR crops on the fly (batched, on the training device)."""

    kind: str = setting(
        "realsr_x4",
        "realsr_x4, realsr_x4_testing, realsr_x2, bicubic_x4 (DegradationConfig presets), "
        "inpaint (masks), face (degrade_face)",
    )
    overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata=help_text(
            "fields of DegradationConfig / MaskConfig / FaceDegradationConfig to change, e.g. {second_order_prob = 0.3}"
        ),
    )
    mix_kind: str = setting(
        "", "a second SR degradation kind for part of every batch (ours; e.g. realsr_x4_testing); empty = none"
    )
    mix_fraction: float = setting(
        0.0, "fraction of every batch degraded by mix_kind instead of kind (rounded to whole images)"
    )


@dataclass
class OptimSection(Section):
    """AdamW with linear warm-up then cosine decay (published: lr 5e-5 -> 2e-5, 5000 warm-up steps)."""

    lr: float = setting(5e-5, "peak learning rate")
    lr_min: float = setting(2e-5, "learning rate at the end of the cosine decay")
    warmup_steps: int = setting(5000, "linear warm-up steps from 0 to lr")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999], metadata=help_text("Adam betas"))
    grad_clip: float = setting(0.0, "clip the gradient norm to this (0 = off)")


@dataclass
class TrainSection(Section):
    """The loop."""

    steps: int = setting(400000, "optimiser steps in total")
    batch_size: int = setting(96, "images per optimiser step over all processes (published: 96)")
    microbatch: int = setting(
        12, "images per forward/backward; batch_size / world_size / microbatch gradient accumulations"
    )
    ema_rate: float = setting(0.999, "EMA decay of the weights (warmed up as min(rate, (1+step)/(10+step)))")
    amp: str = setting(
        "auto", "autocast dtype: bf16, fp16 (with a gradient scaler), none, or auto (bf16 on CUDA, none on CPU)"
    )
    seed: int = setting(123456, "seed of every random stream (data order, crops, degradations, t, noise)")
    t_weights: list[float] = field(
        default_factory=list,
        metadata=help_text(
            "relative frequency of each chain step t = 0..T-1 in training (empty = uniform, the paper's)"
        ),
    )
    lpips_weight: float = setting(
        0.0, "weight of an LPIPS term on the decoded x0 (needs lpips_weights; skipped with a warning if absent)"
    )
    lpips_weights: str = setting(
        "", "local path of LPIPS-VGG weights (the lpips package's vgg.pth); nothing is downloaded"
    )
    device: str = setting("auto", "auto (cuda if available, else cpu), cpu, cuda, cuda:N")
    channels_last: bool = setting(True, "channels-last memory format (faster convolutions on GPUs)")
    compile: bool = setting(False, "torch.compile the UNet")
    time_limit_s: float = setting(
        0.0, "stop (with a checkpoint and export) after this many seconds of training (0 = no limit)"
    )
    num_threads: int = setting(0, "CPU threads for torch (0 = torch's default)")


@dataclass
class LogSection(Section):
    """Outputs: logs, samples, checkpoints, the final export."""

    out_dir: str = setting("runs/realsr_x4", "run folder (log.jsonl, samples/, checkpoints/, the export)")
    log_every: int = setting(200, "write the mean loss to log.jsonl every N steps")
    sample_every: int = setting(2000, "save a bicubic | ours | ground truth PNG every N steps (0 = never)")
    val_every: int = setting(10000, "validate (PSNR/SSIM, Y channel) every N steps (0 = only at the end)")
    save_every: int = setting(10000, "write a resumable checkpoint every N steps (0 = only at the end)")
    keep_checkpoints: int = setting(2, "keep the newest N step checkpoints (plus last.pt)")
    export_name: str = setting("model_ema.safetensors", "file name of the final EMA export in out_dir")
    export_dtype: str = setting("fp32", "dtype of the export: fp32, fp16 or bf16")
    val_crop_border: int = setting(0, "pixels cropped from each border before PSNR/SSIM")
    val_seed: int = setting(0, "sampling seed for validation")
    progress: bool = setting(True, "show a progress bar")


SECTIONS: dict[str, Any] = {
    "model": ModelSection,
    "data": DataSection,
    "degradation": DegradationSection,
    "optim": OptimSection,
    "train": TrainSection,
    "log": LogSection,
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
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """{table: {key: value}}, the shape of the TOML file (what from_dict reads)."""
        return {name: getattr(self, name).to_table() for name in SECTIONS}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = sorted(set(d) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"[{unknown[0]}]", "is not a config table", f"use the tables {', '.join(SECTIONS)}")
        return cls(**{name: section.from_table(name, d.get(name) or {}) for name, section in SECTIONS.items()})

    @classmethod
    def from_toml(cls, text: str) -> TrainConfig:
        return cls.from_dict(tomllib.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(
                str(path), f"cannot be read ({e.strerror})", "name an existing config file, e.g. configs/realsr_x4.toml"
            ) from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(str(path), f"is not valid TOML ({e})", "fix the line it names") from None
        return cls.from_dict(data)

    def with_section(self, name: str, **changes: Any) -> TrainConfig:
        """A copy with some keys of one table changed (checked as if read from TOML)."""
        return replace(self, **{name: getattr(self, name).replace(**changes)})

    def to_toml(self, comments: bool = False) -> str:
        tables = [
            (
                name,
                _doc(SECTIONS[name]),
                [(k.name, getattr(self, name).to_table()[k.name], k.help) for k in SECTIONS[name].table_keys()],
            )
            for name in SECTIONS
        ]
        return dumps_tables(
            tables, "ResShift training config (python -m resshift_core.train CONFIG)." if comments else ""
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(comments=True), encoding="utf-8")


def _doc(section: type) -> str:
    return (section.__doc__ or "").strip().splitlines()[0]


__all__ = [
    "SECTIONS",
    "ConfigError",
    "DataSection",
    "DegradationSection",
    "LogSection",
    "ModelSection",
    "OptimSection",
    "TrainConfig",
    "TrainSection",
    "tomllib",
]
