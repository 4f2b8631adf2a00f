"""Compare a state dict with the layout a detected architecture builds (key for key, shape for shape)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import ArchitectureError


def require_layout(expected: Mapping[str, tuple], state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise ArchitectureError naming the missing, unexpected and wrongly shaped keys, if any.

    `what` completes "the weights ... do not fit": e.g. "a ResShift UNet built from {config}".
    """
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} (expected {tuple(shape)})"
        for k, shape in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(shape)
    ]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        parts.append(f"{len(wrong)} with another shape ({'; '.join(wrong[:3])})")
    raise ArchitectureError(f"the weights do not fit {what}: " + "; ".join(parts))
