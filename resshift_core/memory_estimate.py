"""How much memory restoring one image takes, so a too-large image is refused before any work
instead of running the machine out of memory.

Tiling bounds the networks' activations, and the result is handed on in row bands
(`row_bands`): the VQGAN decodes a row of tiles at a time, a one-step pixel-space model runs its
whole chain that way (`streamed_chain`), and the command line writes each band into the PNG as
it comes. What grows with the image is then the input-sized tensors (the LR image, and for a
latent model the latent chain's state) and a row of tiles across the output's width. Two kinds
of work still hold the full-resolution result in floating point: a pixel-space chain of more
than one step, and the adain colour fix (it needs the whole image's statistics).

The figures are whole-process peaks measured on the CPU with the default tiling and dtype
(`/usr/bin/time -v python -m resshift_core upscale in.png -o out/`, on this project's 2-core
avx512_bf16 machine; README "Memory" gives the table), fitted as

    peak = fixed + per_input_pixel * input pixels + per_output_column * output width
           + per_output_pixel * output pixels

A published model's weights (0.7 GB for v3 + f4) add to the fixed part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes against the image's size (see the module docstring)."""

    fixed: int
    per_input_pixel: float = 0.0
    per_output_column: float = 0.0
    per_output_pixel: float = 0.0

    def peak_bytes(self, width: int, height: int, sf: int) -> int:
        return int(
            self.fixed
            + self.per_input_pixel * width * height
            + self.per_output_column * width * sf
            + self.per_output_pixel * width * sf * height * sf
        )


# The shipped one-step pixel-space model, streamed, x4: 669,568, 885,308 and 2,556,620 KiB peak for
# 500x375, 1000x750 and 4000x3000 inputs (before the CLI's mallopt, which lowers them: 538,140 KiB
# at 500x375). The input term is what a stage probe shows held (the image and the padded LR, 36 B
# a pixel, plus slack); the width term is the rest, fitted through the largest: one row of
# 1024-pixel UNet tiles (the chain's rows, the noise rows, the blend) across the output.
PIXEL_STREAMED = MemoryModel(fixed=457 << 20, per_input_pixel=40.0, per_output_column=103_700.0)
# A latent model (untrained-tiny with its f4 VQGAN), decoded in bands: 438,584 KiB for 500x375 x4
# (one point; the split follows what is held: about ten input-sized 3-channel float32 tensors of
# the latent chain, and a row of 512-pixel VQGAN tiles).
LATENT_STREAMED = MemoryModel(fixed=360 << 20, per_input_pixel=160.0, per_output_column=20_000.0)
# Whole-image work (measured before the bands existed: 3.0 and 12.0 output megapixels).
PIXEL_WHOLE = MemoryModel(fixed=522 << 20, per_output_pixel=78.0)
LATENT_WHOLE = MemoryModel(fixed=455 << 20, per_output_pixel=35.0)


def memory_model(pixel_space: bool, streams_chain: bool, color_fix: str) -> MemoryModel:
    """Which measured model applies: `streams_chain` is `ResShiftPipeline.streams_chain(steps)`."""
    if color_fix == "adain" or (pixel_space and not streams_chain):
        return PIXEL_WHOLE if pixel_space else LATENT_WHOLE
    return PIXEL_STREAMED if pixel_space else LATENT_STREAMED


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
    name: str,
    width: int,
    height: int,
    sf: int,
    model: MemoryModel,
    available: int | None,
    lower: str = "downscale or split the image, or free memory",
) -> str | None:
    """A sentence when restoring a `width` x `height` image x`sf` needs more memory than is
    available (saying what would lower it: `lower`), else None."""
    if available is None:
        return None
    need = model.peak_bytes(width, height, sf)
    if need <= available:
        return None
    return (
        f"{name} is {width}x{height}: restoring it x{sf} needs about {need / 2**30:.1f} GiB of memory, "
        f"but {available / 2**30:.1f} GiB is available; nothing was done: {lower}"
    )


def how_to_lower(pixel_space: bool, streams_chain: bool, color_fix: str) -> str:
    """What lowers the memory of work that holds the whole result (see `memory_model`)."""
    ways = []
    if color_fix == "adain":
        ways.append("use --color-fix wavelet or none (adain needs the whole result at once)")
    if pixel_space and not streams_chain:
        ways.append("use --steps 1 (a one-step chain runs a row of tiles at a time)")
    return "; or ".join([*ways, "downscale or split the image, or free memory"])


__all__ = [
    "LATENT_STREAMED",
    "LATENT_WHOLE",
    "PIXEL_STREAMED",
    "PIXEL_WHOLE",
    "MemoryModel",
    "available_memory_bytes",
    "how_to_lower",
    "memory_model",
    "too_large_message",
]
