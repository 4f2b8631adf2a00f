"""list_images: files and folders expanded into the image files to process."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from ..errors import ImageError

#: File name endings that folder expansion picks up (an explicitly named file is always tried).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".tif", ".tiff"})


def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    if os.name != "nt":
        return False
    attrs = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attrs & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _scan_folder(root: Path, recursive: bool) -> list[Path]:
    found = []
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise ImageError(f"cannot list the folder {folder}: {exc.strerror or exc}; check its permissions") from None
        for entry in entries:
            try:
                if _is_hidden(entry):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        stack.append(folder / entry.name)
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    found.append(folder / entry.name)
            except OSError:
                continue  # a dangling link or an entry that vanished
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def list_images(inputs: str | os.PathLike | Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files and folders into a list of image files.

    A named file is kept as given (whatever its ending; load_image judges it). A folder gives the
    files inside it (and, with recursive, in its subfolders) whose ending is in IMAGE_EXTENSIONS,
    sorted by path, skipping hidden files and folders (names starting with a dot; hidden on Windows).
    Symbolic links to folders are not followed. Duplicates are dropped, keeping the first. A path that
    does not exist raises ImageError.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    result: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = _scan_folder(p, recursive)
        elif p.exists():
            files = [p]
        else:
            raise ImageError(f"input not found: {p}; check the path (files and folders of images are accepted)")
        for f in files:
            key = os.path.normcase(os.path.abspath(f))
            if key not in seen:
                seen.add(key)
                result.append(f)
    return result
