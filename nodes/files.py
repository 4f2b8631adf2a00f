"""Which checkpoints a loader offers, and where a chosen one is (fetching a published one).

The dropdown lists the files in ComfyUI's `models/resshift` folders (every path registered
for it, extra_model_paths.yaml included) and the published checkpoints by their file name,
whether downloaded yet or not, so a workflow naming one works before and after its download.
A published checkpoint converted to another format (e.g. by `resshift convert`) is found by
its name with any checkpoint extension.
"""

from __future__ import annotations

import os
from pathlib import Path

from resshift_core import registry
from resshift_core.download import PARTIAL_SUFFIX, fetch_checkpoint
from resshift_core.errors import CheckpointError
from resshift_core.model_files import find_published

from . import host

PART_NAMES = {"unet": "model (UNet)", "autoencoder": "VAE (VQGAN)"}
LOADER_NAMES = {"unet": "Load ResShift Model", "autoencoder": "Load ResShift VAE"}


def published(part: str) -> list:
    return [e for e in registry.entries() if e.part == part]


def choices(part: str) -> list[str]:
    """Files on disk that are not known to be the other part, plus every published file name."""
    names = set()
    for name in host.model_files():
        if Path(name).name.startswith(".") or name.endswith(PARTIAL_SUFFIX):
            continue
        entry = registry.find(name)
        if entry is not None and entry.part != part:
            continue
        names.add(name)
    # Published files are always offered under their own name (found on disk under any checkpoint
    # extension, or downloaded), so a workflow naming one stays valid before and after the download.
    names.update(entry.file for entry in published(part))
    return sorted(names, key=str.lower) or [""]


def download_progress():
    """A progress callback that drives a ComfyUI progress bar (bytes) and can be interrupted."""
    bar = host.progress_bar(100)

    def progress(done: int, total: int | None) -> None:
        host.check_interrupt()
        bar.update_absolute(done, total if total else max(done, 1))

    return progress


def resolve(name: str, part: str) -> Path:
    """The file for a dropdown value: in the models folders, else a published checkpoint
    fetched into the first one. Errors say what to do in words."""
    if not name:
        folders = ", ".join(host.model_folders())
        raise CheckpointError(f"no checkpoint chosen: put one in {folders} and pick it in {LOADER_NAMES[part]}")
    path = host.model_file_path(name)
    entry = registry.find(name)
    if entry is not None and entry.part != part:
        other = "autoencoder" if part == "unet" else "unet"
        raise CheckpointError(
            f"{name} is the published {PART_NAMES[entry.part]} '{entry.name}', not a {PART_NAMES[part]}: "
            f"load it with the {LOADER_NAMES[other]} node."
        )
    if path is not None:
        return Path(path)
    if entry is None:
        folders = ", ".join(host.model_folders())
        raise CheckpointError(
            f"{name} is not in the ResShift model folders ({folders}); put it there or pick another file."
        )
    found = find_published(entry, host.model_folders())
    if found is not None:
        return found
    folder = host.download_folder()
    os.makedirs(folder, exist_ok=True)
    host.log.info("ResShift: downloading %s into %s", entry.file, folder)
    return fetch_checkpoint(entry, folder, progress=download_progress())
