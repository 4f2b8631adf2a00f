"""Resumable training checkpoints: tensors and plain containers only, written atomically.

Loaded back with `torch.load(..., weights_only=True)`: a checkpoint cannot run code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..atomic_files import create_temp_beside
from .errors import ConfigError

CKPT_RE = re.compile(r"^step_(\d+)\.pt$")


def atomic_torch_save(obj, path: str | Path) -> Path:
    """torch.save to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def save_training_checkpoint(folder: str | Path, state: dict, step: int, keep: int = 2) -> Path:
    """Write checkpoints/step_<step>.pt and checkpoints/last.pt; keep the newest `keep` step files."""
    folder = Path(folder)
    path = atomic_torch_save(state, folder / f"step_{step:08d}.pt")
    atomic_torch_save(state, folder / "last.pt")
    steps = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name)))
    for _, old in steps[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def resume_path(resume: str | None, folder: str | Path) -> Path | None:
    """The checkpoint `--resume` names: None (start afresh), auto (the newest in `folder`, if
    any) or a path, which must exist."""
    if resume in (None, "none"):
        return None
    if resume == "auto":
        return latest_checkpoint(folder)
    path = Path(resume)
    if not path.is_file():
        raise ConfigError(
            "--resume",
            f"{resume} is not a checkpoint file",
            f"name a .pt file, or --resume auto (the newest in {folder}) or none",
        )
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    folder = Path(folder)
    last = folder / "last.pt"
    if last.is_file():
        return last
    steps = sorted((int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := CKPT_RE.match(p.name)))
    return steps[-1][1] if steps else None
