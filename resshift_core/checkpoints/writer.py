"""Write our own safetensors: the weights plus what they are, in the header metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic_files import create_temp_beside
from ..errors import CheckpointError
from .loading import METADATA_FORMAT, LoadedModel


def checkpoint_metadata(loaded: LoadedModel) -> dict[str, str]:
    """String-only metadata (a safetensors rule): part, architecture, preset."""
    meta = {
        "format": METADATA_FORMAT,
        "resshift.part": loaded.part,
        "resshift.architecture": json.dumps(loaded.config.to_dict(), sort_keys=True),
    }
    if loaded.preset is not None:
        meta["resshift.preset"] = json.dumps(loaded.preset.to_dict(), sort_keys=True)
    return meta


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> Path:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: a folder of that name exists; choose another output name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = create_temp_beside(path)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write into {path.parent}: {exc.strerror or exc}; check the folder and its permissions"
        ) from None
    mode = os.fstat(fd).st_mode & 0o777  # what the umask allows
    os.close(fd)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, mode)  # safetensors writes its files 0600
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):  # a full disk, a vanished folder
            raise CheckpointError(
                f"cannot write {path}: {exc.strerror or exc}; nothing was written: check free disk space"
            ) from None
        raise
    return path


def save_model(loaded: LoadedModel, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Save a loaded model as safetensors with its architecture and preset."""
    tensors = {}
    for key, value in loaded.model.state_dict().items():
        tensor = value.detach().to("cpu")
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[key] = tensor.contiguous()
    return atomic_save_safetensors(tensors, path, checkpoint_metadata(loaded))
