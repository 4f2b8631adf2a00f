"""Training batches: how a step's images split over processes and microbatches, which
degradation makes their LR inputs, and the seeded batch of one rank at one step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from ..degradations import DegradationConfig, FaceDegradationConfig, MaskConfig, degrade, degrade_face, sample_masks
from .data import CropDataset, generator
from .errors import ConfigError

# The super-resolution kinds (DegradationConfig presets), which can be mixed in one batch.
SR_KINDS: dict[str, Callable[..., DegradationConfig]] = {
    "realsr_x4": DegradationConfig.realsr_x4,
    "realsr_x4_testing": DegradationConfig.realsr_x4_testing,
    "realsr_x2": DegradationConfig.realsr_x2,
    "bicubic_x4": DegradationConfig.bicubic_x4,
}
OTHER_KINDS: dict[str, type] = {"inpaint": MaskConfig, "face": FaceDegradationConfig}
KINDS = (*SR_KINDS, *OTHER_KINDS)

AnyDegradation = DegradationConfig | MaskConfig | FaceDegradationConfig


@dataclass(frozen=True)
class BatchPlan:
    """Images of one optimiser step on one process, and how many go through the network at once."""

    local_batch: int
    microbatch: int

    @property
    def accumulations(self) -> int:
        return self.local_batch // self.microbatch


def plan_batches(batch_size: int, microbatch: int, world: int) -> BatchPlan:
    """train.batch_size must split into `world` processes x whole microbatches."""
    if microbatch < 1:
        raise ConfigError(
            "train.microbatch",
            f"= {microbatch} is not a positive number of images",
            f"for example train.microbatch = {max(1, batch_size // max(world, 1))}",
        )
    unit = world * microbatch
    if batch_size < 1 or batch_size % unit:
        lower = batch_size // unit * unit
        choices = " or ".join(str(b) for b in (lower, lower + unit) if b > 0)
        raise ConfigError(
            "train.batch_size",
            f"= {batch_size} does not split into {world} process(es) x whole "
            f"microbatches of {microbatch} (train.microbatch)",
            f"use train.batch_size = {choices} (a multiple of {world} x {microbatch})",
        )
    return BatchPlan(batch_size // world, microbatch)


def degradation_config(kind: str, overrides: dict[str, Any], field: str = "degradation.kind") -> AnyDegradation:
    """The degradation settings of `kind` with `overrides` (fields of its config class)."""
    if kind not in KINDS:
        raise ConfigError(field, f"= {kind!r} is not a degradation kind", f"choose {', '.join(KINDS)}")
    cls = DegradationConfig if kind in SR_KINDS else OTHER_KINDS[kind]
    valid = [f.name for f in fields(cls)]
    bad = sorted(set(overrides) - set(valid))
    if bad:
        raise ConfigError(
            "degradation.overrides",
            f"names {bad[0]!r}, not a field of {cls.__name__} ({kind})",
            f"use some of {', '.join(valid)}",
        )
    try:
        return SR_KINDS[kind](**overrides) if kind in SR_KINDS else cls(**overrides)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            "degradation.overrides",
            f"do not make a valid {cls.__name__}: {e}",
            "change the value it names, or remove it (the published default)",
        ) from None


@dataclass(frozen=True)
class DegradationPlan:
    """Which degradation each image of a local batch gets: the last `mix_count` get `mix`."""

    kind: str
    config: AnyDegradation
    mix: DegradationConfig | None = None
    mix_count: int = 0


def plan_degradation(
    kind: str, overrides: dict[str, Any], mix_kind: str, mix_fraction: float, local_batch: int
) -> DegradationPlan:
    config = degradation_config(kind, overrides)
    if not mix_kind or mix_fraction <= 0:
        return DegradationPlan(kind, config)
    if not 0 < mix_fraction < 1:
        raise ConfigError(
            "degradation.mix_fraction",
            f"= {mix_fraction} is not a fraction between 0 and 1",
            "for example degradation.mix_fraction = 0.25",
        )
    mix = degradation_config(mix_kind, {}, field="degradation.mix_kind")
    if not isinstance(config, DegradationConfig) or not isinstance(mix, DegradationConfig):
        raise ConfigError(
            "degradation.mix_kind",
            f"= {mix_kind!r} with kind {kind!r}: mixing works between the super-resolution kinds",
            f'use two of {", ".join(SR_KINDS)}, or degradation.mix_kind = ""',
        )
    if mix.sf != config.sf:
        same = [k for k, make in SR_KINDS.items() if make().sf == config.sf and k != kind]
        raise ConfigError(
            "degradation.mix_kind",
            f"= {mix_kind!r} has scale {mix.sf} but kind {kind!r} has {config.sf}: mix kinds of the same scale",
            f"use one of {', '.join(same) or 'none'}",
        )
    count = round(mix_fraction * local_batch)
    if count in (0, local_batch):
        if local_batch < 2:
            fix = "use at least 2 images per process (train.batch_size), or degradation.mix_fraction = 0"
        else:
            fix = f"for example degradation.mix_fraction = {min(max(count, 1), local_batch - 1) / local_batch:g}"
        raise ConfigError(
            "degradation.mix_fraction",
            f"= {mix_fraction} of {local_batch} images per process is "
            f"{count} images: choose a fraction that leaves both kinds at least one image",
            fix,
        )
    return DegradationPlan(kind, config, mix, count)


class BatchMaker:
    """The batch of one rank at one step: gt, lq and (inpainting) mask in [-1, 1] on `device`.

    Every random draw comes from streams seeded by (seed, stream, step, rank), so a step's batch
    is the same in a resumed run as in an uninterrupted one."""

    def __init__(
        self,
        data: CropDataset,
        plan: DegradationPlan,
        *,
        seed: int,
        local_batch: int,
        rank: int,
        world: int,
        device: torch.device,
    ):
        self.data, self.plan, self.seed, self.local_batch = data, plan, seed, local_batch
        self.rank, self.world, self.device = rank, world, device

    @torch.no_grad()
    def __call__(self, step: int) -> dict[str, torch.Tensor]:
        plan, seed, rank = self.plan, self.seed, self.rank
        hr, lq = self.data.batch(seed, step, self.local_batch, rank, self.world)
        gt = hr.to(self.device, non_blocking=True).float() / 255
        g = generator(seed, "degrade", step, rank, device=self.device)
        mask = None
        if lq is not None:
            lq = lq.to(self.device).float() / 255
        elif isinstance(plan.config, MaskConfig):
            mask = sample_masks(gt.shape[0], gt.shape[-2], gt.shape[-1], g, plan.config, device=self.device)
            lq = gt * (1 - mask)
        elif isinstance(plan.config, FaceDegradationConfig):
            lq = degrade_face(gt, g, plan.config)
            if isinstance(lq, tuple):
                lq, gt = lq[0], lq[1]
        elif plan.mix is not None:
            # The last mix_count images of every batch get the second kind, from their own stream.
            k = gt.shape[0] - plan.mix_count
            g_mix = generator(seed, "degrade-mix", step, rank, device=self.device)
            lq = torch.cat([degrade(gt[:k], g, plan.config), degrade(gt[k:], g_mix, plan.mix)])
        else:
            lq = degrade(gt, g, plan.config)
        out = {"gt": gt * 2 - 1, "lq": lq.clamp(0, 1) * 2 - 1}
        if mask is not None:
            out["mask"] = mask * 2 - 1
        return out


__all__ = [
    "KINDS",
    "SR_KINDS",
    "BatchMaker",
    "BatchPlan",
    "DegradationPlan",
    "degradation_config",
    "plan_batches",
    "plan_degradation",
]
