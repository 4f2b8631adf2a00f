"""A PNG encoder that takes the image a band of rows at a time.

Pillow and libpng (through imagecodecs) want the whole image as one array; a x4 result of a
12-megapixel photo is 576 MB as 8-bit samples, and Pillow copies it again into its own 4-bytes-
a-pixel layout. Here each band is filtered and deflated as it arrives, so only the band and
the compressor's window are held. The format is plain PNG (ISO/IEC 15948): 8 or 16 bits,
gray, gray+alpha, RGB or RGBA, not interlaced, each row filtered with whichever of the five
filters gives the smallest sum of absolute values (libpng's default heuristic), an optional
ICC profile in an iCCP chunk.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

from .png16 import PNG_SIGNATURE

COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
IDAT_BYTES = 1 << 20  # compressed bytes per IDAT chunk
FILTER_ROWS = 64  # rows filtered at a time (bounds the filters' temporary arrays)
# zlib level: 6 as Pillow writes 8-bit PNGs; the low byte of 16-bit photos is noise, where 3
# is about as small and much faster.
LEVEL = {8: 6, 16: 3}


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filter_rows(raw: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """Rows of sample bytes (h x n uint8) as filtered scanlines (h x (1 + n)): a filter-type
    byte, then the row filtered by the type whose output has the smallest sum of absolute
    values (bytes read as signed). `previous` is the row above the first (zeros at the top)."""
    r = raw.astype(np.int16)
    b = np.concatenate([previous[None].astype(np.int16), r[:-1]])
    a = np.zeros_like(r)
    a[:, bpp:] = r[:, :-bpp]
    c = np.zeros_like(r)
    c[:, bpp:] = b[:, :-bpp]
    candidates = np.stack([r, r - a, r - b, r - ((a + b) >> 1), r - _paeth(a, b, c)]).astype(np.uint8)
    signed = candidates.view(np.int8).astype(np.int16)
    scores = np.abs(signed).sum(axis=2, dtype=np.int64)  # 5 x h
    choice = scores.argmin(axis=0)
    rows = np.arange(raw.shape[0])
    out = np.empty((raw.shape[0], raw.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = choice
    out[:, 1:] = candidates[choice, rows]
    return out


class PngStream:
    """Write a PNG to `f` band by band: `write(pixels)` for each band of h x width x channels
    samples (uint8 for 8 bits, uint16 for 16), top to bottom, then `close()`."""

    def __init__(
        self,
        f: BinaryIO,
        width: int,
        height: int,
        channels: int,
        bit_depth: int = 8,
        icc_profile: bytes | None = None,
    ):
        if channels not in COLOR_TYPE or bit_depth not in LEVEL or width < 1 or height < 1:
            raise ValueError(f"cannot write a {width}x{height} PNG of {channels} channels at {bit_depth} bits")
        self.f, self.width, self.height, self.channels, self.bit_depth = f, width, height, channels, bit_depth
        self.bpp = channels * bit_depth // 8  # bytes per pixel, the filters' left neighbour
        self.rows = 0
        self.previous = np.zeros(width * self.bpp, dtype=np.uint8)
        self.deflate = zlib.compressobj(LEVEL[bit_depth])
        self.pending = bytearray()
        header = struct.pack(">IIBBBBB", width, height, bit_depth, COLOR_TYPE[channels], 0, 0, 0)
        f.write(PNG_SIGNATURE + _chunk(b"IHDR", header))
        if icc_profile:  # name, NUL, compression method 0 (deflate), the profile
            f.write(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))

    def _emit(self, data: bytes, final: bool = False) -> None:
        self.pending += data
        while len(self.pending) >= IDAT_BYTES or (final and self.pending):
            body = bytes(self.pending[:IDAT_BYTES])
            del self.pending[:IDAT_BYTES]
            self.f.write(_chunk(b"IDAT", body))

    def write(self, pixels: np.ndarray) -> None:
        expected_dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        if pixels.ndim != 3 or pixels.shape[1:] != (self.width, self.channels) or pixels.dtype != expected_dtype:
            raise ValueError(
                f"a band must be h x {self.width} x {self.channels} {np.dtype(expected_dtype).name}, "
                f"got {pixels.shape} {pixels.dtype}"
            )
        if self.rows + pixels.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows the PNG was opened for")
        samples = pixels.astype(">u2") if self.bit_depth == 16 else pixels  # PNG is big-endian
        raw = np.ascontiguousarray(samples).view(np.uint8).reshape(pixels.shape[0], -1)
        for start in range(0, raw.shape[0], FILTER_ROWS):
            part = raw[start : start + FILTER_ROWS]
            self._emit(self.deflate.compress(filter_rows(part, self.previous, self.bpp).tobytes()))
            self.previous = part[-1].copy()
        self.rows += pixels.shape[0]

    def close(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"the PNG was opened for {self.height} rows but {self.rows} were written")
        self._emit(self.deflate.flush(), final=True)
        self.f.write(_chunk(b"IEND", b""))


__all__ = ["PngStream", "filter_rows"]
