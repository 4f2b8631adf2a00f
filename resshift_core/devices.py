"""The one table of devices and dtypes, shared by the command line, the nodes and training.

Names are what users type (`fp32`, `bf16`, `fp16`; `auto`, `cpu`, `cuda`, `cuda:1`, `mps`);
everything else in the package works with `torch.device` and `torch.dtype`.
"""

from __future__ import annotations

import torch

from .errors import InputError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES: tuple[str, ...] = tuple(DTYPES)
DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")


def dtype_from_name(name: str) -> torch.dtype:
    """`fp32` / `bf16` / `fp16` -> torch dtype."""
    try:
        return DTYPES[name]
    except KeyError:
        raise InputError(f"unknown dtype {name!r}: choose one of {', '.join(DTYPE_NAMES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    for name, value in DTYPES.items():
        if value == dtype:
            return name
    raise InputError(f"unsupported dtype {dtype}: choose one of {', '.join(DTYPE_NAMES)}")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def pick_device(name: str = "auto", *, local_rank: int | None = None) -> torch.device:
    """`auto` (CUDA, else MPS, else CPU), or an explicit device that must exist here.

    `local_rank` picks the GPU of one process among several on a machine (torchrun), where the
    name gives no index."""
    if not name:
        raise InputError(f"device must be one of {', '.join(DEVICE_KINDS)} (or cuda:N), got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif mps_available():
            name = "mps"
        else:
            name = "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type not in DEVICE_KINDS:
        raise InputError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name} was asked for but no CUDA GPU is available; use cpu")
        if device.index is None and local_rank is not None:
            device = torch.device("cuda", local_rank)
        if (device.index or 0) >= torch.cuda.device_count():
            raise InputError(
                f"device {name} does not exist: this machine has {torch.cuda.device_count()} CUDA GPU(s) (0 to "
                f"{torch.cuda.device_count() - 1})"
            )
    if device.type == "mps" and not mps_available():
        raise InputError(f"device {name} was asked for but MPS is not available here; use cpu")
    return device


def channels_last_for(device: torch.device | str) -> bool:
    """Channels-last convolutions are faster on CPUs and CUDA; MPS handles them poorly."""
    return torch.device(device).type != "mps"


__all__ = [
    "DTYPES",
    "DTYPE_NAMES",
    "channels_last_for",
    "dtype_from_name",
    "dtype_name",
    "mps_available",
    "pick_device",
]
