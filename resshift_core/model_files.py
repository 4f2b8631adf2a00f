"""Find checkpoint files by path or by registry name on this machine."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from . import registry
from .download import ProgressCallback, fetch_checkpoint, manual_download_message, offline
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


def find_published(entry: registry.RegistryEntry, folders: Sequence[str | Path]) -> Path | None:
    """A published checkpoint on disk: its file or registry name with any checkpoint extension
    (e.g. after `convert`) in one of `folders`, else the copy shipped in weights/."""
    stems = {Path(entry.file).stem, entry.name}
    for folder in folders:
        for stem in sorted(stems):
            for suffix in CHECKPOINT_SUFFIXES:
                candidate = Path(folder) / f"{stem}{suffix}"
                if candidate.is_file():
                    return candidate
    if entry.shipped and entry.local_path is not None and entry.local_path.is_file():
        return entry.local_path
    return None


def registry_entry_for(spec: str, part: str) -> registry.RegistryEntry:
    """The published checkpoint named `spec`, which must be of `part`; errors list the names."""
    entry = registry.find(spec)
    if entry is None:
        path = Path(spec).expanduser()
        if path.suffix or os.sep in spec:
            raise CheckpointError(f"checkpoint not found: {path}. Check the path.")
        names = ", ".join(e.name for e in registry.entries() if e.part == part)
        raise CheckpointError(f"{spec!r} is neither a file nor a known checkpoint name. Known names: {names}")
    if entry.part != part:
        kind = "model (UNet)" if part == "unet" else "VAE"
        raise CheckpointError(f"{entry.name} is a {entry.part} checkpoint, not a {kind}.")
    return entry


def resolve_checkpoint(
    spec: str,
    part: str,
    extra_dirs: Sequence[str | Path] | None = None,
    *,
    download_to: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> Path:
    """A path for `spec`: an existing file, or a published checkpoint by name or file name,
    found in `extra_dirs` and the model folders, else downloaded into `download_to` (size and
    sha256 checked) when given and not offline, else an error saying what to put where."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    entry = registry_entry_for(spec, part)
    found = find_published(entry, [*(extra_dirs or []), *models_dirs()])
    if found is not None:
        return found
    where = download_to or default_download_dir()
    if not entry.downloadable:  # e.g. on Google Drive: only a person can fetch it
        raise CheckpointError(
            manual_download_message(entry, where, ", or set RESSHIFT_MODELS_DIR, or pass the file's path")
        )
    if download_to is not None and not offline():
        Path(download_to).mkdir(parents=True, exist_ok=True)
        return fetch_checkpoint(entry, download_to, progress=progress)
    url = f" from {entry.url}" if entry.url else ""
    raise CheckpointError(
        f"{entry.name} is not on this machine. Download {entry.file}{url} and put it in {where} "
        "(or set RESSHIFT_MODELS_DIR, or pass the file's path)."
    )
