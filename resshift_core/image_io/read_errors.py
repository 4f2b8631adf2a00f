"""The messages of a file that cannot be read, shared by both readers."""

from __future__ import annotations

from pathlib import Path

from ..errors import ImageError


def damaged(path: Path, what: str) -> ImageError:
    """what: e.g. "truncated (libpng: ...)" or "corrupt (OSError: ...)"."""
    return ImageError(f"{path} is {what}; the file is damaged or incomplete: re-download or re-export it")


def unreadable(path: Path, exc: OSError) -> ImageError:
    return ImageError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions")


def out_of_memory(path: Path, width: int, height: int) -> ImageError:
    return ImageError(
        f"not enough memory to decode {path} ({width}x{height}); close other programs or use a smaller image"
    )
