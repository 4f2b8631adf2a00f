"""Which format to write: from format= or the file ending, and the largest side each format holds."""

from __future__ import annotations

from pathlib import Path

from ..errors import ImageError

_BY_ENDING = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".dib": "BMP",
}
_BY_NAME = {"PNG": "PNG", "JPG": "JPEG", "JPEG": "JPEG", "WEBP": "WEBP", "TIF": "TIFF", "TIFF": "TIFF", "BMP": "BMP"}
MAX_SIDE = {"JPEG": 65535, "WEBP": 16383, "PNG": (1 << 31) - 1, "TIFF": (1 << 31) - 1, "BMP": (1 << 31) - 1}


def output_format(path: Path, fmt: str | None) -> str:
    """Pillow's name of the format to write (PNG, JPEG, WEBP, TIFF or BMP)."""
    if fmt is not None:
        key = str(fmt).upper().lstrip(".")
        if key not in _BY_NAME:
            raise ImageError(f"cannot write format {fmt!r} for {path}; use 'png', 'jpeg' or 'webp'")
        return _BY_NAME[key]
    try:
        return _BY_ENDING[path.suffix.lower()]
    except KeyError:
        raise ImageError(
            f"cannot tell the output format of {path} from its ending {path.suffix or '(none)'!r}; "
            f"name it .png, .jpg or .webp (or pass format=)"
        ) from None
