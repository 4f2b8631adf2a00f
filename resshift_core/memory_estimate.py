"""How much memory restoring one image takes, so a too-large image is refused before any work
instead of running the machine out of memory.

Tiling bounds the networks' activations, and the result is handed on in row bands
(`row_bands`): the VQGAN decodes a row of tiles at a time, a one-step pixel-space model runs its
whole chain that way (`streamed_chain`), and the command line writes each band into the PNG as
it comes. What grows with the image is then the input-sized tensors (the LR image, and for a
latent model the latent chain's state) and a row of tiles across the output's width. Two kinds
of work still hold the full-resolution result in floating point: a pixel-space chain of more
than one step, and the adain colour fix (it needs the whole image's statistics).

The figures are whole-process peaks measured on the CPU with the default tiling
(`/usr/bin/time -v python -m resshift_core upscale in.png -o out/`, on this project's 2-core
avx512_bf16 machines; README "Memory" gives the table), modelled as

    peak = fixed + networks + per_input_pixel * input pixels + per_output_column * output width
           + per_output_pixel * output pixels

where `networks` is what the loaded networks add when they run on the CPU: their weights and the
largest single network call (`network_bytes`; 0 on an accelerator, whose memory holds them). The
check runs once the networks are loaded, so what the process already holds is subtracted from
the peak before it is compared with the memory still available.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MEMINFO = Path("/proc/meminfo")
STATM = Path("/proc/self/statm")


@dataclass(frozen=True)
class MemoryModel:
    """Peak bytes against the image's size (see the module docstring)."""

    fixed: int
    per_input_pixel: float = 0.0
    per_output_column: float = 0.0
    per_output_pixel: float = 0.0

    def peak_bytes(self, width: int, height: int, sf: int, networks: int = 0) -> int:
        return int(
            self.fixed
            + networks
            + self.per_input_pixel * width * height
            + self.per_output_column * width * sf
            + self.per_output_pixel * width * sf * height * sf
        )


# What every restoring process holds besides the networks' weights: Python, torch and this package
# (230 MiB: `import torch, resshift_core.cli_upscale` and one convolution), and what the loaded
# networks derive once (kernel and bias caches: v3 + f4 in fp32 held 975 MiB after loading, 666 MiB
# of them weights).
PROCESS_BYTES = 310 << 20
# One network call on the CPU takes more than `tiling`'s per-pixel figures (torch.cuda's peak
# allocation, the tile sizes' rule): v3 + f4 in fp32, each phase's rise of the process's peak
# resident set (VmHWM reset before it) at a 256x256 input: the UNet's 256-pixel tile 884 MiB against
# 750 predicted, the VQGAN decoder's 128-pixel tile 689 (767 at a 128x128 input) against 625.
CPU_ACTIVATION_SCALE = 1.26

# The shipped one-step pixel-space model, streamed, x4: 669,568, 885,308 and 2,556,620 KiB peak for
# 500x375, 1000x750 and 4000x3000 inputs (before the command line stopped fixing glibc's mmap
# threshold: 559 MiB at 500x375 since). The input term is what a stage probe shows held (the image
# and the padded LR, 36 B a pixel, plus slack); the width term is the rest, fitted through the
# largest: one row of 1024-pixel UNet tiles (the chain's rows, the noise rows, the blend) across the
# output. (This model's `networks` is 203 MiB: fixed + networks is 513 MiB, where the fit's own fixed
# part was 457; it predicts 735,738, 960,250 and 2,614,938 KiB for the three.)
PIXEL_STREAMED = MemoryModel(fixed=PROCESS_BYTES, per_input_pixel=40.0, per_output_column=103_700.0)
# A latent model, decoded in bands: about ten input-sized 3-channel float32 tensors of the latent
# chain, and a row of 512-pixel VQGAN tiles across the output. Whole-process peaks (KiB) against
# this model: untrained-tiny 500x375 x4 (bf16) 428,888 against 490,048; v3 + f4 random-weight files,
# fp32, `--steps 1`: 128x128 1,834,332 against 1,980,304, 256x256 1,821,224 against 1,997,984,
# 512x512 1,850,316 (Intel) and 1,927,844 (AMD) against 2,048,704.
LATENT_STREAMED = MemoryModel(fixed=PROCESS_BYTES, per_input_pixel=160.0, per_output_column=20_000.0)
# Whole-image work (measured before the bands existed, with the shipped model and untrained-tiny:
# 3.0 and 12.0 output megapixels; their fits' fixed parts were 522 and 455 MiB, the networks' 203 and
# 101 of it).
PIXEL_WHOLE = MemoryModel(fixed=PROCESS_BYTES, per_output_pixel=78.0)
LATENT_WHOLE = MemoryModel(fixed=PROCESS_BYTES + (50 << 20), per_output_pixel=35.0)


def network_bytes(weight_bytes: int, largest_call_bytes: int, on_cpu: bool) -> int:
    """What the networks add to this process's memory: on the CPU their weights and their
    largest single call (`ResShiftPipeline.largest_call_bytes`, scaled to what the CPU takes);
    nothing when they run on an accelerator."""
    if not on_cpu:
        return 0
    return int(weight_bytes + CPU_ACTIVATION_SCALE * largest_call_bytes)


def memory_model(pixel_space: bool, streams_chain: bool, color_fix: str) -> MemoryModel:
    """Which measured model applies: `streams_chain` is `ResShiftPipeline.streams_chain(steps)`."""
    if color_fix == "adain" or (pixel_space and not streams_chain):
        return PIXEL_WHOLE if pixel_space else LATENT_WHOLE
    return PIXEL_STREAMED if pixel_space else LATENT_STREAMED


def resident_memory_bytes() -> int:
    """This process's resident set now (Linux /proc/self/statm); 0 where it cannot be read."""
    try:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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
    networks: int = 0,
    resident: int = 0,
) -> str | None:
    """A sentence when restoring a `width` x `height` image x`sf` needs more memory than is
    available (saying what would lower it: `lower`), else None. `networks`: `network_bytes`;
    `resident`: what the process holds already (`resident_memory_bytes`), part of the peak."""
    if available is None:
        return None
    need = max(0, model.peak_bytes(width, height, sf, networks) - resident)
    if need <= available:
        return None
    return (
        f"{name} is {width}x{height}: restoring it x{sf} needs about {need / 2**30:.1f} GiB more memory, "
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
    "CPU_ACTIVATION_SCALE",
    "LATENT_STREAMED",
    "LATENT_WHOLE",
    "PIXEL_STREAMED",
    "PIXEL_WHOLE",
    "PROCESS_BYTES",
    "MemoryModel",
    "available_memory_bytes",
    "how_to_lower",
    "memory_model",
    "network_bytes",
    "resident_memory_bytes",
    "too_large_message",
]
