"""Mixed precision: train.amp names the autocast dtype; fp16 also needs a gradient scaler."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from ..devices import dtype_from_name
from .errors import ConfigError

AMP_MODES = ("auto", "bf16", "fp16", "none")


def autocast_dtype(amp: str, device_type: str) -> torch.dtype | None:
    """The dtype of `amp` on a device of `device_type` (auto: bf16 on CUDA, none elsewhere)."""
    if amp not in AMP_MODES:
        raise ConfigError(
            "train.amp",
            f"= {amp!r} is not a precision",
            f"choose {', '.join(AMP_MODES)} (auto: bf16 on CUDA, none on CPU)",
        )
    if amp == "auto":
        amp = "bf16" if device_type == "cuda" else "none"
    return None if amp == "none" else dtype_from_name(amp)


class Precision:
    """The autocast context and (fp16) gradient scaler of one training run."""

    def __init__(self, amp: str, device: torch.device):
        self.device_type = device.type
        self.dtype = autocast_dtype(amp, device.type)
        self.scaler = torch.amp.GradScaler(device.type) if self.dtype == torch.float16 else None

    def autocast(self) -> AbstractContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)


__all__ = ["AMP_MODES", "Precision", "autocast_dtype"]
