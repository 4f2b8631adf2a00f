"""The one table of devices and dtypes, shared by the command line, the nodes and training.

Names are what users type (`fp32`, `bf16`, `fp16`; `auto`, `cpu`, `cuda`, `cuda:1`, `mps`);
everything else in the package works with `torch.device` and `torch.dtype`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import InputError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_NAMES: tuple[str, ...] = tuple(DTYPES)
AUTO_DTYPE = "auto"
CPUINFO = Path("/proc/cpuinfo")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # without them oneDNN emulates bf16, ~10x slower than fp32
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


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo; empty where that cannot be read (other systems)."""
    try:
        return set(CPUINFO.read_text(errors="replace").split())
    except OSError:
        return set()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), from /proc/cpuinfo; False
    where that cannot be read (other systems: bf16 is then never picked automatically)."""
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def auto_dtype(device: torch.device) -> tuple[torch.dtype, str]:
    """The dtype `auto` picks for `device`, and why (for the user): bf16 where the hardware runs
    it natively (a CPU with AVX512-BF16/AMX, a CUDA GPU that supports it), else fp32. fp16 is never
    picked automatically: its range can overflow in the VQGAN."""
    if device.type == "cpu":
        if cpu_has_native_bf16():
            return torch.bfloat16, "this CPU computes bf16 natively"
        return torch.float32, "this CPU has no native bf16 (it would be emulated, far slower than fp32)"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16, "this GPU supports bf16"
    return torch.float32, f"no fast half precision known for {device.type}"


def resolve_dtype(name: str, device: torch.device) -> tuple[torch.dtype, str]:
    """A dtype name (or `auto`) for `device`, with the reason when `auto` chose it."""
    if name == AUTO_DTYPE:
        dtype, why = auto_dtype(device)
        return dtype, f"auto: {why}"
    return dtype_from_name(name), "asked for"


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
    "AUTO_DTYPE",
    "DTYPES",
    "DTYPE_NAMES",
    "auto_dtype",
    "channels_last_for",
    "cpu_flags",
    "cpu_has_native_bf16",
    "dtype_from_name",
    "dtype_name",
    "mps_available",
    "pick_device",
    "resolve_dtype",
]
