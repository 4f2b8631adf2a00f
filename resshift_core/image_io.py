"""Reading and writing image files for the command-line upscaler.

Plain tensors in and out: :func:`load_image` gives a :class:`LoadedImage` whose ``rgb`` is a float32
3xHxW tensor in [0, 1] (grayscale sources are repeated to three channels and flagged), with the
transparency, bit depth and ICC profile of the source kept beside it so that :func:`save_image` can
write the result back in kind.

Formats
    Read: whatever Pillow reads (PNG, JPEG, WebP, BMP, TIFF, ...), first frame only, EXIF orientation
    applied. 16-bit PNGs (gray, gray+alpha, RGB, RGBA; interlaced or not) are decoded by imagecodecs
    (libpng), because Pillow opens 16-bit RGB(A) and gray+alpha PNGs as 8-bit (it keeps only the
    high byte of every sample) and cannot write them at all; their ICC profile and EXIF orientation
    come from the chunks before the image data.
    16-bit gray TIFFs come through Pillow at 16 bits; 16-bit colour TIFFs come through Pillow at 8 bits.
    Write: PNG (8 or 16 bits, gray or RGB, with or without alpha), JPEG (quality 95, no alpha),
    WebP (8 bits, alpha allowed), and 8-bit TIFF/BMP.

Size limit (decompression bombs)
    Pillow refuses images above 2 x ``Image.MAX_IMAGE_PIXELS`` (about 179 megapixels) and warns
    above 89 megapixels. That is the wrong limit for photos, so we apply our own: an image may have
    at most :data:`MAX_PIXELS` pixels (2**28, about 268 megapixels, e.g. 16384x16384: 3 GiB as a float
    tensor), changeable per call (``load_image(..., max_pixels=...)``; ``None`` = no limit) or with the
    environment variable ``RESSHIFT_MAX_PIXELS`` (a number, or ``none``). Within it no Pillow warning
    or error is raised: Pillow's global limit is only lifted (under a lock, then restored) for an image
    that Pillow itself would refuse. The limit is checked from the header, before any pixel is decoded.

Writes are atomic: the file is written to a hidden temporary file in the target folder and moved into
place with ``os.replace``; on any failure the temporary file is removed and an existing file of that
name is left untouched.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np
import torch

from .atomic_files import create_temp_beside
from .errors import ImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "LoadedImage",
    "list_images",
    "load_image",
    "save_image",
]

PathLike = Union[str, os.PathLike]

#: File name endings that folder expansion picks up (an explicitly named file is always tried).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".bmp", ".dib", ".tif", ".tiff"})

#: Default largest image (width x height) that load_image accepts. See the module docstring.
MAX_PIXELS = 1 << 28

_SUPPORTED_HINT = "PNG, JPEG, WebP, BMP or TIFF"


@dataclass
class LoadedImage:
    """One decoded image file.

    rgb: float32 3xHxW in [0, 1] (a grayscale source gives three identical channels).
    alpha: float32 1xHxW in [0, 1], or None when the image has no transparency (no alpha channel,
        no transparent palette entry or colour key, or an alpha channel that is fully opaque).
    bit_depth: 8 or 16 (bits per sample of the source; what to write back as PNG).
    grayscale: the source had no colour (gray or gray+alpha, or a palette of grays).
    source_format: Pillow's format name, e.g. "PNG", "JPEG", "WEBP".
    icc_profile: the source's embedded ICC profile (RGB or gray), or None. Profiles of CMYK or Lab
        sources are not kept, since the pixels were converted to RGB.
    """

    rgb: torch.Tensor
    alpha: Optional[torch.Tensor]
    bit_depth: int
    grayscale: bool
    source_format: str
    path: Path
    icc_profile: Optional[bytes] = None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[-1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[-2])


# --------------------------------------------------------------------------------------------------
# 16-bit PNG through imagecodecs (libpng): Pillow reads 16-bit RGB(A) and gray+alpha as 8-bit
# --------------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG16_LEVEL = 3  # zlib level: the low byte of 16-bit photos is noise, so 6 saves ~1% for ~40% more time


class _PngError(Exception):
    """A reason an image cannot be read; turned into an ImageError naming the file by the caller."""


def _png_header(head: bytes):
    """(width, height, bit_depth, color_type, interlace) from the first 33 bytes of a PNG, else None."""
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">IIBBBBB", head[16:29])[:2] + (head[24], head[25], head[28])


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        raise ImageError("16-bit PNG files need the imagecodecs package, which is not installed; "
                         "install it with `pip install imagecodecs`") from None
    return imagecodecs


def _png16_metadata(path: Path, max_pixels: Optional[int]):
    """(icc_profile, exif) as Pillow reads them from the chunks before the image data, else (None, None).

    Only the header chunks are parsed, no pixel. A file Pillow cannot parse (e.g. a damaged
    metadata chunk, which libpng skips) keeps its pixels and loses its metadata.
    """
    try:
        with _open_with_pillow(path, max_pixels) as im:
            return im.info.get("icc_profile") or None, im.info.get("exif") or None
    except Exception:
        return None, None


def _decode_png16(data: bytes) -> np.ndarray:
    """HxWxC uint16 pixels (C = 1..4); a tRNS colour key comes back as an alpha channel."""
    codecs = _imagecodecs()
    try:
        pixels = codecs.png_decode(data)
    except codecs.PngError as exc:
        why = "truncated" if "too small" in str(exc) else "corrupt"
        raise _PngError(f"{why} (libpng: {exc})") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def _encode_png16(pixels: np.ndarray, icc_profile: Optional[bytes]) -> bytes:
    """PNG bytes for HxWxC uint16 pixels, with the ICC profile (if any) in an iCCP chunk after IHDR."""
    if pixels.shape[2] == 1:  # gray as HxW: imagecodecs refuses the odd stride numpy may give a length-1 axis
        pixels = pixels[:, :, 0]
    data = _imagecodecs().png_encode(pixels, level=_PNG16_LEVEL)
    if not icc_profile:
        return data
    body = b"ICC profile\0\0" + zlib.compress(icc_profile)  # name, NUL, compression method 0 (deflate)
    crc = zlib.crc32(body, zlib.crc32(b"iCCP")) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", crc)
    ihdr_end = 8 + 12 + struct.unpack(">I", data[8:12])[0]  # signature, then length+type+body+CRC
    return data[:ihdr_end] + chunk + data[ihdr_end:]
# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

_PIL_LIMIT_LOCK = threading.Lock()


def _default_max_pixels() -> Optional[int]:
    env = os.environ.get("RESSHIFT_MAX_PIXELS", "").strip()
    if not env:
        return MAX_PIXELS
    if env.lower() in ("none", "0", "off", "unlimited"):
        return None
    try:
        return int(float(env))
    except ValueError:
        raise ImageError(f"RESSHIFT_MAX_PIXELS={env!r} is not a number; set it to e.g. 400000000, or 'none'") from None


def _check_pixels(width: int, height: int, max_pixels: Optional[int]) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise _PngError(
            f"too large: {width}x{height} = {width * height / 1e6:.0f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.0f} megapixels that guards against decompression bombs; if the image is "
            f"genuine, raise the limit (load_image(..., max_pixels=None) or the environment variable "
            f"RESSHIFT_MAX_PIXELS=none)"
        )


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an HxWxC array, as ImageOps.exif_transpose does."""
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.transpose(1, 0, 2)
    if orientation == 6:
        return arr.transpose(1, 0, 2)[:, ::-1]
    if orientation == 7:
        return arr.transpose(1, 0, 2)[::-1, ::-1]
    if orientation == 8:
        return arr.transpose(1, 0, 2)[::-1]
    return arr


def _exif_orientation(exif) -> int:
    try:
        if isinstance(exif, (bytes, bytearray)):
            from PIL import Image

            parsed = Image.Exif()
            parsed.load(bytes(exif))
            exif = parsed
        value = int(exif.get(0x0112, 1)) if exif is not None else 1
    except Exception:  # malformed EXIF: ignore it, as viewers do
        return 1
    return value if 1 <= value <= 8 else 1


def _icc_space(icc: Optional[bytes]) -> Optional[bytes]:
    return icc[16:20] if icc and len(icc) >= 128 else None


def _to_chw_float(arr: np.ndarray, maxval: int) -> torch.Tensor:
    """HxWxC integers -> contiguous float32 CxHxW tensor in [0, 1] (one conversion pass, then a scale)."""
    out = torch.from_numpy(np.array(arr.transpose(2, 0, 1), dtype=np.float32, order="C"))
    return out.div_(maxval)


def _to_loaded(arr: np.ndarray, maxval: int, gray: bool, has_alpha: bool, orientation: int,
               path: Path, fmt: str, icc: Optional[bytes]) -> LoadedImage:
    """HxWxC integer array (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) -> LoadedImage."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    colour = arr[:, :, :-1] if has_alpha else arr
    alpha_arr = arr[:, :, -1:] if has_alpha else None
    if alpha_arr is not None and bool((alpha_arr == maxval).all()):
        alpha_arr = None  # an opaque alpha channel: no transparency
    rgb = _to_chw_float(_orient(colour, orientation), maxval)
    if rgb.shape[0] == 1:
        rgb = rgb.repeat(3, 1, 1)
    alpha = None
    if alpha_arr is not None:
        alpha = _to_chw_float(_orient(alpha_arr, orientation), maxval)
    space = _icc_space(icc)
    if space not in (b"RGB ", b"GRAY"):
        icc = None
    return LoadedImage(rgb=rgb, alpha=alpha, bit_depth=16 if maxval == 65535 else 8, grayscale=gray,
                       source_format=fmt, path=path, icc_profile=icc)


def _load_png16(path: Path, width: int, height: int, max_pixels: Optional[int]) -> LoadedImage:
    try:
        _check_pixels(width, height, max_pixels)  # from the header: before any pixel is decoded
    except _PngError as exc:
        raise _image_error(path, str(exc)) from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from None
    try:
        pixels = _decode_png16(data)
    except _PngError as exc:
        raise _image_error(path, str(exc)) from None
    except MemoryError:
        raise ImageError(f"not enough memory to decode {path}; close other programs or process a smaller image") from None
    icc, exif = _png16_metadata(path, max_pixels)
    c = pixels.shape[2]
    return _to_loaded(pixels, 65535, gray=c <= 2, has_alpha=c in (2, 4),
                      orientation=_exif_orientation(exif) if exif else 1, path=path, fmt="PNG", icc=icc)


def _image_error(path: Path, reason: str) -> ImageError:
    if reason.startswith("too large"):
        return ImageError(f"{path} is {reason}")
    if reason.startswith("zero-size"):
        return ImageError(f"{path} has zero width or height {reason[9:].strip()}: there is nothing to upscale; "
                          f"re-export the image")
    if reason.startswith("unsupported"):
        return ImageError(f"{path}: {reason}; convert it to an 8- or 16-bit RGB or RGBA PNG")
    return ImageError(f"{path} is {reason}; the file is damaged or incomplete: re-download or re-export it")


def _open_with_pillow(path: Path, max_pixels: Optional[int]):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError:
            pass
        # Bigger than Pillow allows: lift Pillow's limit to ours for this one open (our own check follows).
        with _PIL_LIMIT_LOCK:
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                return Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = old


def _palette_is_gray(im) -> bool:
    try:
        pal = np.asarray(im.getpalette("RGB") or [], np.uint8).reshape(-1, 3)
        used = np.unique(np.asarray(im))
        used = used[used < len(pal)]
        sel = pal[used]
        return bool(len(sel)) and bool((sel[:, 0] == sel[:, 1]).all() and (sel[:, 1] == sel[:, 2]).all())
    except Exception:
        return False


def _cmyk_to_rgb(im, icc: Optional[bytes]):
    """CMYK -> RGB through the embedded profile when LittleCMS is available, else Pillow's formula."""
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:
            pass
    return im.convert("RGB")


def _load_with_pillow(path: Path, max_pixels: Optional[int]) -> LoadedImage:
    from PIL import Image, UnidentifiedImageError

    try:
        im = _open_with_pillow(path, max_pixels)
    except UnidentifiedImageError:
        size = path.stat().st_size
        raise ImageError(
            f"{path} is not an image that can be read ({size} bytes, not recognised as {_SUPPORTED_HINT}); "
            f"it may be damaged or in another format: re-export it as PNG or JPEG"
        ) from None
    except PermissionError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror}; check the file's permissions") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{path} is too large ({exc}); raise the limit with RESSHIFT_MAX_PIXELS=none") from None
    except Exception as exc:
        raise _image_error(path, f"corrupt ({type(exc).__name__}: {exc})") from None
    with im:
        w, h = im.size
        if w == 0 or h == 0:
            raise _image_error(path, f"zero-size ({w}x{h})")
        try:
            _check_pixels(w, h, max_pixels)
        except _PngError as exc:
            raise _image_error(path, str(exc)) from None
        fmt = im.format or path.suffix.lstrip(".").upper()
        try:
            im.load()
        except MemoryError:
            raise ImageError(f"not enough memory to decode {path} ({w}x{h}); close other programs or use a smaller image") from None
        except Exception as exc:
            msg = str(exc)
            why = "truncated" if ("truncated" in msg or isinstance(exc, EOFError)) else "corrupt"
            raise _image_error(path, f"{why} ({type(exc).__name__}: {msg})") from None
        try:
            orientation = _exif_orientation(im.getexif())
        except Exception:
            orientation = 1
        icc = im.info.get("icc_profile") or None
        mode = im.mode
        has_key = "transparency" in im.info
        gray = False
        try:
            if mode == "1":
                im, mode = im.convert("L"), "L"
            if mode in ("P", "PA"):
                gray = _palette_is_gray(im)
                target = "RGBA" if (has_key or mode == "PA") else "RGB"
                im, mode = im.convert(target), target
                icc = icc if _icc_space(icc) == b"RGB " else None
            elif mode == "L" and has_key:
                im, mode = im.convert("LA"), "LA"
            elif mode == "La":
                im, mode = im.convert("LA"), "LA"
            elif mode == "RGB" and has_key:
                im, mode = im.convert("RGBA"), "RGBA"
            elif mode == "RGBa":
                im, mode = im.convert("RGBA"), "RGBA"
            elif mode == "RGBX":
                im, mode = im.convert("RGB"), "RGB"
            elif mode == "CMYK":
                im, mode = _cmyk_to_rgb(im, icc), "RGB"
                icc = None
            elif mode in ("YCbCr", "LAB", "HSV"):
                if mode != "YCbCr":
                    icc = None
                im, mode = im.convert("RGB"), "RGB"
        except Exception as exc:
            raise ImageError(f"{path}: cannot convert its {mode} pixels to RGB ({exc}); "
                             f"re-export it as an 8- or 16-bit RGB or RGBA PNG") from None

        if mode in ("L", "LA"):
            return _to_loaded(np.asarray(im), 255, True, mode == "LA", orientation, path, fmt, icc)
        if mode in ("RGB", "RGBA"):
            return _to_loaded(np.asarray(im), 255, gray, mode == "RGBA", orientation, path, fmt, icc)
        if mode.startswith("I;16"):
            arr = np.asarray(im).astype(np.uint16)
            return _to_loaded(arr, 65535, True, False, orientation, path, fmt, icc)
        if mode == "I":
            arr = np.asarray(im)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise ImageError(f"{path} has 32-bit integer pixels outside 0..65535 (mode I), which is not "
                                 f"supported; convert it to an 8- or 16-bit PNG")
            return _to_loaded(arr.astype(np.uint16), 65535, True, False, orientation, path, fmt, icc)
    raise ImageError(f"{path} has pixel mode {mode!r} ({'floating point' if mode == 'F' else 'unusual'} samples), "
                     f"which is not supported; convert it to an 8- or 16-bit RGB or RGBA PNG")


def load_image(path: PathLike, *, max_pixels: Optional[int] = -1) -> LoadedImage:
    """Decode one image file; see :class:`LoadedImage`.

    max_pixels: largest width*height accepted (default :data:`MAX_PIXELS`, or RESSHIFT_MAX_PIXELS);
    None for no limit. Raises ImageError (naming the file and the fix) for a missing, unreadable,
    corrupt, truncated, empty, too large or unsupported file.
    """
    path = Path(path)
    if max_pixels == -1:
        max_pixels = _default_max_pixels()
    if not path.exists():
        raise ImageError(f"image not found: {path}; check the path and file name")
    if path.is_dir():
        raise ImageError(f"{path} is a folder, not an image file; pass a file (folders are expanded by list_images)")
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}; check the file's permissions") from None
    if not head:
        raise ImageError(f"{path} is empty (0 bytes); the file is damaged or incomplete: re-download or re-export it")
    header = _png_header(head)
    if header is not None:
        w, h, depth, ctype, _ = header
        if w == 0 or h == 0:
            raise _image_error(path, f"zero-size ({w}x{h})")
        if depth == 16:
            return _load_png16(path, w, h, max_pixels)
    return _load_with_pillow(path, max_pixels)


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------

_FORMATS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".webp": "WEBP",
    ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".dib": "BMP",
}
_FORMAT_ALIASES = {"PNG": "PNG", "JPG": "JPEG", "JPEG": "JPEG", "WEBP": "WEBP", "TIF": "TIFF", "TIFF": "TIFF", "BMP": "BMP"}
_MAX_SIDE = {"JPEG": 65535, "WEBP": 16383, "PNG": (1 << 31) - 1, "TIFF": (1 << 31) - 1, "BMP": (1 << 31) - 1}


def _output_format(path: Path, fmt: Optional[str]) -> str:
    if fmt is not None:
        key = str(fmt).upper().lstrip(".")
        if key not in _FORMAT_ALIASES:
            raise ImageError(f"cannot write format {fmt!r} for {path}; use 'png', 'jpeg' or 'webp'")
        return _FORMAT_ALIASES[key]
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImageError(f"cannot tell the output format of {path} from its ending {path.suffix or '(none)'!r}; "
                         f"name it .png, .jpg or .webp (or pass format=)") from None


def _as_chw(x, what: str, path: Path) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"cannot save {path}: {what} must be a tensor, not {type(x).__name__}")
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ImageError(f"cannot save {path}: {what} must have shape CxHxW, got {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise ImageError(f"cannot save {path}: {what} must be floating point with values in [0, 1], got {x.dtype}")
    return x.detach().to("cpu", torch.float32)


def _quantize(x: torch.Tensor, maxval: int, what: str, path: Path) -> np.ndarray:
    """CxHxW float in [0,1] -> HxWxC uint8/uint16, clamped and rounded to nearest."""
    if not bool(torch.isfinite(x).all()):
        bad = "NaN" if bool(torch.isnan(x).any()) else "infinite"
        raise ImageError(f"cannot save {path}: the {what} contains {bad} values (the result of a failed "
                         f"computation); nothing was written; check the computation that produced it (e.g. run in float32 instead of float16)")
    arr = x.numpy()
    arr = np.clip(arr, 0.0, 1.0) * np.float32(maxval)
    np.rint(arr, out=arr)
    return np.ascontiguousarray(arr.astype(np.uint16 if maxval > 255 else np.uint8).transpose(1, 2, 0))


def _write_atomic(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create the folder {path.parent}: {exc.strerror or exc}; "
                         f"check the output path and its permissions") from None
    if path.is_dir():
        raise ImageError(f"cannot write {path}: a folder of that name exists; choose another output name")
    try:
        fd, tmp = create_temp_beside(path)
    except OSError as exc:
        raise ImageError(f"cannot write into {path.parent}: {exc.strerror or exc}; "
                         f"check the output folder and its permissions") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():  # keep the permissions of a file we replace
            try:
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            except OSError:
                pass
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, ImageError) or not isinstance(exc, Exception):
            raise
        if isinstance(exc, OSError):
            raise ImageError(f"cannot write {path}: {exc.strerror or exc}; check free disk space and "
                             f"permissions") from None
        raise ImageError(f"cannot write {path}: {type(exc).__name__}: {exc}") from None


def save_image(
    path: PathLike,
    rgb,
    alpha=None,
    *,
    bit_depth: int = 8,
    grayscale: bool = False,
    format: Optional[str] = None,
    icc_profile: Optional[bytes] = None,
    quality: int = 95,
) -> Path:
    """Write an image atomically; returns the path written.

    rgb: float 3xHxW (or 1xHxW / HxW gray) in [0, 1]; values are clamped to [0, 1] and rounded to
    the nearest level. alpha: float 1xHxW (or HxW) or None. bit_depth: 8, or 16 (PNG only).
    grayscale: write one gray channel (the first channel when all three are equal, else Rec.601 luma);
    a 1-channel rgb is always written gray. format: "png", "jpeg", "webp" (also "tiff", "bmp");
    default from the file ending. icc_profile: embedded when it matches the written colour type
    (an RGB profile for colour output, a gray one for gray output; WebP output is always RGB), and
    silently left out otherwise. quality: JPEG and WebP quality. NaN or infinite values, alpha in a
    JPEG/BMP, or 16 bits in a format other than PNG raise ImageError and write nothing.
    """
    path = Path(path)
    fmt = _output_format(path, format)
    if bit_depth not in (8, 16):
        raise ImageError(f"cannot save {path}: bit_depth must be 8 or 16, not {bit_depth!r}")
    if bit_depth == 16 and fmt != "PNG":
        raise ImageError(f"cannot save {path} with 16 bits per sample: only PNG holds 16 bits here; "
                         f"name the output .png or use bit_depth=8")
    if alpha is not None and fmt in ("JPEG", "BMP"):
        raise ImageError(f"cannot save {path}: {fmt} cannot store transparency (alpha); "
                         f"save as .png (or .webp) instead, or drop the alpha channel")
    x = _as_chw(rgb, "image", path)
    if x.shape[0] not in (1, 3):
        raise ImageError(f"cannot save {path}: the image must have 1 or 3 channels (CxHxW), got shape {tuple(x.shape)}"
                         + ("; pass the 4th channel as alpha=" if x.shape[0] == 4 else ""))
    h, w = int(x.shape[1]), int(x.shape[2])
    if h == 0 or w == 0:
        raise ImageError(f"cannot save {path}: the image is empty ({w}x{h})")
    if max(h, w) > _MAX_SIDE[fmt]:
        raise ImageError(f"cannot save {path}: {w}x{h} is larger than {fmt} allows ({_MAX_SIDE[fmt]} pixels a side); "
                         f"save as .png instead")
    a = None
    if alpha is not None:
        a = _as_chw(alpha, "alpha", path)
        if a.shape[0] != 1 or tuple(a.shape[1:]) != (h, w):
            raise ImageError(f"cannot save {path}: alpha must be 1x{h}x{w} to match the image, got {tuple(a.shape)}")

    gray = grayscale or x.shape[0] == 1
    if fmt == "WEBP":
        gray = False  # WebP has no gray mode
    if x.shape[0] == 3 and gray:
        if torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]):
            x = x[:1]
        else:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    elif x.shape[0] == 1 and not gray:
        x = x.expand(3, -1, -1)
    maxval = 65535 if bit_depth == 16 else 255
    pixels = _quantize(x, maxval, "image", path)
    if a is not None:
        pixels = np.concatenate([pixels, _quantize(a, maxval, "alpha", path)], axis=2)

    space = _icc_space(icc_profile)
    if space != (b"GRAY" if pixels.shape[2] <= 2 else b"RGB "):
        icc_profile = None

    if fmt == "PNG" and bit_depth == 16:
        def write(f):
            f.write(_encode_png16(pixels, icc_profile))
    else:
        from PIL import Image

        im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        params: dict = {}
        if icc_profile:
            params["icc_profile"] = icc_profile
        if fmt == "PNG":
            params["compress_level"] = 6
        elif fmt == "JPEG":
            params["quality"] = quality
        elif fmt == "WEBP":
            params["quality"] = quality
        elif fmt == "TIFF":
            from PIL import features

            if features.check("libtiff"):
                params["compression"] = "tiff_deflate"

        def write(f):
            im.save(f, format=fmt, **params)

    _write_atomic(path, write)
    return path


# --------------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------------

def _is_hidden(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return True
    if os.name != "nt":
        return False
    attrs = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attrs & getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0))


def _scan_folder(root: Path, recursive: bool) -> list:
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


def list_images(inputs: Union[PathLike, Iterable[PathLike]], recursive: bool = True) -> list:
    """Expand files and folders into a list of image files.

    A named file is kept as given (whatever its ending; load_image judges it). A folder gives the
    files inside it (and, with recursive, in its subfolders) whose ending is in IMAGE_EXTENSIONS,
    sorted by path, skipping hidden files and folders (names starting with a dot; hidden on Windows).
    Symbolic links to folders are not followed. Duplicates are dropped, keeping the first. A path that
    does not exist raises ImageError.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    result: list = []
    seen: set = set()
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
