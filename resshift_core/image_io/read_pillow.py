"""Every file but a 16-bit PNG: decoded by Pillow, first frame only, EXIF orientation applied."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ImageError
from . import read_errors
from .loaded import LoadedImage, from_pixels
from .orientation import exif_orientation
from .pillow_modes import to_plain_mode
from .pillow_open import open_with_pillow
from .size_limit import check_size

_SUPPORTED_HINT = "PNG, JPEG, WebP, BMP or TIFF"


def load_with_pillow(path: Path, data: bytes, max_pixels: int | None) -> LoadedImage:
    """`data`: the whole file, read once by load_image."""
    from PIL import Image, UnidentifiedImageError

    try:
        im = open_with_pillow(data, max_pixels)
    except UnidentifiedImageError:
        size = len(data)
        raise ImageError(
            f"{path} is not an image that can be read ({size} bytes, not recognised as {_SUPPORTED_HINT}); "
            f"it may be damaged or in another format: re-export it as PNG or JPEG"
        ) from None
    except PermissionError as exc:
        raise read_errors.unreadable(path, exc) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path} is too large ({exc}); raise the limit with RESSHIFT_MAX_PIXELS=none") from None
    except Exception as exc:
        raise read_errors.damaged(path, f"corrupt ({type(exc).__name__}: {exc})") from None
    with im:
        w, h = im.size
        check_size(path, w, h, max_pixels)  # Pillow has read the header only: nothing decoded yet
        fmt = im.format or path.suffix.lstrip(".").upper()
        frames = int(getattr(im, "n_frames", 1))  # an animation: only its first frame is decoded
        try:
            im.load()
        except MemoryError:
            raise read_errors.out_of_memory(path, w, h) from None
        except Exception as exc:
            msg = str(exc)
            why = "truncated" if ("truncated" in msg or isinstance(exc, EOFError)) else "corrupt"
            raise read_errors.damaged(path, f"{why} ({type(exc).__name__}: {msg})") from None
        try:
            orientation = exif_orientation(im.getexif())
        except Exception:
            orientation = 1
        plain = to_plain_mode(im, im.info.get("icc_profile") or None, path)
        mode, icc = plain.mode, plain.icc

        def loaded(arr: np.ndarray, maxval: int, gray: bool, has_alpha: bool) -> LoadedImage:
            return from_pixels(
                arr,
                maxval,
                gray=gray,
                has_alpha=has_alpha,
                orientation=orientation,
                path=path,
                fmt=fmt,
                icc=icc,
                frames=frames,
            )

        if mode in ("L", "LA"):
            return loaded(np.asarray(plain.image), 255, True, mode == "LA")
        if mode in ("RGB", "RGBA"):
            return loaded(np.asarray(plain.image), 255, plain.gray_palette, mode == "RGBA")
        if mode.startswith("I;16"):
            return loaded(np.asarray(plain.image).astype(np.uint16), 65535, True, False)
        if mode == "I":
            arr = np.asarray(plain.image)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ImageError(
                    f"{path} has 32-bit integer pixels outside 0..65535 (mode I), which is not supported; "
                    f"convert it to an 8- or 16-bit PNG"
                )
            return loaded(arr.astype(np.uint16), 65535, True, False)
    kind = "floating point" if mode == "F" else "unusual"
    raise ImageError(
        f"{path} has pixel mode {mode!r} ({kind} samples), which is not supported; "
        f"convert it to an 8- or 16-bit RGB or RGBA PNG"
    )
