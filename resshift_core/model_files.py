"""Find checkpoint files by path or by registry name on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from . import registry
from .errors import CheckpointError

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def models_dirs() -> list[Path]:
    """Where named checkpoints are looked for: $RESSHIFT_MODELS_DIR, the user cache, weights/."""
    dirs = []
    if os.environ.get("RESSHIFT_MODELS_DIR"):
        dirs += [Path(p) for p in os.environ["RESSHIFT_MODELS_DIR"].split(os.pathsep) if p]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "resshift"
    dirs += [cache, registry.weights_dir()]
    return dirs


def default_download_dir() -> Path:
    return models_dirs()[0]


def resolve_checkpoint(spec: str, part: str, extra_dirs: Optional[list[Path]] = None) -> Path:
    """A path for `spec`: an existing file, or a registry name/file found in the model folders."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    entry = registry.find(spec)
    if entry is None:
        if path.suffix or os.sep in spec:
            raise CheckpointError(f"checkpoint not found: {path}. Check the path.")
        names = ", ".join(e.name for e in registry.entries() if e.part == part)
        raise CheckpointError(f"{spec!r} is neither a file nor a known checkpoint name. Known names: {names}")
    if entry.part != part:
        kind = "model (UNet)" if part == "unet" else "VAE"
        raise CheckpointError(f"{entry.name} is a {entry.part} checkpoint, not a {kind}.")
    stems = {Path(entry.file).stem, entry.name}
    for folder in [*(extra_dirs or []), *models_dirs()]:
        for stem in stems:
            for suffix in CHECKPOINT_SUFFIXES:
                candidate = folder / f"{stem}{suffix}"
                if candidate.is_file():
                    return candidate
    where = default_download_dir()
    url = f" from {entry.url}" if entry.url else ""
    raise CheckpointError(
        f"{entry.name} is not on this machine. Download {entry.file}{url} and put it in {where} "
        "(or set RESSHIFT_MODELS_DIR, or pass the file's path)."
    )
