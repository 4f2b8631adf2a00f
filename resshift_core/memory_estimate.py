"""How much memory restoring one image takes, so a too-large image is refused before any work
instead of running the machine out of memory.

Tiling bounds the networks' activations, but the chain still holds a few full-resolution
float32 buffers for the whole image (the upsampled condition, the state, the blended x0 and its
weights, the decoded output), so memory grows with the output's pixel count. The figures below
are whole-process peaks measured on the CPU in float32 with the default tiling (`/usr/bin/time
-v python -m resshift_core upscale`, inputs of 500x375 and 1000x750, x4): a fixed part (weights,
torch, the libraries) plus bytes per output pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class MemoryModel:
    """peak bytes = fixed + per_output_pixel * output pixels (float32 on the CPU)."""

    fixed: int
    per_output_pixel: float

    def peak_bytes(self, output_pixels: int) -> int:
        return int(self.fixed + self.per_output_pixel * output_pixels)


# Measured: the shipped pixel-space model 763,120 and 1,448,344 KiB peak RSS for 3.0 and 12.0
# output megapixels; a latent model (untrained-tiny with its f4 VQGAN, the same tiling) 568,476 and
# 877,032 KiB. A published model's weights (0.7 GB for v3 + f4) add to the fixed part only.
PIXEL_SPACE = MemoryModel(fixed=522 << 20, per_output_pixel=78.0)
LATENT = MemoryModel(fixed=455 << 20, per_output_pixel=35.0)


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux); None where it cannot be read (no check then)."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def too_large_message(
    name: str, width: int, height: int, sf: int, pixel_space: bool, available: int | None
) -> str | None:
    """A sentence when restoring a `width` x `height` image x`sf` needs more memory than is
    available, else None."""
    if available is None:
        return None
    model = PIXEL_SPACE if pixel_space else LATENT
    need = model.peak_bytes(width * sf * height * sf)
    if need <= available:
        return None
    return (
        f"{name} is {width}x{height}: restoring it x{sf} needs about {need / 2**30:.1f} GiB of memory "
        f"({model.per_output_pixel:.0f} bytes per output pixel), but {available / 2**30:.1f} GiB is available; "
        "nothing was done: downscale or split the image, or free memory"
    )


__all__ = ["LATENT", "PIXEL_SPACE", "MemoryModel", "available_memory_bytes", "too_large_message"]
