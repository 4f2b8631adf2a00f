"""Writing a file so that it is either complete or not there: a hidden temporary file, then os.replace."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..atomic_files import create_temp_beside
from ..errors import ImageError


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call write(file) on a temporary file beside path, then move it onto path.

    On any failure, KeyboardInterrupt included, the temporary file is removed and an existing file
    at path is left as it was; failures other than an interrupt become one ImageError.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(
            f"cannot create the folder {path.parent}: {exc.strerror or exc}; check the output path and its permissions"
        ) from None
    if path.is_dir():
        raise ImageError(f"cannot write {path}: a folder of that name exists; choose another output name")
    try:
        fd, tmp = create_temp_beside(path)
    except OSError as exc:
        raise ImageError(
            f"cannot write into {path.parent}: {exc.strerror or exc}; check the output folder and its permissions"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():  # keep the permissions of a file we replace
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, ImageError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError):
            raise ImageError(
                f"cannot write {path}: {exc.strerror or exc}; check free disk space and permissions"
            ) from None
        raise ImageError(f"cannot write {path}: {type(exc).__name__}: {exc}") from None
