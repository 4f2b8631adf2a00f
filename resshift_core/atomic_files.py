"""The temporary file behind every atomic write: beside the target, hidden, never overwriting."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_temp_beside(path: Path) -> tuple[int, Path]:
    """(fd, path) of a new hidden file next to `path`, for writing then `os.replace`.

    Created with mode 0o666 so the umask applies as for a plain open() (mkstemp's 0600 would
    leave the final file readable by its owner only). Raises OSError when the folder refuses it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name[:120]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file in {path.parent}")
