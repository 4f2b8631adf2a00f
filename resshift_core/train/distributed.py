"""Several processes under torchrun: who this process is, its device, and the few collectives
the loop needs. One process (WORLD_SIZE unset or 1) needs no process group and none is made."""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..devices import pick_device
from ..distributed_env import Ranks  # the one reading of torchrun's variables


def start(ranks: Ranks, device_name: str) -> torch.device:
    """This process's device (its own GPU under torchrun), with the process group joined."""
    device = pick_device(device_name, local_rank=ranks.local_rank if ranks.enabled else None)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if ranks.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def barrier(ranks: Ranks) -> None:
    if ranks.enabled and dist.is_initialized():
        dist.barrier()


def mean_over_ranks(ranks: Ranks, value: float, device: torch.device) -> float:
    if not ranks.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / ranks.world


def any_rank(ranks: Ranks, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on one (all stop together)."""
    if not ranks.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t) > 0


def stop(ranks: Ranks) -> None:
    if ranks.enabled and dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Ranks", "any_rank", "barrier", "mean_over_ranks", "start", "stop"]
